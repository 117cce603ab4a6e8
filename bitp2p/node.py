"""
The node: a C{twisted.application} service that listens, dials, and keeps a
healthy set of peers.

L{Node} owns everything that spans connections: the listening port, the
server and client factories, the live L{Peer}s, the
L{AddressBook<bitp2p.addrbook.AddressBook>}, the discouraged hosts, the data
directory, and four L{LoopingCall}s:

  - ping: every C{ping_interval_s}, ping every established peer;
  - maintenance: every C{maintenance_interval_s}, dial addresses from the book
    while fewer than C{max_outbound} outbound connections exist;
  - advertise: every C{advertise_interval_s}, tell every peer our address;
  - save: every C{save_interval_s}, write the peers file (with C{datadir}).

It implements L{PeerManager<bitp2p.peer.PeerManager>}, the narrow interface
through which each L{Peer} asks about the rest of the network. All time comes
from the injected reactor (an C{IReactorTime}), so tests drive every timer
with L{twisted.internet.task.Clock} or C{MemoryReactorClock}.
"""

from __future__ import annotations

import random
from typing import Callable

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    serverFromString,
)
from twisted.internet.error import ConnectError, ConnectingCancelledError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ClientFactory, ServerFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from bitp2p import codec
from bitp2p.address import Address, AddressError, network_group, split_host_port
from bitp2p.addrbook import AddressBook, AddressBookError
from bitp2p.constants import (
    ADDR_BUCKET_TOKENS,
    ADDR_FUTURE_SLACK_S,
    ADDR_RATE_PER_S,
    ADVERTISE_INTERVAL_S,
    CONNECT_TIMEOUT_S,
    DEFAULT_INTERFACE,
    DEFAULT_PORT,
    DEFAULT_SEED_HOST,
    DEFAULT_SEED_PORTS,
    DISCOURAGE_S,
    DISCOURAGE_THRESHOLD,
    HANDSHAKE_TIMEOUT_S,
    INACTIVITY_TIMEOUT_S,
    LISTEN_BACKLOG,
    MAINTENANCE_INTERVAL_S,
    MAX_CONNECTIONS,
    MAX_MESSAGE_BYTES,
    MAX_OUTBOUND,
    MAX_SEND_BUFFER_BYTES,
    PING_INTERVAL_S,
    PING_TIMEOUT_S,
    RELAY_FANOUT,
    SAVE_INTERVAL_S,
    SEED_FALLBACK_S,
    USER_AGENT,
)
from bitp2p.errors import (
    ConnectFailed,
    DuplicateConnection,
    LimitReached,
    NotRunning,
    PeerLost,
    ProtocolViolation,
    SelfConnection,
)
from bitp2p.peer import Direction, Peer, PeerSettings
from bitp2p.storage import DataDir, new_node_id
from bitp2p.wire import JSONLineWire

log = Logger()

# An addr entry seen longer ago than this is stored but not relayed.
RELAY_FRESH_S = 10 * 60
# When inbound slots are full, the peers with the fastest pings are never
# evicted (Bitcoin Core protects 8 by ping time, with many more slots).
EVICTION_PROTECT_FASTEST = 4

MessageHandler = Callable[[Peer, dict], object]


def _positive(instance, attribute, value) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name.replace('_', '-')} must be positive, not {value}")


def _non_negative_int(instance, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{attribute.name.replace('_', '-')} must be a whole number >= 0, not {value!r}"
        )


def _port(instance, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"port must be in 0..65535, not {value!r}")


def _seeds(instance, attribute, value) -> None:
    if value is None:
        return
    for seed in value:
        split_host_port(seed)


