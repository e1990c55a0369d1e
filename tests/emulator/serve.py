"""Serve moto (DynamoDB + SQS) on loopback, one request at a time.

Stock moto_server handles requests on several threads and its TransactWriteItems conditions are
not atomic across them, so concurrent-limit tests would flake for reasons that are not ours.
Serving moto's WSGI app behind one lock makes each request atomic, as DynamoDB's are, while
requests from clients still interleave between calls (a read-then-write bug is still caught).

Usage: serve.py --port PORT [--host 127.0.0.1] [--port-file FILE]
PORT 0 picks a free port; the port actually bound is written to FILE once the server listens.
The server exits by itself when the process that started it goes away.
"""

import argparse
import os
import sys
import threading
import time

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


def serialised(app):
    lock = threading.Lock()

    def handle(environ, start_response):
        with lock:
            result = app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]

    return handle


def exit_with_parent(parent):
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args()

    app = serialised(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True)
    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as handle:
            handle.write(str(server.port))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"emulator listening on http://{args.host}:{server.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
