"""
Traffic totals: messages and bytes by direction and type since start, the
peers gone included (what C{/metrics} and C{getnettotals} report).

L{Accounting} merges each closing peer's per-type counters into the totals
of the peers gone, and adds the live peers' on demand; it also counts the
connections that closed before their handshake was done. The totals keep at
most C{MAX_TRAFFIC_KEYS} types (the rest go under C{"*other*"}), so a
stream of peers each sending new types cannot grow them.

It owns those counters; it knows nothing of sockets or message meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from bitp2p.constants import MAX_TRAFFIC_KEYS
from bitp2p.peer import OTHER_TYPE

if TYPE_CHECKING:
    from bitp2p.peer import Peer


class Accounting:
    """
    Traffic of the peers gone, and handshake failures.

    @ivar handshake_failures: connections closed before their handshake was
        done, since start.
    """

    def __init__(self) -> None:
        # Traffic of the peers gone, received and sent, by type: [messages,
        # bytes]. Merged at each close: that is on every connection's path.
        self._pastIn: dict[str, list[int]] = {}
        self._pastOut: dict[str, list[int]] = {}
        self.handshake_failures = 0

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        if peer.established_at is None:
            self.handshake_failures += 1
        mergeTraffic(self._pastIn, self._pastOut, peer.traffic)

    def totals(self, live: Iterable[Peer]) -> dict[tuple[str, str], list[int]]:
        """
        Messages and bytes since start, the C{live} peers' and those of the
        peers gone: C{{(direction, type): [messages, bytes]}}, direction
        C{"in"} or C{"out"}.
        """
        received = {kind: list(counter) for kind, counter in self._pastIn.items()}
        sent = {kind: list(counter) for kind, counter in self._pastOut.items()}
        for peer in live:
            mergeTraffic(received, sent, peer.traffic)
        totals = {("in", kind): counter for kind, counter in received.items()}
        totals.update((("out", kind), counter) for kind, counter in sent.items())
        return totals


def mergeTraffic(
    received: dict[str, list[int]], sent: dict[str, list[int]], traffic: dict[str, list[int]]
) -> None:
    """
    Add a peer's C{traffic} (C{type -> [messages received, bytes received,
    messages sent, bytes sent]}) to the totals C{received} and C{sent}
    (C{type -> [messages, bytes]}), each of which keeps at most
    C{MAX_TRAFFIC_KEYS} types (the rest go under C{OTHER_TYPE}).
    """
    for kind, counter in traffic.items():
        if counter[0]:
            _add(received, kind, counter[0], counter[1])
        if counter[2]:
            _add(sent, kind, counter[2], counter[3])


def _add(totals: dict[str, list[int]], kind: str, messages: int, size: int) -> None:
    entry = totals.get(kind)
    if entry is None:
        if len(totals) < MAX_TRAFFIC_KEYS - 1 or kind == OTHER_TYPE:
            totals[kind] = [messages, size]
            return
        entry = totals.setdefault(OTHER_TYPE, [0, 0])
    entry[0] += messages
    entry[1] += size


__all__ = ["Accounting", "mergeTraffic"]
