"""
Manual peers: the connections an operator asked for.

  - L{ManualTargets}: C{--addnode} and C{--connect} peers (and
    L{Node.addManual<bitp2p.node.Node.addManual>}), each a L{ManualTarget}
    kept connected: dialed at start, redialed with its backoff policy
    whenever the connection is lost or a dial fails, outside the automatic
    outbound slots (Bitcoin Core's C{ThreadOpenAddedConnections}).
  - L{AddressFetches}: C{--seednode} addresses, each dialed once, one at a
    time, for its addresses (ADDR_FETCH connections); a failed one is
    retried with backoff while the address manager is still empty.

They dial through the connection manager's interface
(L{IConnections<bitp2p.interfaces.IConnections>}) and hear of peers through
L{PeerEvents<bitp2p.events.PeerEvents>}; they know nothing of the address
manager's tables or of message meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import attrs
from twisted.logger import Logger
from twisted.python.failure import Failure

from bitp2p.address import Address, AddressError, split_host_port
from bitp2p.backoff import manual_retry_delay, retry_delay
from bitp2p.endpoints import Target, parse_target
from bitp2p.errors import failureReason
from bitp2p.formatting import duration as _duration
from bitp2p.peer import ConnectionType

if TYPE_CHECKING:
    from bitp2p.interfaces import IConnections
    from bitp2p.peer import Peer

log = Logger()


@attrs.define(eq=False)
class ManualTarget:
    """
    One peer kept connected, and its redial state.

    @ivar target: where to dial.
    @ivar backoff: the delay before the next try, given the failures since
        the last success.
    @ivar failures: failed dials since the last success.
    @ivar next_try: when it may be dialed again (reactor seconds).
    @ivar peer: its established connection, if any.
    @ivar dialing: whether a dial is in progress.
    """

    target: Target
    backoff: Callable[[int], float] = manual_retry_delay
    failures: int = 0
    next_try: float = 0.0
    peer: Peer | None = None
    dialing: bool = False

    @property
    def address(self) -> Address | None:
        return self.target.address

    def __str__(self) -> str:
        return str(self.target)


class ManualTargets:
    """
    The peers kept connected (C{--addnode}, C{--connect}, L{add}).
    """

    def __init__(self, reactor, connections: IConnections, targets: tuple[str, ...]) -> None:
        self._reactor = reactor
        self._connections = connections
        self._targets = [ManualTarget(parse_target(entry)) for entry in targets]

    def __len__(self) -> int:
        return len(self._targets)

    def add(self, target: str) -> bool:
        """
        Keep C{target} connected from now on.

        @return: C{False} if it was already kept (in any spelling).
        @raise ValueError: if C{target} is not a valid target.
        """
        parsed = parse_target(target)
        key = str(parsed)
        if any(str(manual.target) == key for manual in self._targets):
            return False
        self._targets.append(ManualTarget(parsed))
        log.info("Keeping {target} connected", target=key)
        return True

    def remove(self, target: str) -> bool:
        """
        Stop keeping C{target} connected (a live connection stays open).

        @return: C{False} if it was not kept.
        @raise ValueError: if C{target} is not a valid target.
        """
        key = str(parse_target(target))
        for manual in self._targets:
            if str(manual.target) == key:
                self._targets.remove(manual)
                log.info("No longer keeping {target} connected", target=key)
                return True
        return False

    def peers(self) -> list[tuple[str, Peer | None]]:
        """
        Each target as text, in the order added, with its established
        connection (one made for it, or any other connection to its
        address), or L{None}.
        """
        peers = self._connections.peers()
        result: list[tuple[str, Peer | None]] = []
        for manual in self._targets:
            peer = manual.peer if manual.peer is not None and manual.peer.established else None
            if peer is None and manual.address is not None:
                peer = next((p for p in peers if p.address == manual.address), None)
            result.append((str(manual.target), peer))
        return result

    def maintain(self, now: float) -> None:
        """
        Dial every target that is neither connected, nor being dialed, nor
        waiting out its backoff.
        """
        if not self._targets:
            return
        connected = {
            p.address for p in self._connections.connections() if p.established and p.address
        }
        for manual in self._targets:
            if manual.peer is not None or manual.dialing or now < manual.next_try:
                continue
            if manual.address is not None and (
                manual.address in connected or self._connections.isDialing(manual.address)
            ):
                continue
            manual.dialing = True
            d = self._connections.dial(manual.target, ConnectionType.MANUAL)
            d.addCallbacks(self._up, self._down, (manual,), None, (manual,))

    def _up(self, peer: Peer, manual: ManualTarget) -> None:
        manual.dialing = False
        manual.failures = 0
        if peer.close_reason is None:
            manual.peer = peer

    def _down(self, failure: Failure, manual: ManualTarget) -> None:
        manual.dialing = False
        manual.failures += 1
        delay = manual.backoff(manual.failures)
        manual.next_try = self._reactor.seconds() + delay
        log.info(
            "Could not connect to {target}: {error}; retrying in {retry}",
            target=manual,
            error=failureReason(failure),
            retry=_duration(delay),
            delay=delay,
        )

    def peerEstablished(self, peer: Peer) -> None:
        for manual in self._targets:
            if manual.peer is None and manual.address is not None and manual.address == peer.address:
                manual.peer, manual.failures = peer, 0

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        now = self._reactor.seconds()
        for manual in self._targets:
            if manual.peer is peer:
                manual.peer = None
                manual.next_try = now + manual.backoff(1)


@attrs.define(eq=False)
class _Fetch:
    """
    One C{--seednode}: where, when it may be dialed next, and its failures.
    """

    host: str
    port: int
    next_try: float
    failures: int = 0


class AddressFetches:
    """
    The C{--seednode} addresses, dialed one at a time for their addresses.

    @param bookSize: how many addresses the address manager holds (a
        failed fetch is retried only while it holds none).
    """

    def __init__(
        self,
        reactor,
        connections: IConnections,
        seednodes: tuple[str, ...],
        bookSize: Callable[[], int],
    ) -> None:
        self._reactor = reactor
        self._connections = connections
        self._seednodes = seednodes
        self._bookSize = bookSize
        self._fetches: list[_Fetch] = []
        self._fetching = False
        self._peer: Peer | None = None

    def start(self, now: float) -> None:
        self._fetches = [
            _Fetch(host, port, now) for host, port in map(split_host_port, self._seednodes)
        ]

    def maintain(self, now: float) -> None:
        """
        Dial the next C{--seednode} that is due, unless a fetch is under way.
        """
        if self._fetching or not self._fetches or now < self._fetches[0].next_try:
            return
        fetch = self._fetches.pop(0)
        address = _literal(fetch.host, fetch.port)
        if address is not None and self._connections.isOwn(address):
            return
        self._fetching = True
        d = self._connections.dial(Target(fetch.host, fetch.port), ConnectionType.ADDR_FETCH)
        d.addCallbacks(self._established, self._failed, errbackArgs=(fetch,))

    def _established(self, peer: Peer) -> Peer:
        self._peer = peer
        return peer

    def _failed(self, failure: Failure, fetch: _Fetch) -> None:
        self._fetching = False
        fetch.failures += 1
        log.info(
            "Could not fetch addresses from {host}:{port}: {error}",
            host=fetch.host,
            port=fetch.port,
            error=failure.getErrorMessage(),
        )
        if self._bookSize() == 0:
            fetch.next_try = self._reactor.seconds() + retry_delay(fetch.failures)
            self._fetches.append(fetch)
            self._fetches.sort(key=lambda f: f.next_try)

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        # (Other address fetches, the outbound filler's, are not ours.)
        if peer is self._peer:
            self._peer = None
            self._fetching = False


def _literal(host: str, port: int) -> Address | None:
    try:
        return Address.of(host, port)
    except AddressError:
        return None


__all__ = ["AddressFetches", "ManualTarget", "ManualTargets"]
