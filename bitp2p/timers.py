"""
L{Every}: a service that calls a function at a fixed interval on an
injected clock, the node's periodic work (ping, maintenance, advertisement,
save) as children of its C{MultiService}.

Twisted's C{TimerService} always makes its first call at start; a node's
periodic work mostly waits one interval first (a save at start would write
what was just read), so L{Every} takes C{now}. It owns one C{LoopingCall};
it knows nothing of what it calls.
"""

from __future__ import annotations

from typing import Callable

from twisted.application import service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()


class Every(service.Service):
    """
    Call C{f()} every C{interval} seconds of C{clock} while running (first
    at start if C{now}, else one interval after). A call that raises is
    logged, and stops the calls.
    """

    def __init__(
        self, name: str, interval: float, f: Callable[[], object], clock: IReactorTime, now: bool = False
    ) -> None:
        self.setName(name)
        self.interval = interval
        self._f = f
        self._clock = clock
        self._now = now
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        service.Service.startService(self)
        self._loop = loop = LoopingCall(self._f)
        loop.clock = self._clock
        loop.start(self.interval, now=self._now).addErrback(
            lambda failure: log.failure("{name} stopped", failure, name=self.name)
        )

    def stopService(self) -> None:
        service.Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None


__all__ = ["Every"]
