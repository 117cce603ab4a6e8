"""
Address bookkeeping: what connections teach the address manager.

L{AddressBookkeeping} turns connection outcomes into the address manager's
calls, as Bitcoin Core's C{CConnman} and C{PeerManagerImpl} call C{AddrMan}:
a dial is an C{attempt}; a completed handshake with an address we dialed
makes it C{good} (it moves to "tried", known before or not); the end of
such a connection is C{connected} (its last-seen time), and a dial or a
handshake that failed is C{failed} (a self-connection or a duplicate says
nothing about the address); an address that turned out to be ours is
removed; and when a network group becomes local, addresses are regrouped.

It owns none of that state: it is the one place that writes connection
outcomes into the address manager, through L{IAddressManager
<bitp2p.interfaces.IAddressManager>}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from bitp2p.address import Address, network_group
from bitp2p.errors import DuplicateConnection, SelfConnection

if TYPE_CHECKING:
    from bitp2p.interfaces import IAddressManager
    from bitp2p.peer import Peer


class AddressBookkeeping:
    """
    Connection outcomes, written into the current address manager.

    @param bucketGroup: how the address manager groups addresses now.
    """

    def __init__(
        self,
        reactor,
        book: Callable[[], IAddressManager],
        bucketGroup: Callable[[Address], str],
        running: Callable[[], bool],
    ) -> None:
        self._reactor = reactor
        self._book = book
        self._bucketGroup = bucketGroup
        self._running = running

    def peerEstablished(self, peer: Peer) -> None:
        if peer.dialed is not None:
            # Known or not (a manual connection may be to a new address), an
            # address that completed a handshake goes to "tried".
            now = self._reactor.seconds()
            book = self._book()
            book.add([(peer.dialed, now)], peer.dialed, now)
            book.good(peer.dialed, now)

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        if peer.dialed is None or not self._running():
            return
        now = self._reactor.seconds()
        if peer.established_at is not None:
            self._book().connected(peer.dialed, now)
        elif not isinstance(reason, (SelfConnection, DuplicateConnection)):
            self._book().failed(peer.dialed, now)

    def dialStarted(self, address: Address, now: float, count_failure: bool) -> None:
        self._book().attempt(address, now, count_failure)

    def dialFailed(self, address: Address, now: float) -> None:
        self._book().failed(address, now)

    def selfAddress(self, address: Address) -> None:
        """
        C{address} is this node: never to be dialed, so not kept.
        """
        self._book().remove(address)

    def localGroup(self, group: str) -> None:
        """
        Network group C{group} became local: regroup the addresses, if any
        of them (or of their sources) is in it.
        """
        book = self._book()
        if any(
            network_group(info.address) == group
            or (info.source is not None and network_group(info.source) == group)
            for info in book
        ):
            book.regroup(self._bucketGroup)


__all__ = ["AddressBookkeeping"]
