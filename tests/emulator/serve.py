"""Serve moto (DynamoDB + SQS) on loopback, one request at a time.

Stock moto_server handles requests on several threads and its TransactWriteItems conditions are
not atomic across them, so concurrent-limit tests would flake for reasons that are not ours.
Serving moto's WSGI app behind one lock makes each request atomic, as DynamoDB's are, while
requests from clients still interleave between calls (a read-then-write bug is still caught).

Stock moto also backs up every table a TransactWriteItems touches with copy.deepcopy, once per
item, before applying it: each transaction costs time proportional to the table's size, so a
table of a few thousand items makes a transaction take a hundred milliseconds and more. Here
the backup is of the items the transaction names instead (serialised requests make that just
as atomic): the same outcome, in time proportional to the transaction. Likewise a Query reads
its partition (stock moto sorts every item of the table first), and a Query of an index filters
the table's items without sorting them all first (the matches are sorted, as before). And an
SQS send no longer counts every message of the queue (stock moto works out the queue's
approximate message counts, unused there, for each message sent).

Four things DynamoDB and SQS do that moto does not, so that the engine is tested against them:

- ClientRequestToken on TransactWriteItems (moto 5.2.5 ignores it): a token seen within ten
  minutes answers the first outcome again and writes nothing; the same token with other items
  answers IdempotentParameterMismatchException.
- Faults, off by default: `--faults conflict=0.05,throttle=0.02,error=0.01,lost=0.02,sqs=0.05,seed=7`
  (or EMULATOR_FAULTS) cancels that fraction of TransactWriteItems with TransactionConflict,
  throttles that fraction of all DynamoDB calls (ThrottlingException or
  ProvisionedThroughputExceededException), fails that fraction with a 500, commits that fraction
  of transactions and answers them with a 500 (the answer is lost: the SDK retries with the same
  token), and fails that fraction of SQS sends (a batch answers every entry as failed). Counts
  are served at GET /__emulator/stats; POST /__emulator/faults with a spec replaces the faults.
- A cancelled TransactWriteItems leaves nothing in the table's stream (stock moto records the
  items it wrote before the failed condition; the rollback here would record its own undoing).
  Real DynamoDB streams only committed writes, and the engine's outbox reads the stream.
- A waiting SQS receive (WaitTimeSeconds > 0) no longer holds the one lock while it waits: it
  polls without waiting under the lock and sleeps outside it, so other requests go on.

Usage: serve.py --port PORT [--host 127.0.0.1] [--port-file FILE] [--faults SPEC]
PORT 0 picks a free port; the port actually bound is written to FILE once the server listens.
The server exits by itself when the process that started it goes away.
"""

import argparse
import os
import sys
import threading
import time

import copy
import hashlib
import io
import json
import random
from collections import Counter

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


JSON = "application/x-amz-json-1.0"
TOKEN_WINDOW_SECONDS = 600
FAULT_KINDS = ("conflict", "throttle", "error", "lost", "sqs")


def parse_faults(spec):
    """`kind=rate,...,seed=N` into ({kind: rate}, seed)."""
    rates, seed = {kind: 0.0 for kind in FAULT_KINDS}, 0
    for part in filter(None, (spec or "").split(",")):
        name, _, value = part.partition("=")
        name = name.strip()
        if name == "seed":
            seed = int(value)
        elif name in rates:
            rates[name] = float(value)
        else:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_KINDS)}, seed")
    return rates, seed


def dynamodb_error(kind, message, status=400, extra=None):
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{kind}", "message": message}
    body.update(extra or {})
    return status, [("Content-Type", JSON), ("X-Amzn-ErrorType", kind)], json.dumps(body).encode()


