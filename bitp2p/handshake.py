"""
The node's side of the handshake: the C{version} we send, and how we judge
the peer's.

L{Handshake} builds our C{version} (node id, listening port, user agent,
time, and the peer's address as we see it) and checks a peer's: with TLS,
that its certificate is of the key its node id is the hash of, and of the id
pinned for its address (trust on first use); then, through the connection
manager, that it is neither this node nor a node already connected. It also
says, when a TLS dial fails before a byte arrived, that the other end may
be a node without C{--tls}.

It owns the pins' use (not their file: the store writes them); it knows
nothing of slots or addresses beyond the peer's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from twisted.logger import Logger, LogLevel

from bitp2p import codec
from bitp2p.address import Address, AddressError, hostAddress
from bitp2p.errors import HandshakeFailed
from bitp2p.logs import UNSUMMARISED
from bitp2p.peer import Direction
from bitp2p.tls import peer_node_id

if TYPE_CHECKING:
    from bitp2p.config import NodeConfig
    from bitp2p.interfaces import IConnections
    from bitp2p.logs import RepeatedEvents
    from bitp2p.peer import Peer
    from bitp2p.tls import Identity, PinStore

log = Logger()

# The kind of the line of an inbound peer's TLS identity refused
# (RepeatedEvents): anyone can connect with a certificate that does not fit.
REFUSED_IDENTITIES = "TLS identities refused from inbound peers"


class Handshake:
    """
    Our C{version}, and the judgement of the peer's.

    @param pins: the current pin store (a callable: the node may replace it
        when it loads its data directory).
    @param repeated: where an inbound peer's refused identity is logged
        (the node's L{RepeatedEvents<bitp2p.logs.RepeatedEvents>}).
    @param minProtocol: peers of an older protocol version are refused (the
        wire format's C{minProtocol}: Bitcoin Core's 31800 on a Bitcoin
        network).
    """

    def __init__(
        self,
        config: NodeConfig,
        reactor,
        nodeId: Callable[[], str],
        connections: IConnections,
        identity: Identity | None,
        pins: Callable[[], PinStore],
        repeated: RepeatedEvents = UNSUMMARISED,
        minProtocol: int = 0,
    ) -> None:
        self._config = config
        self._minProtocol = minProtocol
        self._repeated = repeated
        self._reactor = reactor
        self._nodeId = nodeId
        self._connections = connections
        self._identity = identity
        self._pins = pins

    def versionFor(self, peer: Peer) -> dict:
        """
        The C{version} message to send to C{peer}.
        """
        remote = peer.remote_address
        try:
            seen_as = Address.of(remote.host, remote.port, remember=False)
        except (AddressError, AttributeError):
            seen_as = None
        listening = self._connections.listeningAddress
        return codec.version(
            self._nodeId(),
            listening.port if listening is not None else 0,
            user_agent=self._config.user_agent,
            timestamp=int(self._reactor.seconds()),
            addr_recv=seen_as,
        )

    def checkVersion(self, peer: Peer) -> Exception | None:
        """
        Judge the peer's C{version} (already stored on C{peer}): L{None} to
        go on, or the refusal that closes the connection.
        """
        if self._minProtocol and peer.protocol < self._minProtocol:
            return HandshakeFailed(
                f"obsolete protocol version {peer.protocol} (older than {self._minProtocol})"
            )
        if self._identity is not None:
            refusal = self._checkIdentity(peer)
            if refusal is not None:
                if peer.direction is Direction.INBOUND:
                    host = getattr(peer.remote_address, "host", "")
                    self._repeated.emit(
                        log,
                        LogLevel.warn,
                        REFUSED_IDENTITIES,
                        host,
                        "Refusing {peer}: {refusal}",
                        peer=peer,
                        refusal=refusal,
                    )
                else:
                    log.warn("Refusing {peer}: {refusal}", peer=peer, refusal=refusal)
                return refusal
        return self._connections.admitId(peer)

    def _checkIdentity(self, peer: Peer) -> Exception | None:
        """
        With TLS: the peer's certificate must be of the key its node id is
        the hash of, and of the id pinned for the address we dialed (or, for
        an inbound peer, for the address it says it listens on). An address
        we dial is pinned to the id first seen there (trust on first use);
        inbound peers are checked against pins but pin nothing, since they
        choose the port they claim.
        """
        certified = peer_node_id(peer.transport)
        if certified is None:
            return HandshakeFailed("no TLS certificate")
        if certified != peer.node_id:
            return HandshakeFailed(
                f"claims node id {peer.node_id[:16]}... but its certificate is of {certified[:16]}..."
            )
        pins = self._pins()
        if peer.dialed is not None:
            where = str(peer.dialed)
        else:
            remote = hostAddress(peer.remote_address)
            if remote is None or not peer.listen_port:
                return None
            where = str(Address.of(remote.host, peer.listen_port))
            if where not in pins:
                return None
        mismatch = pins.check(where, certified)
        return HandshakeFailed(mismatch) if mismatch is not None else None

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        if (
            self._identity is not None
            and peer.established_at is None
            and peer.messages_in == 0
            and peer.direction is Direction.OUTBOUND
        ):
            log.info(
                "TLS connection to {address} failed ({reason}): is it a node without --tls?",
                address=peer.dialed or peer.remote,
                reason=reason,
            )


__all__ = ["Handshake"]
