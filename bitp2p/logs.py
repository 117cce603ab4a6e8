"""
Log output: one JSON object per line (C{--log-format json}).

bitp2p logs through C{twisted.logger} with named fields (C{node_id},
C{address}, C{peer}, C{reason}, ...). L{jsonLine} turns one event into a
JSON object: C{time} (ISO 8601, UTC), C{level}, C{namespace} (the module),
C{message} (the text a human would read), the event's own fields (values
that are not JSON become their C{str()}), and C{traceback} for an event
that carries a failure. L{JSONLogObserver} writes those lines to a stream;
with C{twistd} it is installed as the application's C{ILogObserver}
(L{bitp2p.tap}), so twistd's own events go through it too.

It knows nothing of the node: it only formats events.
"""

from __future__ import annotations

import datetime
import json
from typing import IO

from twisted.logger import ILogObserver, formatEvent
from zope.interface import implementer

__all__ = ["JSONLogObserver", "jsonLine"]

_SKIP = frozenset({"log_format", "log_namespace", "log_level", "log_time", "log_logger",
                   "log_source", "log_failure", "log_io", "log_system", "log_text",
                   "log_flattened", "log_trace", "log_legacy", "format", "message",
                   "isError", "system", "time"})


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def jsonLine(event: dict) -> str:
    """
    One log event as one line of JSON (no newline).
    """
    when = event.get("log_time")
    record: dict = {
        "time": (
            datetime.datetime.fromtimestamp(when, datetime.timezone.utc).isoformat()
            if isinstance(when, (int, float))
            else None
        ),
        "level": getattr(event.get("log_level"), "name", None),
        "namespace": event.get("log_namespace"),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if key not in _SKIP and not key.startswith("log_"):
            record[key] = _jsonable(value)
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


@implementer(ILogObserver)
class JSONLogObserver:
    """
    Write each event as one line of JSON to C{stream}, flushed.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: dict) -> None:
        self._stream.write(jsonLine(event) + "\n")
        self._stream.flush()
