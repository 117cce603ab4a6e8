"""
Short-lived connections: feelers and address fetches, which exist for one
job and close once it is done (Bitcoin Core's FEELER and ADDR_FETCH).

Protocol 1.1: a feeler's job is its handshake, so it is closed as soon as
it is established (it asks nothing: the address relay sends it nothing); an
address fetch's job is the answer to its C{getaddr}, which it waits for
C{ADDR_FETCH_TIMEOUT_S} at most, then closes.

L{ShortLived} owns those timers. It knows nothing of addresses or messages:
the address relay tells it when an answer arrived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Container

from twisted.logger import Logger

from bitp2p.constants import ADDR_FETCH_TIMEOUT_S
from bitp2p.errors import PeerLost
from bitp2p.peer import SHORT_LIVED, ConnectionType

if TYPE_CHECKING:
    from bitp2p.peer import Peer

log = Logger()


class ShortLived:
    """
    Closes feeler and address-fetch connections once their job is done.

    @param live: the live connections (a peer no longer in it is not
        closed again).
    """

    def __init__(self, reactor, live: Container[Peer]) -> None:
        self._reactor = reactor
        self._live = live
        self._timers: dict[Peer, object] = {}

    def pending(self) -> int:
        """
        Short-lived connections waiting for their answer.
        """
        return len(self._timers)

    def peerEstablished(self, peer: Peer) -> None:
        if peer.kind not in SHORT_LIVED:
            return
        if peer.kind is ConnectionType.FEELER:
            self._finish(peer, "done")  # its handshake was its job
            return
        self._timers[peer] = self._reactor.callLater(
            ADDR_FETCH_TIMEOUT_S, self._finish, peer, "without a getaddr answer"
        )
        log.debug(
            "{kind} connection to {address} established",
            kind=peer.kind.value,
            address=peer.address,
        )

    def answerReceived(self, peer: Peer) -> None:
        """
        The answer to our C{getaddr} to C{peer} arrived.
        """
        if peer.kind in SHORT_LIVED:
            self._finish(peer, "done")

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        if peer.kind in SHORT_LIVED:
            self._finish(peer, "closed")

    def _finish(self, peer: Peer, why: str) -> None:
        timer = self._timers.pop(peer, None)
        if timer is not None and timer.active():
            timer.cancel()
        if peer.close_reason is None and peer in self._live:
            peer.close(PeerLost(f"{peer.kind.value} connection {why}"))


__all__ = ["ShortLived"]