class Emulator:
    """moto's WSGI app behind one lock, with DynamoDB's request tokens, injected faults, and
    SQS long polls that wait outside the lock."""

    def __init__(self, app, rates, seed):
        self.app = app
        self.lock = threading.Lock()
        self.meta = threading.Lock()  # the random source, the tokens and the counts
        self.rates = rates
        self.random = random.Random(seed)
        self.tokens = {}
        self.counts = Counter()

    def call(self, environ, body):
        """One request to moto, under the lock: (status code, headers, body)."""
        environ = dict(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        answer = {}

        def start_response(status, headers, exc_info=None):
            answer["status"], answer["headers"] = int(status.split()[0]), headers

        with self.lock:
            result = self.app(environ, start_response)
            try:
                data = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return answer["status"], answer["headers"], data

    def roll(self, kind):
        rate = self.rates.get(kind, 0.0)
        if rate <= 0:
            return False
        with self.meta:
            hit = self.random.random() < rate
            if hit:
                self.counts[f"injected.{kind}"] += 1
        return hit

    def count(self, name):
        with self.meta:
            self.counts[name] += 1

    def pick(self, choices):
        with self.meta:
            return self.random.choice(choices)

    def index(self, length):
        with self.meta:
            return self.random.randrange(length)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/__emulator/faults" and environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            rates, seed = parse_faults(environ["wsgi.input"].read(length).decode())
            with self.meta:
                self.rates, self.random = rates, random.Random(seed)
            return respond(start_response, 204, [], b"")
        if environ.get("PATH_INFO") == "/__emulator/stats":
            with self.meta:
                stats = {"faults": self.rates, "counts": dict(self.counts)}
            return respond(start_response, 200, [("Content-Type", "application/json")],
                           json.dumps(stats).encode())
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service, _, operation = target.partition(".")
        if operation:
            self.count(f"calls.{operation}")
        if service.startswith("DynamoDB"):
            answer = self.dynamodb(environ, body, operation)
        elif service == "AmazonSQS":
            answer = self.sqs(environ, body, operation)
        else:
            answer = self.call(environ, body)
        return respond(start_response, *answer)

    def dynamodb(self, environ, body, operation):
        if self.roll("throttle"):
            kind = self.pick(["ThrottlingException", "ProvisionedThroughputExceededException"])
            return dynamodb_error(kind, "Rate of requests exceeds the allowed throughput (injected).")
        if self.roll("error"):
            return dynamodb_error("InternalServerError", "Internal server error (injected).", 500)
        if operation != "TransactWriteItems":
            return self.call(environ, body)
        request = json.loads(body or b"{}")
        token = request.get("ClientRequestToken")
        digest = hashlib.sha256(
            json.dumps(request.get("TransactItems"), sort_keys=True).encode()).hexdigest()
        now = time.monotonic()
        if token:
            with self.meta:
                for old in [t for t, seen in self.tokens.items() if seen[1] < now]:
                    del self.tokens[old]
                seen = self.tokens.get(token)
            if seen is not None:
                if seen[0] != digest:
                    self.count("tokens.mismatch")
                    return dynamodb_error(
                        "IdempotentParameterMismatchException",
                        "The request uses the same client token as a previous, but non-identical request.")
                self.count("tokens.replayed")
                return seen[2]
        if self.roll("conflict"):
            items = request.get("TransactItems") or [None]
            victim = self.index(len(items))
            reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                       if index == victim else {"Code": "None"} for index in range(len(items))]
            codes = ", ".join(r["Code"] for r in reasons)
            return dynamodb_error(
                "TransactionCanceledException",
                f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
                extra={"CancellationReasons": reasons, "Message": f"Transaction cancelled [{codes}]"})
        answer = self.call(environ, body)
        if token and answer[0] == 200:
            with self.meta:
                self.tokens[token] = (digest, now + TOKEN_WINDOW_SECONDS, answer)
            if self.roll("lost"):
                return dynamodb_error("InternalServerError", "The answer was lost (injected).", 500)
        return answer

    def sqs(self, environ, body, operation):
        if operation == "SendMessageBatch" and self.roll("sqs"):
            request = json.loads(body or b"{}")
            failed = [{"Id": entry.get("Id"), "SenderFault": False, "Code": "InternalError",
                       "Message": "injected"} for entry in request.get("Entries", [])]
            return 200, [("Content-Type", JSON)], json.dumps({"Successful": [], "Failed": failed}).encode()
        if operation == "SendMessage" and self.roll("sqs"):
            return 500, [("Content-Type", JSON), ("X-Amzn-ErrorType", "InternalError")], json.dumps(
                {"__type": "com.amazonaws.sqs#InternalError", "message": "injected"}).encode()
        if operation != "ReceiveMessage":
            return self.call(environ, body)
        request = json.loads(body or b"{}")
        wait = float(request.get("WaitTimeSeconds") or 0)
        if wait <= 0:
            return self.call(environ, body)
        # Poll without waiting under the lock; wait between polls outside it.
        request["WaitTimeSeconds"] = 0
        quick = json.dumps(request).encode()
        deadline = time.monotonic() + wait
        while True:
            answer = self.call(environ, quick)
            if answer[0] != 200 or b'"Messages"' in answer[2] or time.monotonic() >= deadline:
                return answer
            time.sleep(0.05)


