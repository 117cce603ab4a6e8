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
        merge(self._pastIn, peer.recv_per_type)
        merge(self._pastOut, peer.send_per_type)

    def totals(self, live: Iterable[Peer]) -> dict[tuple[str, str], list[int]]:
        """
        Messages and bytes since start, the C{live} peers' and those of the
        peers gone: C{{(direction, type): [messages, bytes]}}, direction
        C{"in"} or C{"out"}.
        """
        received = {kind: list(counter) for kind, counter in self._pastIn.items()}
        sent = {kind: list(counter) for kind, counter in self._pastOut.items()}
        for peer in live:
            merge(received, peer.recv_per_type)
            merge(sent, peer.send_per_type)
        totals = {("in", kind): counter for kind, counter in received.items()}
        totals.update((("out", kind), counter) for kind, counter in sent.items())
        return totals


def merge(totals: dict[str, list[int]], table: dict[str, list[int]]) -> None:
    """
    Add a peer's C{[messages, bytes]} per type to C{totals}, which keeps at
    most C{MAX_TRAFFIC_KEYS} types (the rest go under C{OTHER_TYPE}).
    """
    for kind, counter in table.items():
        entry = totals.get(kind)
        if entry is None:
            if len(totals) < MAX_TRAFFIC_KEYS - 1 or kind == OTHER_TYPE:
                totals[kind] = [counter[0], counter[1]]
                continue
            entry = totals.setdefault(OTHER_TYPE, [0, 0])
        entry[0] += counter[0]
        entry[1] += counter[1]


__all__ = ["Accounting", "merge"]
