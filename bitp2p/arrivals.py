"""
How often each source opens inbound connections: a decaying count per
source, to tell a newcomer from a host that reconnects as fast as it is
closed.

A full node admits a newcomer by closing one inbound connection
(L{bitp2p.connman}). Connections still in their handshake cannot be judged
by what they did, since they did nothing yet, and one that has not
finished it after C{stale_handshake_s} goes first; but an attacker who
reconnects the moment it is closed keeps every slot filled with young
connections, each within that grace, and newcomers find nothing to replace
(issue 16: dribbled versions from 18 /16s locked every honest node out). A
source that connects that often is the difference: an honest node dials a
node once, and again after failures with growing delays, while holding
slots by churn takes a new connection for every one closed. L{Arrivals}
counts each source's arrivals with exponential decay (the count halves
every C{half_life_s}), so the connection manager can close the young
handshakes of the busiest source rather than refuse a newcomer from a quiet
one.

A source is whatever key the caller gives (the connection manager uses the
network group, so that an attacker's addresses within one /16 count
together, and counts no local group of its own). At most C{max_sources} are remembered, the least recently seen
forgotten first: a forgotten source counts as new, which is what every
source is until it churns, so forgetting costs an attacker's victims
nothing they would not get from a fresh attacker group.

It owns the counts only; it knows nothing of peers, sockets, slots or what
the counts are used for, and reads time only from the reactor it is given.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from twisted.internet.interfaces import IReactorTime


class Arrivals:
    """
    Decaying per-source arrival counts.

    @param clock: the reactor's clock (L{IReactorTime}).
    @param half_life_s: how long it takes a source's count to halve.
    @param max_sources: the most sources remembered at once.
    """

    def __init__(self, clock: IReactorTime, half_life_s: float, max_sources: int) -> None:
        self._clock = clock
        self._decay = math.log(2) / half_life_s
        self._max = max_sources
        # source -> (count, when it was last updated), least recent first
        self._counts: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counts)

    def _decayed(self, entry: tuple[float, float], now: float) -> float:
        count, at = entry
        return count * math.exp(-self._decay * max(0.0, now - at))

    def arrived(self, source: str) -> float:
        """
        Count an arrival from C{source}.

        @return: the source's count, this arrival included.
        """
        now = self._clock.seconds()
        entry = self._counts.pop(source, None)
        count = 1.0 + (self._decayed(entry, now) if entry is not None else 0.0)
        self._counts[source] = (count, now)
        while len(self._counts) > self._max:
            self._counts.popitem(last=False)
        return count

    def count(self, source: str) -> float:
        """
        The source's count now: 0 for one never seen (or forgotten).
        """
        entry = self._counts.get(source)
        return 0.0 if entry is None else self._decayed(entry, self._clock.seconds())


__all__ = ["Arrivals"]
