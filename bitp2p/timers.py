"""
The node's timers on an injected clock.

L{Every}: a service that calls a function at a fixed interval, the node's
periodic work (ping, maintenance, advertisement, save) as children of its
C{MultiService}. Twisted's C{TimerService} always makes its first call at
start; a node's periodic work mostly waits one interval first (a save at
start would write what was just read), so L{Every} takes C{now}. It owns
one C{LoopingCall}; it knows nothing of what it calls.

L{Deadlines}: the one-shot deadlines of many owners (each connection's
handshake deadline and inactivity check) on a single timer of the clock.
A C{DelayedCall} per connection is ~400 bytes of a peer's ~3.5 KiB; an
entry here is about a third of that. It knows nothing of its owners but
that they have a C{deadlineReached(now)}.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable, Protocol

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


class DeadlineOwner(Protocol):
    def deadlineReached(self, now: float) -> None:
        """
        The deadline set for it came (it is no longer set): C{now} is the
        time it was set for, or the clock's time if later (the clock's
        own may round a hair below the time asked for).
        """


# Cancelled entries are dropped from the heap once they are more than the
# live ones and at least this many.
_COMPACT_MIN = 64


class Deadlines:
    """
    One-shot deadlines, each calling its owner's C{deadlineReached(now)} at
    its time, on one timer of C{clock} set for the earliest.

    Bitcoin Core checks every connection's timeouts in one loop
    (C{CConnman::InactivityCheck} from its socket thread); this keeps
    Twisted's exact times with the cost of one heap entry per deadline: a
    node with thousands of peers keeps thousands of deadlines. An owner
    keeps the token L{set} returns, to L{cancel} it. The clock's timer is
    cancelled once no deadline is left, so an idle node leaves no call
    pending.
    """

    __slots__ = ("_clock", "_heap", "_owners", "_seq", "_timer", "_timerAt", "_dead", "_firing")

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int]] = []  # (when, token)
        self._owners: dict[int, DeadlineOwner] = {}  # token -> owner, while set
        self._seq = itertools.count()
        self._timer = None
        self._timerAt = 0.0
        self._dead = 0  # entries of the heap whose token was cancelled
        self._firing = False

    def __len__(self) -> int:
        """
        How many deadlines are set.
        """
        return len(self._owners)

    def set(self, owner: DeadlineOwner, when: float) -> int:
        """
        Call C{owner.deadlineReached(now)} at C{when} (clock time); the
        token returned cancels it.
        """
        token = next(self._seq)
        self._owners[token] = owner
        heapq.heappush(self._heap, (when, token))
        timer = self._timer
        if timer is None:
            if not self._firing:  # (_fire arms for the earliest when done)
                self._arm(when)
        elif when < self._timerAt:
            timer.cancel()
            self._arm(when)
        return token

    def cancel(self, token: int) -> None:
        """
        Forget the deadline of C{token} (nothing if it came or was
        cancelled already).
        """
        if self._owners.pop(token, None) is None:
            return
        if not self._owners:
            self._heap.clear()
            self._dead = 0
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        self._dead += 1
        if self._dead > len(self._owners) and self._dead >= _COMPACT_MIN:
            owners, heap = self._owners, self._heap
            heap[:] = [e for e in heap if e[1] in owners]
            heapq.heapify(heap)
            self._dead = 0

    def _arm(self, when: float) -> None:
        self._timerAt = when
        self._timer = self._clock.callLater(max(0.0, when - self._clock.seconds()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        # Due: what is set for the time this timer was set for (the clock's
        # sum of now and a delay may round below it), or before now, and
        # was set before this call: an owner called may set deadlines (the
        # next round takes those) or cancel them meanwhile (the heap is
        # only ever changed in place).
        due = max(self._timerAt, self._clock.seconds())
        heap, owners = self._heap, self._owners
        before = next(self._seq)
        self._firing = True
        try:
            while heap and heap[0][0] <= due and heap[0][1] < before:
                _, token = heapq.heappop(heap)
                owner = owners.pop(token, None)
                if owner is None:
                    self._dead -= 1
                    continue
                owner.deadlineReached(due)
        finally:
            self._firing = False
            if owners:
                self._arm(heap[0][0])
            else:  # only cancelled entries left, if any: no timer
                heap.clear()
                self._dead = 0


__all__ = ["Deadlines", "Every"]
