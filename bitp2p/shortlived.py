"""
Short-lived connections: feelers and address fetches, which exist for one
job and close once it is done (Bitcoin Core's FEELER and ADDR_FETCH).

A feeler has done its job once its handshake is done, an address fetch once
the answer to its C{getaddr} arrived; but the protocol has every dialer send
C{getaddr}, and its answer is one of the ways addresses spread, so both
wait briefly (C{FEELER_TIMEOUT_S}, C{ADDR_FETCH_TIMEOUT_S}) for that answer,
then close.

L{ShortLived} owns those timers. It knows nothing of addresses or messages:
the address relay tells it when an answer arrived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Container

from twisted.logger import Logger

from bitp2p.constants import ADDR_FETCH_TIMEOUT_S, FEELER_TIMEOUT_S
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
        timeout = FEELER_TIMEOUT_S if peer.kind is ConnectionType.FEELER else ADDR_FETCH_TIMEOUT_S
        self._timers[peer] = self._reactor.callLater(
            timeout, self._finish, peer, "without a getaddr answer"
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
