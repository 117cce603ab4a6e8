"""
Log output: one JSON object per line (C{--log-format json}), and the
summary of log lines an outsider could repeat at will.

bitp2p logs through C{twisted.logger} with named fields (C{node_id},
C{address}, C{peer}, C{reason}, ...). L{jsonLine} turns one event into a
JSON object: C{time} (ISO 8601, UTC), C{level}, C{namespace} (the module),
C{message} (the text a human would read), the event's own fields (values
that are not JSON become their C{str()}), and C{traceback} for an event
that carries a failure. L{JSONLogObserver} writes those lines to a stream;
with C{twistd} it is installed as the application's C{ILogObserver}
(L{bitp2p.ops.tap}), so twistd's own events go through it too.

L{QuietTwisted} demotes what Twisted says of its own machinery (a port
starting or closed, the main loop ended) to debug, for every runner's
observer.

L{RepeatedEvents} keeps the log from being a way to fill the node's disk:
a line that anyone who can reach the node may cause again and again (a
refused connection, a protocol violation, a wrong password) is written the
first time, and further ones of its kind are counted and summarised, one
line per interval. The node owns one (L{Node.repeated
<bitp2p.node.Node>}) and gives it to the components that write such lines;
L{UNSUMMARISED} stands in for it where a component is used on its own, and
writes every line.

It knows nothing of the node: it only formats and counts events.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import IO

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from zope.interface import implementer

from bitp2p.constants import (
    LOG_SUMMARY_INTERVAL_S,
    LOG_SUMMARY_MAX_HOSTS,
    LOG_SUMMARY_MAX_KINDS,
)

__all__ = [
    "UNSUMMARISED",
    "JSONLogObserver",
    "QuietTwisted",
    "RepeatedEvents",
    "Unsummarised",
    "isTwistedChatter",
    "jsonLine",
]

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


# What Twisted writes about its own machinery, at info, whatever the
# application: a port starting to listen ("PeerServerFactory starting on
# 5000"), a port closed ("(TCP Port 5000 Closed)"), a factory started or
# stopped, the reactor's loop ending. Useful to whoever debugs Twisted, noise
# to an operator: debug lines. (Errors are never matched: only these texts,
# and only at info or below.)
_CHATTER = re.compile(
    r".+ starting on .+"
    r"|\((TCP |UDP |UNIX |SSL )?Port .+ Closed\)"
    r"|(Starting|Stopping) factory .+"
)
_CHATTER_NAMESPACES = {
    "log_legacy": _CHATTER,
    "twisted.internet.base": re.compile(r"Main loop terminated\."),
}


def isTwistedChatter(event: dict) -> bool:
    """
    Whether C{event} is one of Twisted's lines about its own machinery,
    not worth an operator's attention (see L{QuietTwisted}).
    """
    pattern = _CHATTER_NAMESPACES.get(event.get("log_namespace"))
    if pattern is None or event.get("isError") or event.get("log_failure") is not None:
        return False
    level = event.get("log_level")
    if level is not None and level > LogLevel.info:
        return False
    return pattern.fullmatch(formatEvent(event)) is not None


@implementer(ILogObserver)
class QuietTwisted:
    """
    Pass every event on to C{observer}, Twisted's lines about its own
    machinery (L{isTwistedChatter}) demoted to debug: put it in front of
    the level filter, and they are written only with C{--log-level debug}.
    (twistd's start-up lines, "Received SIGTERM" and "Server Shut Down."
    are kept at info.)
    """

    def __init__(self, observer: ILogObserver) -> None:
        self._observer = observer

    def __call__(self, event: dict) -> None:
        if isTwistedChatter(event):
            event = {**event, "log_level": LogLevel.debug}
        self._observer(event)


class _Kind:
    """
    What L{RepeatedEvents} remembers of one kind of event.

    @ivar logger: the logger of the kind's first event (its summaries go
        through it too, in its namespace).
    @ivar level: the level of the kind's first event, and of its summaries.
    @ivar since: when the current interval began (its first line written).
    @ivar quietUntil: until when further events are counted, not written.
    @ivar count: the events counted in the current interval.
    @ivar hosts: the distinct hosts they came from (their hashes), at most
        C{maxHosts}.
    @ivar moreHosts: whether hosts past C{maxHosts} were left out.
    @ivar timer: the call that writes the summary, while C{count} > 0.
    """

    __slots__ = ("logger", "level", "since", "quietUntil", "count", "hosts", "moreHosts", "timer")

    def __init__(self, logger: Logger, level: LogLevel, now: float, interval: float) -> None:
        self.logger = logger
        self.level = level
        self.since = now
        self.quietUntil = now + interval
        self.count = 0
        self.hosts: set[int] = set()
        self.moreHosts = False
        self.timer: IDelayedCall | None = None

    def quiet(self, now: float) -> bool:
        """
        Whether the kind has gone quiet at C{now}: no summary due and its
        interval over, so that its next event is written in full.
        """
        return self.timer is None and now >= self.quietUntil


class RepeatedEvents:
    """
    Log lines that an outsider can make the node write at will, summarised.

    The first event of a kind is written as it is, at its level. Further
    events of that kind in the next C{interval_s} are counted, with the
    distinct hosts they came from, and at the end of the interval one line
    at the same level says how many there were::

        Inbound connections refused: 1,234 more in the last 60 s, from 87 hosts

    While they keep coming, one such line per interval and nothing else; an
    interval with none ends it, and the next event is written in full again.
    So each kind costs at most one line per interval, however fast it comes.
    Each event counted is still logged, at debug level, for whoever asks
    for those (C{--log-level debug}), while C{logCounted} is true: the
    daemon and the console turn it off at any other level
    (L{bitp2p.ops.tap.makeNode}), so that a node whose log would drop them
    does not pay for making them (an inbound handshake paid a fifth of its
    CPU for its two; Bitcoin Core, likewise, logs every connection only
    under C{-debug=net}).

    Bounded: at most C{maxKinds} kinds are remembered at once (kinds are
    names in the code, so this is only a safeguard: an event of yet another
    kind is logged at debug level), each with at most C{maxHosts} distinct
    hosts (as hashes). A timer runs only while a summary is due: none when
    nothing happens. L{stop} writes the summaries due and cancels their
    timers (the node calls it when it stops).

    @param clock: the reactor's time (L{IReactorTime}).

    @ivar logCounted: whether each event counted is logged at debug level
        (true unless set otherwise).
    """

    logCounted = True

    def __init__(
        self,
        clock: IReactorTime,
        interval_s: float = LOG_SUMMARY_INTERVAL_S,
        maxKinds: int = LOG_SUMMARY_MAX_KINDS,
        maxHosts: int = LOG_SUMMARY_MAX_HOSTS,
    ) -> None:
        self._clock = clock
        self._interval = interval_s
        self._maxKinds = maxKinds
        self._maxHosts = maxHosts
        self._kinds: dict[str, _Kind] = {}

    def emit(
        self,
        logger: Logger,
        level: LogLevel,
        kind: str,
        host: str | None,
        format: str,
        /,
        **fields: object,
    ) -> None:
        """
        Log C{format} with C{fields} through C{logger} at C{level}, or
        count it in the summary of C{kind}.

        @param kind: what the summary line calls these events, capitalised,
            plural (C{"Inbound connections refused"}).
        @param host: where the event came from, counted among the summary's
            distinct hosts (L{None} or empty: not counted).
        """
        now = self._clock.seconds()
        state = self._kinds.get(kind)
        if state is None:
            if len(self._kinds) >= self._maxKinds:
                self._forget(now)
                if len(self._kinds) >= self._maxKinds:
                    if self.logCounted:
                        logger.emit(LogLevel.debug, format, **fields)
                    return
            self._kinds[kind] = _Kind(logger, level, now, self._interval)
            logger.emit(level, format, **fields)
            return
        if state.quiet(now):
            state.logger, state.level = logger, level
            state.since, state.quietUntil = now, now + self._interval
            logger.emit(level, format, **fields)
            return
        if self.logCounted:
            # Still there for whoever logs debug events (--log-level debug),
            # as Bitcoin Core's -debug=net shows every connection; its
            # traceback, if any, was in the first event.
            fields.pop("log_failure", None)
            logger.emit(LogLevel.debug, format, **fields)
        self._count(state, kind, host, now)

    def counted(self, kind: str, host: str | None) -> bool:
        """
        Count an event of C{kind} from C{host} without making it, if
        L{emit} would only count it and make nothing to log
        (C{logCounted} false, and C{kind} in an interval that is
        summarised): L{True} if it did. On L{False}, call L{emit}.

        For callers on a hot path, which thus need not make the event's
        fields (an inbound peer's connect and disconnect lines).
        """
        if self.logCounted:
            return False
        state = self._kinds.get(kind)
        if state is None:
            return False
        now = self._clock.seconds()
        if state.quiet(now):
            return False
        self._count(state, kind, host, now)
        return True

    def _count(self, state: _Kind, kind: str, host: str | None, now: float) -> None:
        state.count += 1
        if host:
            key = hash(host)
            if len(state.hosts) < self._maxHosts:
                state.hosts.add(key)
            elif key not in state.hosts:
                state.moreHosts = True
        if state.timer is None:
            state.timer = self._clock.callLater(
                max(0.0, state.quietUntil - now), self._summarise, kind
            )

    def pending(self) -> dict[str, int]:
        """
        The events counted and not yet summarised, by kind.
        """
        return {kind: state.count for kind, state in self._kinds.items() if state.count}

    def stop(self) -> None:
        """
        Write the summaries due now, cancel their timers, and forget every
        kind (an event after this is written in full).
        """
        for kind, state in list(self._kinds.items()):
            if state.timer is not None:
                state.timer.cancel()
                self._summarise(kind)
        self._kinds.clear()

    def _summarise(self, kind: str) -> None:
        state = self._kinds[kind]
        state.timer = None
        now = self._clock.seconds()
        hosts = len(state.hosts)
        fields: dict[str, object] = {
            "repeated": kind,
            "count": state.count,
            "seconds": round(now - state.since, 1),
        }
        format = "{repeated}: {count:,} more in the last {seconds:g} s"
        if hosts:
            fields["hosts"] = hosts
            fields["from_hosts"] = (
                f"{'over ' if state.moreHosts else ''}{hosts:,} host{'s' if hosts > 1 or state.moreHosts else ''}"
            )
            format += ", from {from_hosts}"
        state.logger.emit(state.level, format, **fields)
        state.count = 0
        state.hosts = set()
        state.moreHosts = False
        state.since, state.quietUntil = now, now + self._interval

    def _forget(self, now: float) -> None:
        """
        Forget the kinds that are quiet (nothing counted, their interval
        over): their next event is written in full anyway.
        """
        for kind, state in list(self._kinds.items()):
            if state.quiet(now):
                del self._kinds[kind]


class Unsummarised(RepeatedEvents):
    """
    A L{RepeatedEvents} that summarises nothing: every event is written as
    it is. What a component uses when it is given none (used on its own,
    outside a node).
    """

    def __init__(self) -> None:
        pass

    def emit(
        self,
        logger: Logger,
        level: LogLevel,
        kind: str,
        host: str | None,
        format: str,
        /,
        **fields: object,
    ) -> None:
        logger.emit(level, format, **fields)

    def counted(self, kind: str, host: str | None) -> bool:
        return False

    def pending(self) -> dict[str, int]:
        return {}

    def stop(self) -> None:
        pass


UNSUMMARISED = Unsummarised()