@attrs.frozen
class NodeConfig:
    """
    Everything that configures a L{Node}. Invalid values raise L{ValueError}
    with a one-line message at construction.

    @ivar port: the TCP port to listen on; 0 picks a free one.
    @ivar interface: the address to listen on (C{0.0.0.0}: all IPv4, C{::}: all).
    @ivar seeds: C{HOST:PORT} bootstrap addresses (host names resolve to all
        their addresses); L{None} for the built-in list, C{()} for none.
    @ivar datadir: where the node id and peers file are kept, or L{None}.
    @ivar node_id: a fixed node id; by default it comes from C{datadir} or is
        new and random.
    @ivar listen: whether to listen at all.
    """

    port: int = attrs.field(default=DEFAULT_PORT, validator=_port)
    interface: str = DEFAULT_INTERFACE
    seeds: tuple[str, ...] | None = attrs.field(
        default=None, converter=lambda v: None if v is None else tuple(v), validator=_seeds
    )
    datadir: str | None = None
    node_id: str | None = None
    listen: bool = True
    max_outbound: int = attrs.field(default=MAX_OUTBOUND, validator=_non_negative_int)
    max_connections: int = attrs.field(default=MAX_CONNECTIONS, validator=_non_negative_int)
    ping_interval_s: float = attrs.field(default=PING_INTERVAL_S, validator=_positive)
    ping_timeout_s: float = attrs.field(default=PING_TIMEOUT_S, validator=_positive)
    handshake_timeout_s: float = attrs.field(default=HANDSHAKE_TIMEOUT_S, validator=_positive)
    inactivity_timeout_s: float = attrs.field(default=INACTIVITY_TIMEOUT_S, validator=_positive)
    maintenance_interval_s: float = attrs.field(
        default=MAINTENANCE_INTERVAL_S, validator=_positive
    )
    advertise_interval_s: float = attrs.field(default=ADVERTISE_INTERVAL_S, validator=_positive)
    save_interval_s: float = attrs.field(default=SAVE_INTERVAL_S, validator=_positive)
    seed_fallback_s: float = attrs.field(default=SEED_FALLBACK_S, validator=_positive)
    connect_timeout_s: float = attrs.field(default=CONNECT_TIMEOUT_S, validator=_positive)
    max_message_bytes: int = attrs.field(default=MAX_MESSAGE_BYTES, validator=_positive)
    max_send_buffer_bytes: int = attrs.field(default=MAX_SEND_BUFFER_BYTES, validator=_positive)
    addr_rate_per_s: float = attrs.field(default=ADDR_RATE_PER_S, validator=_positive)
    addr_bucket_tokens: float = attrs.field(default=ADDR_BUCKET_TOKENS, validator=_positive)
    discourage_threshold: int = attrs.field(default=DISCOURAGE_THRESHOLD, validator=_positive)
    user_agent: str = USER_AGENT

    @property
    def outbound_slots(self) -> int:
        """
        Outbound connections kept: C{max_outbound}, within C{max_connections}.
        """
        return min(self.max_outbound, self.max_connections)

    @property
    def inbound_slots(self) -> int:
        """
        Inbound connections accepted: what the total leaves after the
        outbound slots are reserved.
        """
        return self.max_connections - self.outbound_slots

    def seed_list(self) -> list[tuple[str, int]]:
        """
        The bootstrap list as C{(host, port)} pairs.
        """
        if self.seeds is None:
            return [(DEFAULT_SEED_HOST, p) for p in DEFAULT_SEED_PORTS if p != self.port]
        return [split_host_port(seed) for seed in self.seeds]


class PeerServerFactory(ServerFactory):
    """
    Builds the protocol of each inbound connection, or refuses it.
    """

    noisy = False

    def __init__(self, node: Node) -> None:
        self.node = node

    def buildProtocol(self, addr):
        return self.node._acceptInbound(addr)


class PeerClientFactory(ClientFactory):
    """
    Builds the protocol of one outbound connection.

    @ivar dialed: the address dialed, when it is an IP literal.
    """

    noisy = False

    def __init__(self, node: Node, dialed: Address | None) -> None:
        self.node = node
        self.dialed = dialed

    def buildProtocol(self, addr):
        return self.node._buildPeer(Direction.OUTBOUND, self.dialed)


class _Unreachable:
    """
    The addresses maintenance must not dial: our own, the connected and the
    dialing ones, and those of discouraged hosts. A view, not a copy.
    """

    def __init__(self, node: Node, now: float) -> None:
        self._node = node
        self._busy = node._busyAddresses()
        self._now = now

    def __contains__(self, address: object) -> bool:
        return (
            address in self._busy
            or address in self._node._own
            or self._node.isDiscouraged(address.host, self._now)  # type: ignore[attr-defined]
        )


