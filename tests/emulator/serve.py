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

Usage: serve.py --port PORT [--host 127.0.0.1] [--port-file FILE]
PORT 0 picks a free port; the port actually bound is written to FILE once the server listens.
The server exits by itself when the process that started it goes away.
"""

import argparse
import os
import sys
import threading
import time

import copy

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table
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
        try:
            return original(self, transact_items)
        except Exception:
            for table_name, key, item in reversed(before):
                if item is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, item.to_json()["Attributes"])
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
    args = parser.parse_args()

    item_backed_transactions()
    partition_queries()
    cheap_sends()
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