def respond(start_response, status, headers, body):
    headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
    headers.append(("Content-Length", str(len(body))))
    start_response(f"{status} {'OK' if status < 300 else 'Error'}", headers)
    return [body]


class _NoTableCopies:
    """Stands in for the `copy` module inside moto's DynamoDB backend: tables are not copied."""

    @staticmethod
    def deepcopy(value, *args, **kwargs):
        return value if isinstance(value, Table) else copy.deepcopy(value, *args, **kwargs)


def item_backed_transactions():
    backend = dynamodb_models.DynamoDBBackend
    original = backend.transact_write_items
    dynamodb_models.copy = _NoTableCopies()

    def transact_write_items(self, transact_items):
        before = []
        for entry in transact_items if len(transact_items) <= 100 else []:
            for op in entry.values():
                table_name = op.get("TableName")
                if table_name not in self.tables:
                    continue
                table = self.tables[table_name]
                if "Key" in op:
                    key = op["Key"]
                else:
                    attrs = op.get("Item", {})
                    names = [table.hash_key_attr, table.range_key_attr]
                    key = {name: attrs[name] for name in names if name and name in attrs}
                try:
                    item = self.get_item(table_name, key)
                except Exception:  # a malformed key: moto refuses the transaction itself
                    continue
                before.append((table_name, key, copy.deepcopy(item)))
        # A cancelled transaction leaves no stream records (moto's own writes before the failed
        # condition, and the rollback's, would): each stream is cut back to where it was.
        streams = [(table.stream_shard, len(table.stream_shard.items))
                   for table in self.tables.values() if table.stream_shard is not None]
        try:
            return original(self, transact_items)
        except Exception:
            for table_name, key, item in reversed(before):
                if item is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, item.to_json()["Attributes"])
            for shard, length in streams:
                del shard.items[length:]
            raise

    backend.transact_write_items = transact_write_items


def partition_queries():
    """Query without sorting the whole table: the partition alone, or (an index) every item
    unsorted, for moto's query to filter and sort as it does."""
    hint = threading.local()
    all_items, query = Table.all_items, Table.query

    def items_for_query(self):
        if getattr(hint, "value", None) is None:
            return all_items(self)
        index_name, hash_key = hint.value
        if index_name is None and hash_key is not None:
            bucket = self.items.get(hash_key)
            if bucket is None:
                return []
            return list(bucket.values()) if self.range_key_attr else [bucket]
        if self.range_key_attr:
            return [item for bucket in self.items.values() for item in bucket.values()]
        return list(self.items.values())

    def partition_query(self, hash_key, range_comparison, range_objs, limit,
                        exclusive_start_key, scan_index_forward, projection_expressions,
                        index_name=None, *args, **kwargs):
        hint.value = (index_name, hash_key)
        try:
            return query(self, hash_key, range_comparison, range_objs, limit,
                         exclusive_start_key, scan_index_forward, projection_expressions,
                         index_name, *args, **kwargs)
        finally:
            hint.value = None

    Table.all_items = items_for_query
    Table.query = partition_query


def cheap_sends():
    """SendMessage(Batch) without the queue's approximate counts (O(messages) each)."""
    from moto.sqs.models import Queue, SQSBackend

    sending = threading.local()
    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        counted = getattr(Queue, name)
        setattr(Queue, name, property(
            lambda self, counted=counted: 0 if getattr(sending, "on", False) else counted.fget(self)
        ))
    send = SQSBackend.send_message

    def send_message(self, *args, **kwargs):
        sending.on = True
        try:
            return send(self, *args, **kwargs)
        finally:
            sending.on = False

    SQSBackend.send_message = send_message


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
    parser.add_argument("--faults", default=os.environ.get("EMULATOR_FAULTS", ""))
    args = parser.parse_args()
    rates, seed = parse_faults(args.faults)

    item_backed_transactions()
    partition_queries()
    cheap_sends()
    app = Emulator(DomainDispatcherApplication(create_backend_app), rates, seed)
    server = make_server(args.host, args.port, app, threaded=True)
    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as handle:
            handle.write(str(server.port))
        os.replace(args.port_file + ".tmp", args.port_file)
    faults = ", ".join(f"{k}={v}" for k, v in rates.items() if v) or "none"
    print(f"emulator listening on http://{args.host}:{server.port} (faults: {faults})",
          file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
