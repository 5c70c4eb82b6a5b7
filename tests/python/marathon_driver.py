"""The `marathon` Python client (0.13.0), driven by the Rust tests over stdin/stdout.

Each request is one JSON line {"id": n, "method": "...", "args": {...}}; each answer one
JSON line {"id": n, "result": ...} or {"id": n, "error": {"type", "status", "message",
"details"}}. Results are the client's model objects turned back into JSON (json_repr), so a
response the client cannot parse shows up as an error here. With {"method": "watch"} the
client's event stream runs on a thread and every event it yields is written as
{"event": {...}}.
"""

import collections
import collections.abc
import json
import sys
import threading
import traceback

# The client still uses collections.Iterable, removed in Python 3.10: without this, any
# app with a nested field (health checks, containers, constraints) fails to serialise
# before a request is even sent.
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from marathon import MarathonClient  # noqa: E402
from marathon.exceptions import MarathonHttpError  # noqa: E402
from marathon.models import MarathonApp  # noqa: E402
from marathon.util import MarathonMinimalJsonEncoder  # noqa: E402

LOCK = threading.Lock()


def emit(line):
    with LOCK:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def plain(value):
    """Model objects (and lists of them, and datetimes) as plain JSON values."""
    return json.loads(json.dumps(value, cls=MarathonMinimalJsonEncoder))


def watch(client, event_types):
    def run():
        try:
            for event in client.event_stream(event_types=event_types or None):
                emit({"event": {"type": event.event_type, "data": plain(event)}})
        except Exception as err:  # the stream ended: say so
            emit({"event": {"type": "stream_error", "data": repr(err)}})

    threading.Thread(target=run, daemon=True).start()
    return True


def call(client, method, args):
    if method == "create_app":
        return client.create_app(args["id"], MarathonApp.from_json(args["app"]))
    if method == "update_app":
        return client.update_app(args["id"], MarathonApp.from_json(args["app"]), force=args.get("force", False))
    if method == "get_app":
        return client.get_app(args["id"])
    if method == "list_apps":
        return client.list_apps()
    if method == "list_tasks":
        return client.list_tasks(args.get("id"))
    if method == "scale_app":
        return client.scale_app(args["id"], instances=args["instances"])
    if method == "restart_app":
        return client.restart_app(args["id"], force=args.get("force", False))
    if method == "kill_task":
        return client.kill_task(args["id"], args["task"], scale=args.get("scale", False))
    if method == "delete_app":
        return client.delete_app(args["id"], force=args.get("force", False))
    if method == "list_queue":
        return client.list_queue()
    if method == "list_deployments":
        return client.list_deployments()
    if method == "delete_deployment":
        return client.delete_deployment(args["id"], force=args.get("force", False))
    if method == "get_info":
        return client.get_info()
    if method == "ping":
        answer = client.ping()
        return answer.decode() if isinstance(answer, bytes) else answer
    if method == "watch":
        return watch(client, args.get("event_types"))
    raise ValueError("unknown method " + method)


def main():
    client = MarathonClient(sys.argv[1], timeout=10)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = plain(call(client, request["method"], request.get("args", {})))
            emit({"id": request["id"], "result": result})
        except MarathonHttpError as err:
            emit({"id": request["id"], "error": {"type": type(err).__name__, "status": err.status_code,
                                                 "message": err.error_message, "details": getattr(err, "error_details", None)}})
        except Exception as err:  # a client-side failure, e.g. a response it cannot parse
            emit({"id": request["id"], "error": {"type": type(err).__name__, "message": str(err),
                                                 "trace": traceback.format_exc()}})


if __name__ == "__main__":
    main()