class Node(service.Service):
    """
    A bitp2p node. Start it as a service (C{setServiceParent},
    C{startService}); stop it with C{stopService}, which closes every
    connection and saves the address book.

    @ivar config: the L{NodeConfig}.
    @ivar node_id: this node's id.
    @ivar book: the L{AddressBook} of known addresses.
    """

    name = "bitp2p-node"

    def __init__(
        self,
        config: NodeConfig | None = None,
        reactor=None,
        rng: random.Random | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.config = config = config if config is not None else NodeConfig()
        self._reactor = reactor
        self._rng = rng if rng is not None else random.Random()
        self._datadir = DataDir(config.datadir) if config.datadir else None
        if config.node_id is not None:
            self.node_id = config.node_id
        elif self._datadir is not None:
            self.node_id = self._datadir.load_node_id(reactor.seconds())
        else:
            self.node_id = new_node_id()
        self.book = AddressBook(rng=self._rng)
        self._settings = PeerSettings(
            handshake_timeout_s=config.handshake_timeout_s,
            ping_timeout_s=config.ping_timeout_s,
            inactivity_timeout_s=config.inactivity_timeout_s,
            addr_rate_per_s=config.addr_rate_per_s,
            addr_bucket_tokens=config.addr_bucket_tokens,
        )
        self._serverFactory = PeerServerFactory(self)
        self._port: IListeningPort | None = None
        self._listeningAddress: Address | None = None  # worked out once, in _listen
        # A dict, not a set: iteration in connection order keeps runs with a
        # seeded rng reproducible (a set would follow memory addresses).
        self._connections: dict[Peer, None] = {}
        # Connections by direction, kept as they come and go: accepting one
        # must not cost a walk over thousands.
        self._counts = {Direction.INBOUND: 0, Direction.OUTBOUND: 0}
        self._by_id: dict[str, Peer] = {}
        self._dialing: dict[Address, Deferred] = {}
        self._own: set[Address] = set()
        self._violations: dict[str, int] = {}
        self._discouraged: dict[str, float] = {}
        self._handlers: dict[str, MessageHandler] = {}
        self._observers: list[tuple[Callable | None, Callable | None]] = []
        self._closing: list[tuple[Peer, Deferred]] = []
        self._seed_timer = None
        self._started_at = 0.0
        self._loops: list[tuple[LoopingCall, float]] = []
        for method, interval in (
            (self._maintain, config.maintenance_interval_s),
            (self.pingAll, config.ping_interval_s),
            (self.advertiseAll, config.advertise_interval_s),
            (self.save, config.save_interval_s),
        ):
            loop = LoopingCall(method)
            loop.clock = reactor
            self._loops.append((loop, interval))

    def __repr__(self) -> str:
        return f"<Node {self.node_id[:8]} {self.listeningAddress}>"

    # -- service --------------------------------------------------------------

    def privilegedStartService(self) -> None:
        self._listen()
        service.Service.privilegedStartService(self)

    def startService(self) -> None:
        self._listen()
        service.Service.startService(self)
        now = self._started_at = self._reactor.seconds()
        self._load(now)
        if not any(not info.seed for info in self.book):
            self._addSeeds()
        else:
            self._seed_timer = self._reactor.callLater(
                self.config.seed_fallback_s, self._seedFallback
            )
        for loop, interval in self._loops:
            loop.start(interval, now=loop.f == self._maintain)
        log.info(
            "Node {node_id} listening on {address}",
            node_id=self.node_id,
            address=self.listeningAddress,
        )

    def stopService(self) -> Deferred:
        service.Service.stopService(self)
        for loop, _ in self._loops:
            if loop.running:
                loop.stop()
        if self._seed_timer is not None and self._seed_timer.active():
            self._seed_timer.cancel()
        self._seed_timer = None
        for d in list(self._dialing.values()):
            d.cancel()
        closed = [self._whenClosed(peer) for peer in self._connections]
        for peer in list(self._connections):
            peer.close(PeerLost("node shutting down"))
        self.save()
        if self._port is not None:
            port, self._port = self._port, None
            self._listeningAddress = None
            closed.append(defer.maybeDeferred(port.stopListening))
        return defer.gatherResults(closed).addCallback(lambda _: None)

    def _listen(self) -> None:
        """
        Listen now, synchronously, so that a busy port fails the start.

        @raise twisted.internet.error.CannotListenError: if it cannot listen.
        """
        if self._port is not None or not self.config.listen:
            return
        interface = self.config.interface.replace(":", "\\:")
        endpoint = serverFromString(
            self._reactor,
            f"tcp:{self.config.port}:interface={interface}:backlog={LISTEN_BACKLOG}",
        )
        result: list = []
        endpoint.listen(self._serverFactory).addBoth(result.append)
        if isinstance(result[0], Failure):
            result[0].raiseException()
        self._port = result[0]
        bound = self._port.getHost()
        host = self.config.interface
        if host in ("0.0.0.0", "::"):
            host = bound.host
        self._listeningAddress = Address.of(host, bound.port)

    @property
    def reactor(self):
        """
        The reactor (and clock) this node runs on.
        """
        return self._reactor

    @property
    def listeningAddress(self) -> Address | None:
        """
        The address this node listens on (the real port when 0 was asked).
        """
        return self._listeningAddress

    @property
    def listeningPort(self) -> int:
        """
        The port announced in C{version}: 0 when not listening.
        """
        address = self.listeningAddress
        return address.port if address is not None else 0

    # -- public API -----------------------------------------------------------

    def connect(self, host: str, port: int) -> Deferred[Peer]:
        """
        Dial a peer and complete the handshake.

        @param host: an IP literal or a host name.
        @return: a Deferred that fires with the L{Peer} once the handshake is
            done (at once if that peer is already connected), or fails with a
            L{ConnectFailed} saying why.
        """
        if not self.running:
            return defer.fail(NotRunning("the node is not running"))
        try:
            address: Address | None = Address.of(host, port)
        except AddressError:
            address = None
            if not 0 < port <= 65535:
                return defer.fail(ConnectFailed(f"bad port {port}"))
        if address is not None:
            if address in self._own:
                return defer.fail(SelfConnection(f"{address} is this node"))
            for peer in self._connections:
                if peer.address == address:
                    return peer.whenEstablished()
            if address in self._dialing:
                return _mirror(self._dialing[address])
        if len(self._connections) + len(self._dialing) >= self.config.max_connections:
            return defer.fail(
                LimitReached(f"{self.config.max_connections} connections already")
            )
        return self._dial(host, port, address)

    def disconnect(self, node_id: str) -> Deferred[None]:
        """
        Close the connection to a peer.

        @param node_id: the peer's node id, or a prefix of it that only one
            connected peer has.
        @return: a Deferred that fires once the connection is closed.
        @raise LookupError: if no peer, or more than one, matches.
        """
        peer = self.findPeer(node_id)
        d = self._whenClosed(peer)
        peer.close(PeerLost("disconnected by request"))
        return d

    def findPeer(self, prefix: str) -> Peer:
        """
        The established peer whose node id is C{prefix} or starts with it.

        @raise LookupError: if none or several match.
        """
        if prefix in self._by_id:
            return self._by_id[prefix]
        matches = [p for p in self.peers() if p.node_id.startswith(prefix)]
        if len(matches) != 1:
            raise LookupError(
                f"no connected peer {prefix!r}"
                if not matches
                else f"{prefix!r} matches {len(matches)} peers"
            )
        return matches[0]

    def peers(self) -> list[Peer]:
        """
        The established peers.
        """
        return [p for p in self._connections if p.established]

    def observe(
        self,
        connected: Callable[[Peer], object] | None = None,
        disconnected: Callable[[Peer, Exception], object] | None = None,
    ) -> Callable[[], None]:
        """
        Be told when a peer completes its handshake (C{connected(peer)}) and
        when an established peer goes away (C{disconnected(peer, reason)}).

        @return: a function that stops the notifications.
        """
        entry = (connected, disconnected)
        self._observers.append(entry)
        return lambda: self._observers.remove(entry) if entry in self._observers else None

    def registerHandler(self, message_type: str, handler: MessageHandler) -> None:
        """
        Handle application messages of C{message_type}: C{handler(peer,
        message)} is called for each one received from an established peer.
        The protocol's own types cannot be taken over.
        """
        if message_type in codec.KNOWN_TYPES:
            raise ValueError(f"{message_type!r} is a protocol message type")
        self._handlers[message_type] = handler

    def broadcast(self, message: dict, exclude: Peer | None = None) -> int:
        """
        Send a message to every established peer but C{exclude}.

        @return: how many peers it was sent to.
        """
        count = 0
        frames: dict = {}  # encoded once, whatever the number of peers
        for peer in self.peers():
            if peer is not exclude:
                peer.send(message, frames)
                count += 1
        return count

    def pingAll(self) -> None:
        """
        Ping every established peer (the ping loop's work).
        """
        for peer in self.peers():
            peer.ping()

    def advertiseAll(self) -> None:
        """
        Tell every established peer our address (the advertise loop's work).
        """
        for peer in self.peers():
            peer.advertise()

    def isDiscouraged(self, host: str, now: float) -> bool:
        until = self._discouraged.get(host)
        if until is None:
            return False
        if until <= now:
            del self._discouraged[host]
            return False
        return True

    def status(self) -> dict:
        """
        A snapshot of the node, fit for JSON: its id and address, every
        established peer, the connections in progress, the known addresses.
        """
        now = self._reactor.seconds()
        peers = []
        for peer in sorted(self.peers(), key=lambda p: p.established_at or 0):
            wire = peer.wire
            peers.append(
                {
                    "node_id": peer.node_id,
                    "address": str(peer.address) if peer.address else None,
                    "remote": peer.remote,
                    "direction": peer.direction.value,
                    "user_agent": peer.user_agent,
                    "connected_since": peer.established_at,
                    "rtt_s": peer.rtt_s,
                    "messages_in": peer.messages_in,
                    "messages_out": peer.messages_out,
                    "bytes_in": wire.bytesIn,
                    "bytes_out": wire.bytesOut,
                }
            )
        known = [
            {
                "address": str(info.address),
                "last_seen": info.last_seen,
                "last_tried": info.last_tried,
                "last_success": info.last_success,
                "attempts": info.attempts,
                "seed": info.seed,
            }
            for info in sorted(self.book, key=lambda i: i.address)
        ]
        return {
            "node_id": self.node_id,
            "listening": str(self.listeningAddress) if self.listeningAddress else None,
            "user_agent": self.config.user_agent,
            "uptime_s": now - self._started_at if self.running else 0.0,
            "outbound": sum(p.direction is Direction.OUTBOUND for p in self.peers()),
            "inbound": sum(p.direction is Direction.INBOUND for p in self.peers()),
            "handshaking": sum(not p.established for p in self._connections),
            "dialing": len(self._dialing),
            "peers": peers,
            "known": known,
        }

    def save(self) -> None:
        """
        Write the address book and the discouraged hosts to the data
        directory, if there is one.
        """
        if self._datadir is None:
            return
        now = self._reactor.seconds()
        document = {
            "version": 1,
            "saved_at": now,
            "addresses": self.book.to_json(),
            "discouraged": {
                h: until for h, until in self._discouraged.items() if until > now
            },
        }
        try:
            self._datadir.save_peers(document)
        except OSError as e:
            log.error("Cannot save peers to {path}: {error}", path=str(self._datadir.peers_path), error=e)

    # -- PeerManager ----------------------------------------------------------

    def versionFor(self, peer: Peer) -> dict:
        remote = peer.wire.getPeer()
        try:
            seen_as = Address.of(remote.host, remote.port)
        except (AddressError, AttributeError):
            seen_as = None
        return codec.version(
            self.node_id,
            self.listeningPort,
            user_agent=self.config.user_agent,
            timestamp=int(self._reactor.seconds()),
            addr_recv=seen_as,
        )

    def checkVersion(self, peer: Peer) -> Exception | None:
        if peer.node_id == self.node_id:
            # The other end of this connection is one of our own outbound
            # connections, still waiting for a version: close that one too,
            # and never dial its address again.
            remote = _hostPort(peer.wire.getPeer())
            for other in list(self._connections):
                if other.direction is Direction.OUTBOUND and _hostPort(other.wire.getHost()) == remote:
                    self._isOwn(other.dialed)
                    other.close(SelfConnection(f"{other.dialed or other.remote} is this node"))
            self._isOwn(peer.dialed)
            return SelfConnection("connected to itself")
        existing = self._by_id.get(peer.node_id)
        if existing is not None and existing is not peer:
            duplicate = DuplicateConnection(f"already connected to {peer.node_id}")
            if existing.established or existing.direction is peer.direction:
                return duplicate  # the newer connection goes
            # Both nodes dialed each other at once, and each sees the other
            # connection as the newer one. Both keep the connection dialed
            # by the node with the smaller id, so exactly one survives.
            ours = Direction.OUTBOUND if self.node_id < peer.node_id else Direction.INBOUND
            if peer.direction is not ours:
                return duplicate
            existing.close(duplicate)
        self._by_id[peer.node_id] = peer
        return None

    def peerEstablished(self, peer: Peer) -> None:
        now = self._reactor.seconds()
        if peer.dialed is not None:
            self.book.mark_success(peer.dialed, now)
        log.info(
            "Connected to {node_id} at {address} ({direction}, {user_agent})",
            node_id=peer.node_id,
            address=peer.address or peer.remote,
            direction=peer.direction.value,
            user_agent=peer.user_agent,
        )
        for connected, _ in list(self._observers):
            if connected is not None:
                self._notify(connected, peer)

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        if peer in self._connections:
            del self._connections[peer]
            self._counts[peer.direction] -= 1
        if peer.node_id is not None and self._by_id.get(peer.node_id) is peer:
            del self._by_id[peer.node_id]
        was_established = peer.established_at is not None
        if (
            peer.dialed is not None
            and not was_established
            and not isinstance(reason, (SelfConnection, DuplicateConnection))
            and self.running
        ):
            self.book.mark_failure(peer.dialed, self._reactor.seconds())
        if was_established:
            log.info(
                "Disconnected from {node_id} at {address}: {reason}",
                node_id=peer.node_id,
                address=peer.address or peer.remote,
                reason=reason,
            )
            for _, disconnected in list(self._observers):
                if disconnected is not None:
                    self._notify(disconnected, peer, reason)
        waiting = [d for p, d in self._closing if p is peer]
        self._closing = [(p, d) for p, d in self._closing if p is not peer]
        for d in waiting:
            d.callback(None)

    def violationFrom(self, peer: Peer, violation: ProtocolViolation) -> None:
        host = getattr(peer.wire.getPeer(), "host", None)
        if host is None:
            return
        count = self._violations.get(host, 0) + 1
        if count >= self.config.discourage_threshold:
            self._violations.pop(host, None)
            self._discouraged[host] = self._reactor.seconds() + DISCOURAGE_S
            log.warn(
                "Discouraging {host} for {hours} h after {count} protocol violations",
                host=host,
                hours=DISCOURAGE_S // 3600,
                count=count,
            )
        else:
            self._violations[host] = count

    def advertisementFor(self, peer: Peer) -> Address | None:
        port = self.listeningPort
        if not port:
            return None
        host = self.listeningAddress.host
        if host in ("0.0.0.0", "::"):
            host = getattr(peer.wire.getHost(), "host", None)
        try:
            own = Address.of(host, port)
        except (AddressError, AttributeError):
            return None
        self._own.add(own)
        return own

    def addressesFor(self, peer: Peer, count: int) -> list[tuple[Address, int | None]]:
        now = self._reactor.seconds()
        return [
            (info.address, int(info.last_seen) if info.last_seen else None)
            for info in self.book.sample(count, now)
            if info.address not in self._own
        ]

    def addressesReceived(
        self, peer: Peer, entries: list[tuple[Address, int | None]], relay: bool
    ) -> None:
        now = self._reactor.seconds()
        from_loopback = _isLoopback(peer.wire.getPeer())
        fresh = []
        for address, seen in entries:
            if address in self._own or (address.ip.is_loopback and not from_loopback):
                continue
            if seen is not None and seen > now + ADDR_FUTURE_SLACK_S:
                seen = int(now)
            if self.book.add(address, now, seen=seen) and (
                seen is None or seen >= now - RELAY_FRESH_S
            ):
                fresh.append((address, seen))
        if relay and fresh:
            self._relay(peer, fresh)

    @property
    def applicationHandlers(self) -> dict[str, MessageHandler]:
        return self._handlers

    # -- internals ------------------------------------------------------------

    def _acceptInbound(self, addr) -> JSONLineWire | None:
        count = self._counts[Direction.INBOUND]
        host = getattr(addr, "host", "")
        limit = self.config.inbound_slots
        discouraged = self.isDiscouraged(host, self._reactor.seconds())
        if discouraged:
            # Like Bitcoin Core: a discouraged host may still take a free
            # slot, but never the last one, and never evicts anyone.
            limit -= 1
        if count >= limit and (discouraged or not self._evictInbound(self._inboundPeers())):
            log.info(
                "Refusing inbound connection from {host}: {inbound} inbound already",
                host=host,
                inbound=count,
            )
            return None
        return self._buildPeer(Direction.INBOUND, None)

    def _evictInbound(self, inbound: list[Peer]) -> bool:
        """
        Make room for a new inbound connection, as Bitcoin Core's
        AttemptToEvictConnection does: among established inbound peers,
        protect the 4 with the fastest pings and the older half, then close
        the youngest peer of the network group holding the most of the rest.
        A full node thus still admits newcomers (a seed must, or nodes that
        arrive late never learn an address), while an attacker cannot push
        out the long-lived, well-connected peers.

        @return: whether a peer was evicted.
        """
        candidates = [p for p in inbound if p.established and p.close_reason is None]
        timed = sorted((p for p in candidates if p.rtt_s is not None), key=lambda p: p.rtt_s)
        protected = set(timed[:EVICTION_PROTECT_FASTEST])
        candidates = [p for p in candidates if p not in protected]
        candidates.sort(key=lambda p: p.established_at)
        candidates = candidates[len(candidates) // 2 :]
        if not candidates:
            return False
        groups: dict[str, list[Peer]] = {}
        for peer in candidates:
            remote = peer.wire.getPeer()
            try:
                group = network_group(Address.of(remote.host, 0))
            except (AddressError, AttributeError):
                group = "?"
            groups.setdefault(group, []).append(peer)
        largest = max(
            groups.values(), key=lambda ps: (len(ps), max(p.established_at for p in ps))
        )
        victim = max(largest, key=lambda p: p.established_at)
        log.info("Inbound slots full: evicting {peer} to make room", peer=victim)
        victim.close(PeerLost("evicted to make room for a new connection"))
        return True

    def _buildPeer(self, direction: Direction, dialed: Address | None) -> JSONLineWire:
        peer = Peer(
            self,
            self._reactor,
            direction,
            settings=self._settings,
            rng=self._rng,
            dialed=dialed,
        )
        self._connections[peer] = None
        self._counts[direction] += 1
        return JSONLineWire(
            peer, self.config.max_message_bytes, self.config.max_send_buffer_bytes
        )

    def _endpointFor(self, host: str, port: int, address: Address | None):
        timeout = self.config.connect_timeout_s
        if address is None:
            return HostnameEndpoint(self._reactor, host, port, timeout=timeout)
        bind = self._bindAddressFor(address)
        if address.is_ipv6:
            return TCP6ClientEndpoint(
                self._reactor, address.host, port, timeout=timeout, bindAddress=bind
            )
        return TCP4ClientEndpoint(
            self._reactor, address.host, port, timeout=timeout, bindAddress=bind
        )

    def _bindAddressFor(self, address: Address) -> tuple[str, int] | None:
        """
        Dial from the listening interface when it is one specific address
        that can reach C{address}, so that the peer sees this node's
        connections come from the address it listens on. (Several nodes on
        one host, each on its own 127.x.y.z, would otherwise all appear as
        127.0.0.1.)
        """
        try:
            own = Address.of(self.config.interface, 0)
        except AddressError:
            return None
        if (
            own.ip.is_unspecified
            or own.is_ipv6 != address.is_ipv6
            or own.ip.is_loopback != address.ip.is_loopback
        ):
            return None
        return (own.host, 0)

    def _dial(self, host: str, port: int, address: Address | None) -> Deferred[Peer]:
        now = self._reactor.seconds()
        if address is not None:
            self.book.mark_attempt(address, now)
        endpoint = self._endpointFor(host, port, address)
        connecting = endpoint.connect(PeerClientFactory(self, address))
        result: Deferred[Peer] = Deferred(lambda _: connecting.cancel())
        if address is not None:
            self._dialing[address] = result

        def connected(wire: JSONLineWire) -> None:
            if address is not None:
                self._dialing.pop(address, None)
            peer = wire.peer
            peer.whenEstablished().addErrback(self._alreadyConnected, peer).chainDeferred(result)

        def failed(failure: Failure) -> None:
            if address is not None:
                self._dialing.pop(address, None)
            if failure.check(defer.CancelledError, ConnectingCancelledError):
                result.errback(ConnectFailed(f"dialing {host}:{port} cancelled"))
                return
            if address is not None and self.running:
                self.book.mark_failure(address, self._reactor.seconds())
            error = failure.value
            if failure.check(ConnectError):
                error = ConnectFailed(
                    f"cannot connect to {host}:{port}: {failure.getErrorMessage()}"
                )
            result.errback(error)

        connecting.addCallbacks(connected, failed)
        return result

    def _alreadyConnected(self, failure: Failure, peer: Peer) -> Deferred[Peer] | Failure:
        """
        A dial that found the node already connected over another
        connection gets that connection's peer.
        """
        if failure.check(DuplicateConnection):
            other = self._by_id.get(peer.node_id)
            if other is not None and other is not peer:
                return other.whenEstablished()
        return failure

    def _isOwn(self, address: Address | None) -> None:
        if address is not None:
            self._own.add(address)
            self.book.remove(address)

    def _busyAddresses(self) -> set[Address]:
        busy = set(self._dialing)
        for peer in self._connections:
            address = peer.address
            if address is not None:
                busy.add(address)
        return busy

    def _outboundCount(self) -> int:
        return len(self._dialing) + self._counts[Direction.OUTBOUND]

    def _inboundPeers(self) -> list[Peer]:
        return [p for p in self._connections if p.direction is Direction.INBOUND]

    def _maintain(self) -> None:
        """
        Dial addresses from the book until the outbound slots are full or the
        book has nothing ready to dial.
        """
        if not self.running:
            return
        missing = self.config.outbound_slots - self._outboundCount()
        if missing <= 0:
            return
        now = self._reactor.seconds()
        unreachable = _Unreachable(self, now)
        groups = {
            network_group(p.address)
            for p in self._connections
            if p.direction is Direction.OUTBOUND and p.address is not None
        }
        for _ in range(missing):
            address = self.book.select(now, exclude=unreachable, exclude_groups=groups)
            if address is None:
                return
            groups.add(network_group(address))
            unreachable._busy.add(address)
            log.debug("Dialing {address}", address=address)
            self._dial(address.host, address.port, address).addErrback(
                self._dialFailed, address
            )

    def _dialFailed(self, failure: Failure, address: Address) -> None:
        log.debug(
            "Could not connect to {address}: {error}",
            address=address,
            error=failure.getErrorMessage(),
        )

    def _addSeeds(self) -> None:
        """
        Put the bootstrap addresses in the book; host names are resolved to
        all their addresses first.
        """
        now = self._reactor.seconds()
        for host, port in self.config.seed_list():
            try:
                address = Address.of(host, port)
            except AddressError:
                self._resolveSeed(host, port)
                continue
            if address not in self._own:
                self.book.add(address, now, seed=True)

    def _resolveSeed(self, host: str, port: int) -> None:
        resolver = getattr(self._reactor, "nameResolver", None)
        if resolver is None:
            log.warn("Cannot resolve seed {host}: no resolver", host=host)
            return
        receiver = _Collect()
        resolver.resolveHostName(receiver, host, port)

        def done(addresses: list[Address]) -> None:
            if not addresses:
                log.warn("Seed {host} resolved to no address", host=host)
            now = self._reactor.seconds()
            for address in addresses:
                if self.running and address not in self._own:
                    self.book.add(address, now, seed=True)
            self._maintain()

        receiver.done.addCallback(done)

    def _seedFallback(self) -> None:
        self._seed_timer = None
        if not self.peers():
            log.info("No peer yet: falling back to the seeds")
            self._addSeeds()
            self._maintain()

    def _load(self, now: float) -> None:
        if self._datadir is None:
            return
        document = self._datadir.load_peers(now)
        if document is None:
            return
        try:
            self.book = AddressBook.from_json(document.get("addresses"), rng=self._rng)
            discouraged = document.get("discouraged", {})
            if not isinstance(discouraged, dict):
                raise AddressBookError("discouraged is not an object")
        except AddressBookError as e:
            self._datadir.peers_damaged(now, str(e))
            self.book = AddressBook(rng=self._rng)
            return
        self._discouraged = {
            h: float(t)
            for h, t in discouraged.items()
            if isinstance(h, str) and isinstance(t, (int, float)) and t > now
        }
        log.info(
            "Loaded {count} addresses from {path}",
            count=len(self.book),
            path=str(self._datadir.peers_path),
        )

    def _relay(self, source: Peer, entries: list[tuple[Address, int | None]]) -> None:
        """
        Pass fresh addresses on: each goes to C{RELAY_FANOUT} peers chosen at
        random among those (other than its source) that do not know it yet,
        that is, that have neither sent it to us nor been sent it by us.
        Without that filter every periodic self-advertisement, being news
        (a newer time) to every node, flooded the whole network every
        advertise interval, so that each node's traffic grew with the size
        of the network (C{bench/convergence.py}); with it, once every link
        has carried an address, its re-advertisements stop at the first hop.
        """
        others = [p for p in self.peers() if p is not source]
        if not others:
            return
        batches: dict[Peer, list[tuple[Address, int | None]]] = {}
        for entry in entries:
            address = entry[0]
            candidates = [p for p in others if not p.knowsAddress(address)]
            for peer in self._rng.sample(candidates, min(RELAY_FANOUT, len(candidates))):
                batches.setdefault(peer, []).append(entry)
        for peer, batch in batches.items():
            peer.rememberAddresses(address for address, _ in batch)
            peer.send(codec.addr(batch))

    def _whenClosed(self, peer: Peer) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._closing.append((peer, d))
        return d

    def _notify(self, callback: Callable, *args) -> None:
        try:
            callback(*args)
        except Exception:
            log.failure("Peer observer {callback!r} failed", callback=callback)


def _mirror(original: Deferred) -> Deferred:
    """
    A new Deferred with the result of C{original}, leaving C{original}'s own
    result untouched for its other users.
    """
    copy: Deferred = Deferred()

    def passOn(result):
        if isinstance(result, Failure):
            copy.errback(result)
        else:
            copy.callback(result)
        return result

    original.addBoth(passOn)
    return copy


class _Collect:
    """
    An C{IResolutionReceiver} that gathers every address of a host name.
    """

    def __init__(self) -> None:
        self.addresses: list[Address] = []
        self.done: Deferred[list[Address]] = Deferred()

    def resolutionBegan(self, resolution) -> None:
        pass

    def addressResolved(self, address) -> None:
        try:
            found = Address.of(address.host, address.port)
        except AddressError:
            return
        if found not in self.addresses:
            self.addresses.append(found)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


def _hostPort(address) -> tuple[str, int] | None:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    return None if host is None else (host, port)


def _isLoopback(address) -> bool:
    host = getattr(address, "host", None)
    if not isinstance(address, (IPv4Address, IPv6Address)) or host is None:
        return False
    try:
        return Address.of(host, 0).ip.is_loopback
    except AddressError:
        return False
