"""
The node: a C{twisted.application} service that listens, dials, and keeps a
healthy, diverse set of peers.

L{Node} owns everything that spans connections: the listening port, the
server and client factories, the live L{Peer}s, the address manager
(L{AddrMan<bitp2p.addrman.AddrMan>}), the bans and discouraged hosts
(L{BanMan<bitp2p.banman.BanMan>}), the data directory, and four
L{LoopingCall}s:

  - ping: every C{ping_interval_s}, ping every established peer;
  - maintenance: every C{maintenance_interval_s}, the connection manager's
    round (below);
  - advertise: every C{advertise_interval_s}, tell every peer our address;
  - save: every C{save_interval_s}, write the peers and ban files; and
    C{growth_save_delay_s} after the address book has doubled since it was
    last saved or loaded, so that a node killed before its first periodic
    save does not come back knowing only its seeds.

The connection manager, modelled on Bitcoin Core's CConnman, is the
maintenance round:

  - manual peers (C{--addnode}, C{--connect}) are kept connected, redialed
    with backoff, outside the C{max_outbound} count;
  - C{--seednode} addresses are dialed once for their addresses
    (ADDR_FETCH connections, closed once the C{getaddr} answer arrives);
  - unless C{--connect} is given, the outbound slots are filled: first with
    the anchors (the outbound peers of the last run), then with addresses
    drawn from the address manager, never two in one network group (IPv4
    /16, IPv6 /32), never a banned, discouraged, busy or own address, and
    not an address in its retry backoff;
  - when every outbound slot is held by a connection, a feeler (one at a time,
    about every C{feeler_interval_s}) tests an address of the "new" table
    (or the old entry of a pending "tried" collision); one that answers is
    promoted to "tried", and the feeler closes.

Inbound connections are accepted up to the slots C{max_connections} leaves
after the outbound ones, at most C{1/INBOUND_GROUP_SHARE} of them from one
network group; when full, one is evicted by Bitcoin Core's rules
(L{bitp2p.eviction}). Banned hosts are refused; discouraged ones may only
take a free slot, never the last, and never evict.

Local networks: loopback and private addresses are grouped by /16 like
public ones, so nodes on 127.1.0.1 and 127.2.0.1 are in different groups.
But a loopback or private address in one of the node's own groups (that of
its listening address, of the local end of its connections, and 127.0.0.0/16
when it listens on all interfaces) is on the same machine or network as the
node: such addresses are exempt from the one-per-group rule and the inbound
group cap, so that many nodes on one address (C{127.0.0.1}, ports 5000,
5001, ...) still form a network. An attacker cannot use this from outside:
loopback addresses are only accepted from loopback peers, and public
addresses never get the exemption.

It implements L{PeerManager<bitp2p.peer.PeerManager>}, the narrow interface
through which each L{Peer} asks about the rest of the network. All time comes
from the injected reactor (an C{IReactorTime}), so tests drive every timer
with L{twisted.internet.task.Clock} or C{MemoryReactorClock}.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import random
import secrets
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
    clientFromString,
)
from twisted.internet.error import ConnectError, ConnectingCancelledError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ClientFactory, ServerFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from bitp2p import codec
from bitp2p.address import (
    Address,
    AddressError,
    is_local_range,
    network_group,
    parse_address,
    split_host_port,
)
from bitp2p.addrbook import AddressBook, AddressBookError
from bitp2p.addrman import AddrMan, AddrManError
from bitp2p.banman import BanError, BanMan
from bitp2p.constants import (
    ADDR_BUCKET_TOKENS,
    ADDR_FETCH_TIMEOUT_S,
    ADDR_FUTURE_SLACK_S,
    ADDR_RATE_PER_S,
    ADDR_TIME_PENALTY_S,
    ADDR_UNKNOWN_AGE_S,
    ADVERTISE_INTERVAL_S,
    ANCHORS_FILE,
    BANLIST_FILE,
    CONNECT_TIMEOUT_S,
    DEFAULT_BAN_S,
    DEFAULT_INTERFACE,
    DEFAULT_PORT,
    DEFAULT_SEED_HOST,
    DEFAULT_SEED_PORTS,
    DISCOURAGE_S,
    DISCOURAGE_THRESHOLD,
    FEELER_INTERVAL_S,
    FEELER_TIMEOUT_S,
    GETADDR_MAX_PCT,
    GETADDR_MIN_COUNT,
    GOSSIP_HOPS,
    GOSSIP_PUSH_MAX_BYTES,
    GOSSIP_RATE_PER_S,
    GOSSIP_SEEN_S,
    GROWTH_SAVE_DELAY_S,
    HANDSHAKE_TIMEOUT_S,
    INACTIVITY_TIMEOUT_S,
    INBOUND_GROUP_MIN,
    INBOUND_GROUP_SHARE,
    LISTEN_BACKLOG,
    MAINTENANCE_INTERVAL_S,
    MANUAL_RETRY_MAX_S,
    MAX_CONNECTIONS,
    MAX_MESSAGE_BYTES,
    MAX_OUTBOUND,
    MAX_SEND_BUFFER_BYTES,
    OUTBOUND_SELECT_TRIES,
    PEERS_FILE,
    PINS_FILE,
    PING_INTERVAL_S,
    PING_TIMEOUT_S,
    RECENT_TRY_S,
    RECENT_TRY_TRIES,
    RELAY_FANOUT,
    RETRY_BASE_S,
    RETRY_MAX_S,
    SAVE_INTERVAL_S,
    SEED_FALLBACK_S,
    STALE_HANDSHAKE_S,
    USER_AGENT,
)
from bitp2p.errors import (
    ConnectFailed,
    DuplicateConnection,
    HandshakeFailed,
    LimitReached,
    NotRunning,
    PeerLost,
    ProtocolViolation,
    SelfConnection,
)
from bitp2p.endpoints import Target, check_listen, listenNow, parse_target, serverEndpoint
from bitp2p.eviction import EvictionCandidate, select_to_evict
from bitp2p.gossip import CONTROL_TYPES, GOSSIP_FIELD, MAX_HOPS, Gossip, GossipSettings
from bitp2p.peer import OTHER_TYPE, ConnectionType, Direction, Peer, PeerSettings
from bitp2p.storage import DataDir, new_node_id
from bitp2p.tls import Identity, PinStore, peer_node_id
from bitp2p.wire import JSONLineWire

log = Logger()

# An addr entry seen longer ago than this is stored but not relayed.
RELAY_FRESH_S = 10 * 60
# Saved document kinds and versions (see bitp2p.storage).
PEERS_FORMAT = ("bitp2p-peers", 2)
BANLIST_FORMAT = ("bitp2p-banlist", 1)
ANCHORS_FORMAT = ("bitp2p-anchors", 1)
PINS_FORMAT = ("bitp2p-pins", 1)
# Most (direction, type) keys in the node's traffic totals: peers bound their
# own types, but a stream of peers each sending new ones must not grow it.
MAX_TRAFFIC_KEYS = 512
# Connections that exist for one job and close: not peers in the usual sense
# (no relay, no broadcast, no observers).
SHORT_LIVED = (ConnectionType.FEELER, ConnectionType.ADDR_FETCH)

MessageHandler = Callable[[Peer, dict], object]
MessageValidator = Callable[[dict], "dict | None"]


@attrs.frozen
class MessageType:
    """
    An application message type: its name (the C{type} field), the function
    that checks a received one, and the one that handles it.
    """

    name: str
    handler: MessageHandler
    validator: MessageValidator | None = None


def _positive(instance, attribute, value) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name.replace('_', '-')} must be positive, not {value}")


def _non_negative_int(instance, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{attribute.name.replace('_', '-')} must be a whole number >= 0, not {value!r}"
        )


def _optional_positive_int(instance, attribute, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"{attribute.name.replace('_', '-')} must be a whole number >= 1, not {value!r}"
        )


def _port(instance, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"port must be in 0..65535, not {value!r}")


def _hostPorts(instance, attribute, value) -> None:
    if value is None:
        return
    for entry in value:
        split_host_port(entry)


def _targets(instance, attribute, value) -> None:
    for entry in value:
        parse_target(entry)


def _listenEndpoints(instance, attribute, value) -> None:
    for entry in value:
        check_listen(entry)


def _tupleOrNone(value):
    return None if value is None else tuple(value)


def _hops(instance, attribute, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_HOPS:
        raise ValueError(f"{attribute.name} must be an integer from 1 to {MAX_HOPS}, not {value!r}")


def _addressManager(instance, attribute, value) -> None:
    if value not in ("addrman", "simple"):
        raise ValueError(f"address-manager must be 'addrman' or 'simple', not {value!r}")


def retry_delay(failures: int) -> float:
    """
    Seconds to wait after a try, given the failures since the last success:
    C{RETRY_BASE_S * 2**(failures-1)}, at most C{RETRY_MAX_S}; 0 for none.
    So a dead address is retried after 2, 4, 8 ... seconds, up to every 10
    minutes, never in a tight loop.
    """
    if failures <= 0:
        return 0.0
    return float(min(RETRY_BASE_S * 2 ** min(failures - 1, 32), RETRY_MAX_S))


@attrs.frozen
class NodeConfig:
    """
    Everything that configures a L{Node}. Invalid values raise L{ValueError}
    with a one-line message at construction.

    @ivar port: the TCP port to listen on; 0 picks a free one.
    @ivar interface: the address to listen on (C{0.0.0.0}: all IPv4, C{::}: all).
    @ivar seeds: C{HOST:PORT} bootstrap addresses (host names resolve to all
        their addresses), used when the address manager is empty, or when
        there is still no peer C{seed_fallback_s} after start; L{None} for
        the built-in list, C{()} for none.
    @ivar addnodes: peers always kept connected (C{--addnode}): C{HOST:PORT}
        or client endpoint strings (L{bitp2p.endpoints.parse_target}).
    @ivar connect: peers to connect to, and only those: no automatic
        outbound connections, no seeds, no feelers (C{--connect}); as
        C{addnodes}.
    @ivar seednodes: C{HOST:PORT} nodes dialed once at start to fetch
        addresses (C{--seednode}).
    @ivar datadir: where the node id, peers, bans and anchors are kept, or
        L{None}.
    @ivar node_id: a fixed node id; by default it comes from C{datadir} or is
        new and random.
    @ivar listen: whether to listen at all.
    @ivar listen_endpoints: server endpoint strings to listen on (C{tcp:5000},
        C{unix:/run/bitp2p.sock}, ...); when empty, C{port} and C{interface}
        say where. The first TCP one is the address the node advertises.
    @ivar max_inbound_per_group: most inbound connections from one network
        group; L{None}: 1/8 of the inbound slots, and at least 4.
    @ivar address_manager: C{"addrman"} (Bitcoin Core's bucketed tables, the
        default) or C{"simple"} (bitp2p 0.1's flat book, for comparison).
    @ivar tls: speak TLS to peers, with a key pair kept in C{datadir}; the
        node id is then the hash of the public key (L{bitp2p.tls}).
    @ivar gossip_hops: links a broadcast may travel (L{bitp2p.gossip}).
    @ivar gossip_seen_s: how long a gossiped message's id is remembered.
    @ivar gossip_push_max_bytes: gossiped messages longer than this are
        announced (C{inv}/C{getdata}) rather than pushed.
    @ivar gossip_rate_per_s: gossiped messages (and announced ids) taken
        from one peer per second on average, 10 seconds' worth at once; more
        are dropped.
    """

    port: int = attrs.field(default=DEFAULT_PORT, validator=_port)
    interface: str = DEFAULT_INTERFACE
    seeds: tuple[str, ...] | None = attrs.field(
        default=None, converter=_tupleOrNone, validator=_hostPorts
    )
    addnodes: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_targets)
    connect: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_targets)
    seednodes: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_hostPorts)
    datadir: str | None = None
    node_id: str | None = None
    listen: bool = True
    listen_endpoints: tuple[str, ...] = attrs.field(
        default=(), converter=tuple, validator=_listenEndpoints
    )
    max_outbound: int = attrs.field(default=MAX_OUTBOUND, validator=_non_negative_int)
    max_connections: int = attrs.field(default=MAX_CONNECTIONS, validator=_non_negative_int)
    max_inbound_per_group: int | None = attrs.field(
        default=None, validator=_optional_positive_int
    )
    ping_interval_s: float = attrs.field(default=PING_INTERVAL_S, validator=_positive)
    ping_timeout_s: float = attrs.field(default=PING_TIMEOUT_S, validator=_positive)
    handshake_timeout_s: float = attrs.field(default=HANDSHAKE_TIMEOUT_S, validator=_positive)
    stale_handshake_s: float = attrs.field(default=STALE_HANDSHAKE_S, validator=_positive)
    inactivity_timeout_s: float = attrs.field(default=INACTIVITY_TIMEOUT_S, validator=_positive)
    maintenance_interval_s: float = attrs.field(
        default=MAINTENANCE_INTERVAL_S, validator=_positive
    )
    advertise_interval_s: float = attrs.field(default=ADVERTISE_INTERVAL_S, validator=_positive)
    save_interval_s: float = attrs.field(default=SAVE_INTERVAL_S, validator=_positive)
    growth_save_delay_s: float = attrs.field(default=GROWTH_SAVE_DELAY_S, validator=_positive)
    seed_fallback_s: float = attrs.field(default=SEED_FALLBACK_S, validator=_positive)
    feeler_interval_s: float = attrs.field(default=FEELER_INTERVAL_S, validator=_positive)
    connect_timeout_s: float = attrs.field(default=CONNECT_TIMEOUT_S, validator=_positive)
    max_message_bytes: int = attrs.field(default=MAX_MESSAGE_BYTES, validator=_positive)
    max_send_buffer_bytes: int = attrs.field(default=MAX_SEND_BUFFER_BYTES, validator=_positive)
    addr_rate_per_s: float = attrs.field(default=ADDR_RATE_PER_S, validator=_positive)
    addr_bucket_tokens: float = attrs.field(default=ADDR_BUCKET_TOKENS, validator=_positive)
    discourage_threshold: int = attrs.field(default=DISCOURAGE_THRESHOLD, validator=_positive)
    address_manager: str = attrs.field(default="addrman", validator=_addressManager)
    gossip_hops: int = attrs.field(default=GOSSIP_HOPS, validator=_hops)
    gossip_seen_s: float = attrs.field(default=GOSSIP_SEEN_S, validator=_positive)
    gossip_push_max_bytes: int = attrs.field(
        default=GOSSIP_PUSH_MAX_BYTES, validator=_non_negative_int
    )
    gossip_rate_per_s: float = attrs.field(default=GOSSIP_RATE_PER_S, validator=_positive)
    user_agent: str = USER_AGENT
    tls: bool = False

    def __attrs_post_init__(self) -> None:
        if self.tls and self.node_id is not None:
            raise ValueError("with tls the node id is the hash of the node's key: give no node_id")

    @property
    def outbound_slots(self) -> int:
        """
        Automatic outbound connections kept: C{max_outbound}, within
        C{max_connections}.
        """
        return min(self.max_outbound, self.max_connections)

    @property
    def inbound_slots(self) -> int:
        """
        Inbound connections accepted: what the total leaves after the
        outbound slots are reserved.
        """
        return self.max_connections - self.outbound_slots

    @property
    def inbound_group_cap(self) -> int:
        """
        Most inbound connections from one network group.
        """
        if self.max_inbound_per_group is not None:
            return self.max_inbound_per_group
        return max(INBOUND_GROUP_MIN, self.inbound_slots // INBOUND_GROUP_SHARE)

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

    noisy = False  # the node logs what matters itself

    def __init__(self, node: Node) -> None:
        self.node = node

    def buildProtocol(self, addr):
        return self.node._acceptInbound(addr)


class PeerClientFactory(ClientFactory):
    """
    Builds the protocol of one outbound connection.

    @ivar dialed: the address dialed, when it is an IP literal.
    @ivar kind: the L{ConnectionType} of the connection.
    """

    noisy = False

    def __init__(self, node: Node, dialed: Address | None, kind: ConnectionType) -> None:
        self.node = node
        self.dialed = dialed
        self.kind = kind

    noisy = False

    def buildProtocol(self, addr):
        return self.node._buildPeer(Direction.OUTBOUND, self.dialed, self.kind)


@attrs.define(eq=False)
class _Manual:
    """
    One C{--addnode} or C{--connect} peer, and its redial state.
    """

    target: Target
    failures: int = 0
    next_try: float = 0.0
    peer: Peer | None = None
    dialing: bool = False

    @property
    def address(self) -> Address | None:
        return self.target.address

    def __str__(self) -> str:
        return str(self.target)


class Node(service.Service):
    """
    A bitp2p node. Start it as a service (C{setServiceParent},
    C{startService}); stop it with C{stopService}, which closes every
    connection and saves the address manager, the bans and the anchors.

    @ivar config: the L{NodeConfig}.
    @ivar node_id: this node's id.
    @ivar book: the address manager (L{AddrMan}, or the simple
        L{AddressBook} when C{config.address_manager} is C{"simple"}).
    @ivar bans: the L{BanMan}: bans (saved) and discouraged hosts (not).
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
        # Selection, relay targets and eviction must be unpredictable to an
        # attacker who sees our ping nonces: the default source is the
        # system's, not a Mersenne Twister (tests inject a seeded one).
        self._rng = rng if rng is not None else random.SystemRandom()
        self._secret = (lambda n: rng.randbytes(n)) if rng is not None else secrets.token_bytes
        self._relayKey = self._secret(32)
        self._groupKey = self._secret(32)
        self._datadir = DataDir(config.datadir) if config.datadir else None
        self.identity: Identity | None = None
        self.pins = PinStore()
        if config.tls:
            self.identity = (
                Identity.load_or_create(self._datadir.path, now=reactor.seconds())
                if self._datadir is not None
                else Identity.generate()
            )
            self.node_id = self.identity.node_id
        elif config.node_id is not None:
            self.node_id = config.node_id
        elif self._datadir is not None:
            self.node_id = self._datadir.load_node_id(reactor.seconds())
        else:
            self.node_id = new_node_id()
        self.book = self._newBook()
        self.bans = BanMan()
        self._settings = PeerSettings(
            handshake_timeout_s=config.handshake_timeout_s,
            ping_timeout_s=config.ping_timeout_s,
            inactivity_timeout_s=config.inactivity_timeout_s,
            addr_rate_per_s=config.addr_rate_per_s,
            addr_bucket_tokens=config.addr_bucket_tokens,
        )
        self._serverFactory = PeerServerFactory(self)
        self._ports: list[IListeningPort] = []
        self._pendingListens: list[Deferred] = []  # endpoints that listen later
        self._listeningAddress: Address | None = None  # worked out once, in _listen
        # A dict, not a set: iteration in connection order keeps runs with a
        # seeded rng reproducible (a set would follow memory addresses).
        self._connections: dict[Peer, None] = {}
        # Connections by kind, and inbound ones by network group, kept as
        # they come and go: accepting one must not cost a walk over thousands.
        self._counts = {kind: 0 for kind in ConnectionType}
        self._inboundGroups: dict[str, int] = {}
        self._groupOf: dict[Peer, str | None] = {}
        self._by_id: dict[str, Peer] = {}
        self._dialing: dict[Address, Deferred] = {}
        self._dialKinds: dict[Address, ConnectionType] = {}
        # Deferreds of connect() calls made while their address was already
        # being dialed: each gets that dial's outcome.
        self._followers: dict[Address, list[Deferred]] = {}
        self._own: set[Address] = set()
        self._localGroups: set[str] = set()
        self._violations: dict[str, int] = {}
        # Since start: what Prometheus reads (bitp2p.metrics).
        self.counters = {"handshake_failures": 0, "violations": 0}
        # Traffic of the peers gone, received and sent, by type: [messages,
        # bytes]. Merged at each close: that is on every connection's path.
        self._pastIn: dict[str, list[int]] = {}
        self._pastOut: dict[str, list[int]] = {}
        self._types: dict[str, MessageType] = {}
        self.gossip = Gossip(
            self,
            reactor,
            GossipSettings(
                hops=config.gossip_hops,
                seen_s=config.gossip_seen_s,
                push_max_bytes=config.gossip_push_max_bytes,
                rate_per_s=config.gossip_rate_per_s,
            ),
        )
        # What peers hand established connections' messages to: the gossip
        # control types, and each registered type (routed by _received).
        self._handlers: dict[str, MessageHandler] = {
            kind: self._control(getattr(self.gossip, kind)) for kind in CONTROL_TYPES
        }
        self._gossipReceived = self._control(self.gossip.received)
        self._observers: list[tuple[Callable | None, Callable | None]] = []
        self._closing: list[tuple[Peer, Deferred]] = []
        self._seed_timer = None
        self._started_at = 0.0
        self._anchors: list[Address] = []
        self._manual = [_Manual(parse_target(e)) for e in (*config.connect, *config.addnodes)]
        self._fetches: list[list] = []  # [host, port, next_try, failures] per --seednode
        self._fetching = False
        self._feeler: Address | None = None
        self._shortTimers: dict[Peer, object] = {}
        self._nextFeeler = 0.0
        self._savedSize = 0  # addresses in the book at the last save or load
        self._growthSave = None  # the pending save of a grown book
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

    def _newBook(self):
        if self.config.address_manager == "simple":
            return AddressBook(rng=self._rng)
        return AddrMan(rng=self._rng, key=self._secret(32), group_of=self._bucketGroup)

    def _bucketGroup(self, address: Address) -> str:
        """
        The group the address manager buckets C{address} by: its network
        group, but for a local address (see L{_diversityKey}) the address
        itself, or every node on 127.0.0.1 would share one bucket of 64
        slots.
        """
        key = self._diversityKey(address)
        return key if key is not None else f"local {address}"

    def _addLocalGroup(self, address: Address) -> None:
        """
        C{address} is one of ours: its group is local. Addresses the
        address manager holds are regrouped if that changes anything.
        """
        group = network_group(address)
        if group in self._localGroups:
            return
        self._localGroups.add(group)
        if isinstance(self.book, AddrMan) and any(
            network_group(i.address) == group or network_group(i.source) == group
            for i in self.book
        ):
            self.book.regroup(self._bucketGroup)

    # -- service --------------------------------------------------------------

    def privilegedStartService(self) -> None:
        self._listen()
        service.Service.privilegedStartService(self)

    def startService(self) -> None:
        self._listen()
        service.Service.startService(self)
        now = self._started_at = self._reactor.seconds()
        self._load(now)
        self._nextFeeler = now + self._feelerDelay()
        self._fetches = [[host, port, now, 0] for host, port in map(split_host_port, self.config.seednodes)]
        if not self.config.connect:
            if len(self.book) == 0:
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
        if self._growthSave is not None and self._growthSave.active():
            self._growthSave.cancel()
        self._growthSave = None
        self._saveAnchors()
        for d in list(self._dialing.values()):
            d.cancel()
        self.gossip.stop()
        closed = [self._whenClosed(peer) for peer in self._connections]
        for peer in list(self._connections):
            peer.close(PeerLost("node shutting down"))
        self.save()
        pending, self._pendingListens = self._pendingListens, []
        for d in pending:
            d.cancel()  # (a listen already done is not touched)
        ports, self._ports = self._ports, []
        self._listeningAddress = None
        closed.extend(defer.maybeDeferred(port.stopListening) for port in ports)
        return defer.gatherResults(closed).addCallback(lambda _: None)

    def _listen(self) -> None:
        """
        Listen now, synchronously, so that a busy port fails the start (an
        endpoint that listens later, such as an onion service, is waited for
        in the background).

        @raise twisted.internet.error.CannotListenError: if it cannot listen.
        @raise ValueError: for an endpoint string Twisted cannot parse.
        """
        if self._ports or not self.config.listen:
            return
        descriptions = self.config.listen_endpoints
        if not descriptions:
            interface = self.config.interface.replace(":", "\\:")
            descriptions = (f"tcp:{self.config.port}:interface={interface}:backlog={LISTEN_BACKLOG}",)
        try:
            for description in descriptions:
                port, later = listenNow(
                    serverEndpoint(self._reactor, description),
                    self._listeningFactory(),
                    description,
                    functools.partial(self._listening, description=description),
                )
                if later is not None:
                    self._pendingListens.append(later)
                else:
                    self._listening(port, description)
        except BaseException:
            for port in self._ports:
                port.stopListening()
            self._ports = []
            self._listeningAddress = None
            raise

    def _listening(self, port: IListeningPort, description: str) -> None:
        self._ports.append(port)
        bound = port.getHost()
        if self.config.listen_endpoints:
            log.info("Listening on {description}", description=description)
        if not isinstance(bound, (IPv4Address, IPv6Address)) or self._listeningAddress is not None:
            return
        host = bound.host
        if not self.config.listen_endpoints and self.config.interface not in ("0.0.0.0", "::"):
            host = self.config.interface  # as asked (what a test reactor reports may differ)
        address = Address.of(host, bound.port)
        if address.ip.is_unspecified:
            # Listening on every interface includes loopback.
            self._addLocalGroup(Address.of("::1" if address.is_ipv6 else "127.0.0.1", 0))
        else:
            self._addLocalGroup(address)
        self._listeningAddress = address

    def _listeningFactory(self):
        if self.identity is not None:
            return self.identity.wrapServerFactory(self._serverFactory)
        return self._serverFactory

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

    def connect(self, host: str, port: int | None = None) -> Deferred[Peer]:
        """
        Dial a peer and complete the handshake.

        @param host: an IP literal or a host name; or, without C{port}, a
            C{HOST:PORT} or a client endpoint string (C{unix:/x.sock},
            C{tor:example.onion:5000}, ...).
        @return: a Deferred that fires with the L{Peer} once the handshake is
            done (at once if that peer is already connected), or fails with a
            L{ConnectFailed} saying why.
        """
        if not self.running:
            return defer.fail(NotRunning("the node is not running"))
        if port is None:
            try:
                target = parse_target(host)
            except ValueError as e:
                return defer.fail(ConnectFailed(str(e)))
        elif not isinstance(port, int) or not 0 < port <= 65535:
            return defer.fail(ConnectFailed(f"bad port {port}"))
        else:
            target = Target(host, port)
        address = target.address
        if address is not None:
            if address in self._own:
                return defer.fail(SelfConnection(f"{address} is this node"))
            for peer in self._connections:
                if peer.address == address:
                    return peer.whenEstablished()
            if address in self._dialing:
                follower: Deferred[Peer] = Deferred()
                self._followers[address].append(follower)
                return follower
        if len(self._connections) + len(self._dialing) >= self.config.max_connections:
            return defer.fail(
                LimitReached(f"{self.config.max_connections} connections already")
            )
        return self._dial(target, ConnectionType.MANUAL)

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
        The established peers (feeler and address-fetch connections, which
        close as soon as their job is done, are not counted).
        """
        return [p for p in self._connections if p.established and p.kind not in SHORT_LIVED]

    def connections(self) -> list[Peer]:
        """
        Every live connection, in the order they were made: established
        peers, short-lived ones (feelers, address fetches) and those still
        in their handshake.
        """
        return list(self._connections)

    def dialCount(self) -> int:
        """
        Outgoing connections being made (dialed, not yet connected).
        """
        return len(self._dialing)

    def observe(
        self,
        connected: Callable[[Peer], object] | None = None,
        disconnected: Callable[[Peer, Exception], object] | None = None,
    ) -> Callable[[], None]:
        """
        Be told when a peer completes its handshake (C{connected(peer)}) and
        when an established peer goes away (C{disconnected(peer, reason)}).
        Observers are called in the order they were added; one that raises
        is logged and the others are still called.

        @return: a function that stops the notifications.
        """
        entry = (connected, disconnected)
        self._observers.append(entry)
        return lambda: self._observers.remove(entry) if entry in self._observers else None

    def registerMessage(
        self,
        message_type: str,
        handler: MessageHandler,
        validator: MessageValidator | None = None,
    ) -> MessageType:
        """
        Handle application messages of C{message_type}.

        For each one received from an established peer, C{validator(message)}
        (if given) checks it: it returns the message to hand on (or L{None}
        for the message as it is), or raises L{ProtocolViolation}, or
        C{ValueError}, C{TypeError} or C{KeyError}, which count as the
        peer's protocol violation (the connection is closed, the peer's
        address charged). Then C{handler(peer, message)} is called; an
        exception it raises is logged and changes nothing else.

        Registering a type again replaces its handler and validator. The
        protocol's own types and gossip's (C{inv}, C{getdata},
        C{notfound}) cannot be taken.

        @return: the registered L{MessageType}.
        @raise ValueError: for a reserved or empty type name.
        """
        if not isinstance(message_type, str) or not message_type:
            raise ValueError(f"a message type is a non-empty string, not {message_type!r}")
        if message_type in codec.KNOWN_TYPES or message_type in CONTROL_TYPES:
            raise ValueError(f"{message_type!r} is a protocol message type")
        registered = self._types[message_type] = MessageType(message_type, handler, validator)
        self._handlers[message_type] = self._dispatcher(registered)
        return registered

    def unregisterMessage(self, message_type: str) -> None:
        """
        Stop handling C{message_type}: such messages are ignored again.
        """
        if self._types.pop(message_type, None) is not None:
            del self._handlers[message_type]

    def handles(self, message_type: str) -> bool:
        """
        Whether C{message_type} is registered.
        """
        return message_type in self._types

    def send(self, to: Peer | str, message: dict) -> None:
        """
        Send an application message to one established peer.

        @param to: the L{Peer}, or its node id.
        @raise LookupError: if no established peer has that node id.
        @raise ValueError: if the message is not a JSON object with an
            application C{type}, or encodes to more than the
            C{max_message_bytes} peers accept.
        """
        peer = to if isinstance(to, Peer) else self._by_id.get(to)
        if peer is None or not peer.established:
            raise LookupError(f"no established peer {to!r}")
        peer.send(message, self._outgoing(message))

    def sendAll(self, message: dict, exclude: Peer | None = None) -> int:
        """
        Send an application message to every established peer but
        C{exclude} (neighbours only: see L{broadcast} for the whole network).

        @return: how many peers it was sent to.
        @raise ValueError: as L{send}.
        """
        frames = self._outgoing(message)  # encoded once, whatever the number of peers
        count = 0
        for peer in self.peers():
            if peer is not exclude:
                peer.send(message, frames)
                count += 1
        return count

    def broadcast(self, message: dict, hops: int | None = None) -> str:
        """
        Flood an application message through the whole network
        (L{bitp2p.gossip}): every node that registered its type receives it
        once, up to C{hops} links away (default C{config.gossip_hops}). This
        node's own handler is not called. Messages are identified by their
        content: broadcasting the same message twice sends it once (put a
        nonce or a time in messages that may repeat).

        @return: the message's gossip id.
        @raise ValueError: as L{send}, or for a bad C{hops}.
        """
        if GOSSIP_FIELD in message:
            raise ValueError(f"the {GOSSIP_FIELD!r} field is gossip's own")
        self._outgoing({**message, GOSSIP_FIELD: {"hops": MAX_HOPS}})
        return self.gossip.publish(message, hops)

    def trafficTotals(self) -> dict[tuple[str, str], list[int]]:
        """
        Messages and bytes since start, peers gone included: C{{(direction,
        type): [messages, bytes]}}, direction C{"in"} or C{"out"}.
        """
        received = {kind: list(counter) for kind, counter in self._pastIn.items()}
        sent = {kind: list(counter) for kind, counter in self._pastOut.items()}
        for peer in self._connections:
            _merge(received, peer.recv_per_type)
            _merge(sent, peer.send_per_type)
        totals = {("in", kind): counter for kind, counter in received.items()}
        totals.update((("out", kind), counter) for kind, counter in sent.items())
        return totals

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

    def ban(self, target: str, duration_s: float = DEFAULT_BAN_S) -> str:
        """
        Ban an address or a subnet: connected peers in it are disconnected,
        inbound connections from it refused, and it is never dialed. Bans
        are saved in the data directory.

        @param target: an IP address (C{10.1.2.3}) or a subnet (C{10.1.0.0/16}).
        @param duration_s: how long the ban lasts.
        @return: the banned subnet, normalised (C{10.1.2.3/32}).
        @raise ValueError: if C{target} is not an address or a subnet, or
            C{duration_s} is not positive.
        """
        if not duration_s > 0:
            raise ValueError(f"ban duration must be positive, not {duration_s!r}")
        now = self._reactor.seconds()
        subnet = self.bans.ban(target, now + duration_s)
        log.info("Banned {subnet} for {seconds:g} s", subnet=subnet, seconds=duration_s)
        for peer in list(self._connections):
            if self.bans.is_banned(_remoteHost(peer), now):
                peer.close(PeerLost(f"banned ({subnet})"))
        self._saveBans()
        return subnet

    def unban(self, target: str) -> bool:
        """
        Lift the ban of exactly this address or subnet.

        @return: whether it was banned.
        @raise ValueError: if C{target} is not an address or a subnet.
        """
        lifted = self.bans.unban(target)
        if lifted:
            log.info("Unbanned {target}", target=target)
            self._saveBans()
        return lifted

    def isBanned(self, host: str) -> bool:
        return self.bans.is_banned(host, self._reactor.seconds())

    def isDiscouraged(self, host: str, now: float | None = None) -> bool:
        return self.bans.is_discouraged(host, self._reactor.seconds() if now is None else now)

    def clearBans(self) -> int:
        """
        Lift every ban (Bitcoin Core's C{clearbanned}) and save the ban
        file. Discouraged hosts stay discouraged.

        @return: how many bans were lifted.
        """
        subnets = [subnet for subnet, _ in self.bans.bans(float("-inf"))]
        for subnet in subnets:
            self.bans.unban(subnet)
        if subnets:
            log.info("Lifted all {count} bans", count=len(subnets))
        self._saveBans()
        return len(subnets)

    def addManual(self, target: str) -> bool:
        """
        Keep a peer connected, as C{--addnode} does (Bitcoin Core's
        C{addnode ... add}): it is dialed at once if the node runs, and
        redialed with backoff whenever the connection is lost. It is not
        saved: it lasts until L{removeManual} or the end of the process.

        @param target: C{HOST:PORT}, C{[IPV6]:PORT} or a client endpoint
            string (L{bitp2p.endpoints.parse_target}).
        @return: C{False} if that peer was already added (in any of those
            spellings: C{tcp:127.0.0.1:5000} is C{127.0.0.1:5000}).
        @raise ValueError: if C{target} is none of those.
        """
        parsed = parse_target(target)
        key = str(parsed)
        if any(str(manual.target) == key for manual in self._manual):
            return False
        self._manual.append(_Manual(parsed))
        log.info("Keeping {target} connected", target=key)
        if self.running:
            self._maintainManual(self._reactor.seconds())
        return True

    def removeManual(self, target: str) -> bool:
        """
        Stop keeping a peer connected (C{addnode ... remove}). As in Bitcoin
        Core, a live connection to it stays open; it is just not redialed
        once lost.

        @param target: as for L{addManual}.
        @return: C{False} if that peer was not added.
        @raise ValueError: if C{target} is not a valid target.
        """
        key = str(parse_target(target))
        for manual in self._manual:
            if str(manual.target) == key:
                self._manual.remove(manual)
                log.info("No longer keeping {target} connected", target=key)
                return True
        return False

    def manualPeers(self) -> list[tuple[str, Peer | None]]:
        """
        The peers kept connected (C{--connect}, C{--addnode}, L{addManual}),
        in the order they were added: each target as text, and its
        established connection (one made for it, or any other connection to
        its address), or L{None}.
        """
        peers = self.peers()
        result: list[tuple[str, Peer | None]] = []
        for manual in self._manual:
            peer = manual.peer if manual.peer is not None and manual.peer.established else None
            if peer is None and manual.address is not None:
                peer = next((p for p in peers if p.address == manual.address), None)
            result.append((str(manual.target), peer))
        return result

    def uptime(self) -> float:
        """
        Seconds since the node started; 0.0 when it is not running.
        """
        return self._reactor.seconds() - self._started_at if self.running else 0.0

    def status(self) -> dict:
        """
        A snapshot of the node, fit for JSON: its id and address, every
        established peer, the connections in progress, the known addresses,
        the bans.
        """
        now = self._reactor.seconds()
        peers = []
        established = [p for p in self._connections if p.established]
        for peer in sorted(established, key=lambda p: p.established_at or 0):
            wire = peer.wire
            peers.append(
                {
                    "node_id": peer.node_id,
                    "address": str(peer.address) if peer.address else None,
                    "remote": peer.remote,
                    "direction": peer.direction.value,
                    "kind": peer.kind.value,
                    "user_agent": peer.user_agent,
                    "connected_since": peer.established_at,
                    "rtt_s": peer.rtt_s,
                    "min_rtt_s": peer.min_rtt_s,
                    "messages_in": peer.messages_in,
                    "messages_out": peer.messages_out,
                    "bytes_in": wire.bytesIn,
                    "bytes_out": wire.bytesOut,
                }
            )
        known = [
            {
                "address": str(info.address),
                "table": "tried" if info.in_tried else "new",
                "last_seen": info.last_seen,
                "last_tried": info.last_tried,
                "last_success": info.last_success,
                "attempts": info.attempts,
                "failures": info.failures,
            }
            for info in sorted(self.book, key=lambda i: i.address)
        ]
        return {
            "node_id": self.node_id,
            "listening": str(self.listeningAddress) if self.listeningAddress else None,
            "user_agent": self.config.user_agent,
            "uptime_s": now - self._started_at if self.running else 0.0,
            "outbound": sum(p.kind is ConnectionType.OUTBOUND for p in established),
            "inbound": sum(p.kind is ConnectionType.INBOUND for p in established),
            "manual": sum(p.kind is ConnectionType.MANUAL for p in established),
            "handshaking": len(self._connections) - len(established),
            "dialing": len(self._dialing),
            "peers": peers,
            "known": known,
            "bans": [{"subnet": s, "until": u} for s, u in self.bans.bans(now)],
            "tls": self.identity is not None,
            "gossip": dict(self.gossip.stats, seen=len(self.gossip.seen)),
        }

    def save(self) -> None:
        """
        Write the address manager and the bans to the data directory, if
        there is one.
        """
        if self._datadir is None:
            return
        self._saveDocument(PEERS_FILE, PEERS_FORMAT, self.book.to_json())
        self._savedSize = len(self.book)
        self._saveBans()
        if self.identity is not None:
            self._saveDocument(PINS_FILE, PINS_FORMAT, self.pins.to_json())

    def _bookGrew(self) -> None:
        """
        Addresses were learned: once the book holds twice what was last
        saved or loaded, save it C{growth_save_delay_s} later (the delay
        gathers the answers to a node's first few C{getaddr}). A node
        killed before its first periodic save thus comes back knowing more
        than its seeds, which may be full; and a growing book is written
        about log2(size) times, not on every C{addr}.
        """
        if self._datadir is None or not self.running or self._growthSave is not None:
            return
        if len(self.book) >= 2 * max(self._savedSize, 1):
            self._growthSave = self._reactor.callLater(self.config.growth_save_delay_s, self._saveGrown)

    def _saveGrown(self) -> None:
        self._growthSave = None
        self.save()

    def _saveBans(self) -> None:
        if self._datadir is not None:
            self._saveDocument(BANLIST_FILE, BANLIST_FORMAT, self.bans.to_json(self._reactor.seconds()))

    def _saveAnchors(self) -> None:
        """
        Remember the automatic outbound peers, to dial them first at the
        next start (Bitcoin Core's anchors): an attacker who fills the
        address tables while we are down does not choose our first peers.
        """
        if self._datadir is None:
            return
        anchors = [
            str(p.dialed)
            for p in self._connections
            if p.kind is ConnectionType.OUTBOUND and p.established and p.dialed is not None
        ]
        self._saveDocument(ANCHORS_FILE, ANCHORS_FORMAT, anchors[: self.config.outbound_slots])

    def _saveDocument(self, name: str, kind: tuple[str, int], body) -> None:
        try:
            self._datadir.save_document(name, kind[0], kind[1], body)
        except OSError as e:
            log.error(
                "Cannot save {path}: {error}", path=str(self._datadir.path / name), error=e
            )

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
        if self.identity is not None:
            refusal = self._checkIdentity(peer)
            if refusal is not None:
                log.warn("Refusing {peer}: {refusal}", peer=peer, refusal=refusal)
                return refusal
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

    def _checkIdentity(self, peer: Peer) -> Exception | None:
        """
        With TLS: the peer's certificate must be of the key its node id is
        the hash of, and of the id pinned for the address we dialed (or, for
        an inbound peer, for the address it says it listens on). An address
        we dial is pinned to the id first seen there (trust on first use);
        inbound peers are checked against pins but pin nothing, since they
        choose the port they claim.
        """
        certified = peer_node_id(peer.wire.transport)
        if certified is None:
            return HandshakeFailed("no TLS certificate")
        if certified != peer.node_id:
            return HandshakeFailed(
                f"claims node id {peer.node_id[:16]}... but its certificate is of {certified[:16]}..."
            )
        if peer.dialed is not None:
            where = str(peer.dialed)
        else:
            remote = _hostAddress(peer.wire.getPeer())
            if remote is None or not peer.listen_port:
                return None
            where = str(Address.of(remote.host, peer.listen_port))
            if where not in self.pins:
                return None
        mismatch = self.pins.check(where, certified)
        return HandshakeFailed(mismatch) if mismatch is not None else None

    def peerEstablished(self, peer: Peer) -> None:
        now = self._reactor.seconds()
        local = _hostAddress(peer.wire.getHost())
        if local is not None and not local.ip.is_unspecified:
            self._addLocalGroup(local)
        if peer.dialed is not None:
            # Known or not (a manual connection may be to a new address), an
            # address that completed a handshake goes to "tried".
            self.book.add([(peer.dialed, now)], peer.dialed, now)
            self.book.good(peer.dialed, now)
        for manual in self._manual:
            if manual.peer is None and manual.address is not None and manual.address == peer.address:
                manual.peer, manual.failures = peer, 0
        if peer.kind in SHORT_LIVED:
            # A feeler has done its job once the handshake is done, but the
            # protocol has every dialer send getaddr: its answer is taken
            # (it is one of the ways addresses spread), briefly waited for.
            timeout = FEELER_TIMEOUT_S if peer.kind is ConnectionType.FEELER else ADDR_FETCH_TIMEOUT_S
            self._shortTimers[peer] = self._reactor.callLater(
                timeout, self._finishShortLived, peer, "without a getaddr answer"
            )
            log.debug(
                "{kind} connection to {address} established",
                kind=peer.kind.value,
                address=peer.address,
            )
            return
        log.info(
            "Connected to {node_id} at {address} ({direction}, {user_agent})",
            node_id=peer.node_id,
            address=peer.address or peer.remote,
            direction=peer.kind.value,
            user_agent=peer.user_agent,
        )
        for connected, _ in list(self._observers):
            if connected is not None:
                self._notify(connected, peer)

    def answerReceived(self, peer: Peer) -> None:
        if peer.kind in SHORT_LIVED:
            self._finishShortLived(peer, "done")

    def _finishShortLived(self, peer: Peer, why: str) -> None:
        timer = self._shortTimers.pop(peer, None)
        if timer is not None and timer.active():
            timer.cancel()
        if peer.close_reason is None and peer in self._connections:
            peer.close(PeerLost(f"{peer.kind.value} connection {why}"))

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        now = self._reactor.seconds()
        if peer in self._connections:
            del self._connections[peer]
            self._counts[peer.kind] -= 1
            group = self._groupOf.pop(peer, None)
            if peer.kind is ConnectionType.INBOUND and group is not None:
                left = self._inboundGroups[group] - 1
                if left:
                    self._inboundGroups[group] = left
                else:
                    del self._inboundGroups[group]
        if peer.node_id is not None and self._by_id.get(peer.node_id) is peer:
            del self._by_id[peer.node_id]
        was_established = peer.established_at is not None
        if not was_established:
            self.counters["handshake_failures"] += 1
        _merge(self._pastIn, peer.recv_per_type)
        _merge(self._pastOut, peer.send_per_type)
        if peer.dialed is not None and self.running:
            if was_established:
                self.book.connected(peer.dialed, now)
            elif not isinstance(reason, (SelfConnection, DuplicateConnection)):
                self.book.failed(peer.dialed, now)
        if peer.kind in SHORT_LIVED:
            self._finishShortLived(peer, "closed")
        if peer.kind is ConnectionType.FEELER and peer.dialed == self._feeler:
            self._feeler = None
        if peer.kind is ConnectionType.ADDR_FETCH:
            self._fetching = False
        for manual in self._manual:
            if manual.peer is peer:
                manual.peer = None
                manual.next_try = now + retry_delay(1)
        if was_established:
            self.gossip.peerGone(peer)
        elif (
            self.identity is not None
            and peer.messages_in == 0
            and peer.direction is Direction.OUTBOUND
        ):
            log.info(
                "TLS connection to {address} failed ({reason}): is it a node without --tls?",
                address=peer.dialed or peer.remote,
                reason=reason,
            )
        if was_established and peer.kind not in SHORT_LIVED:
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
        self.counters["violations"] += 1
        host = _remoteHost(peer)
        if not host:
            return
        count = self._violations.get(host, 0) + 1
        if count >= self.config.discourage_threshold:
            self._violations.pop(host, None)
            self.bans.discourage(host, self._reactor.seconds() + DISCOURAGE_S)
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
            for info in self.book.get_addr(now, count, GETADDR_MAX_PCT, GETADDR_MIN_COUNT)
            if info.address not in self._own
        ]

    def addressesReceived(
        self, peer: Peer, entries: list[tuple[Address, int | None]], relay: bool
    ) -> None:
        """
        Store what C{peer} told us, as Bitcoin Core does: an entry without a
        time, or with a time too far in the future, is taken as seen 5 days
        ago (and not relayed), except the peer's announcement of itself,
        taken as seen now; addresses that are ours, banned or discouraged are
        dropped, and so are loopback ones unless the peer is on loopback too.
        Fresh entries of a small unsolicited C{addr} are relayed.
        """
        now = self._reactor.seconds()
        remote = _remoteAddress(peer)
        from_loopback = remote is not None and remote.ip.is_loopback
        source = peer.address or remote
        if source is None:
            return
        accepted: list[tuple[Address, float]] = []
        fresh: list[tuple[Address, int | None]] = []
        for address, seen in entries:
            if address in self._own or (address.ip.is_loopback and not from_loopback):
                continue
            host = address.host
            if self.bans.is_banned(host, now) or self.bans.is_discouraged(host, now):
                continue
            if seen is None or seen > now + ADDR_FUTURE_SLACK_S:
                if address == peer.address:
                    seen = int(now)
                else:
                    accepted.append((address, now - ADDR_UNKNOWN_AGE_S))
                    continue
            accepted.append((address, float(seen)))
            if relay and seen >= now - RELAY_FRESH_S:
                fresh.append((address, seen))
        if accepted and self.book.add(accepted, source, now, ADDR_TIME_PENALTY_S):
            peer.last_addr_time = now
            self._bookGrew()
        if fresh:
            self._relay(peer, fresh)

    @property
    def applicationHandlers(self) -> dict[str, MessageHandler]:
        return self._handlers

    # -- application messages ---------------------------------------------------

    def _outgoing(self, message: dict) -> dict:
        """
        Check an application message before it is sent.

        @return: the frames to send it with (its encoding, made once).
        """
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(kind, str) or not kind:
            raise ValueError("a message is a dict with a non-empty string 'type'")
        if kind in codec.KNOWN_TYPES or kind in CONTROL_TYPES:
            raise ValueError(f"{kind!r} is a protocol message type: the node sends those itself")
        try:
            data = codec.encode(message)
            if b"null" in data:
                # orjson writes NaN and infinities as null: refuse them, as
                # the standard library does, rather than change the data.
                json.dumps(message, allow_nan=False, default=str)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{kind!r} message cannot be encoded as JSON: {e}") from None
        if len(data) > self.config.max_message_bytes:
            raise ValueError(
                f"{kind!r} message is {len(data)} bytes encoded, over the "
                f"{self.config.max_message_bytes} peers accept"
            )
        return {JSONLineWire: data + b"\n"}

    def _dispatcher(self, registered: MessageType) -> MessageHandler:
        """
        What peers call for each message of a registered type: gossip's
        handling for a gossiped one, else L{accept}. Without a validator, the
        handler is called straight away (the peer logs what it raises): on
        the busiest path, every call counts (C{bench/throughput.py}).
        """
        gossip = self._gossipReceived
        direct = self.accept if registered.validator is not None else registered.handler

        def received(peer: Peer, message: dict) -> None:
            if GOSSIP_FIELD in message:
                gossip(peer, message)
            else:
                direct(peer, message)

        return received

    def _control(self, method: Callable[[Peer, dict], None]) -> MessageHandler:
        """
        Wrap a gossip method so that its protocol violations close the peer.
        """

        def handle(peer: Peer, message: dict) -> None:
            try:
                method(peer, message)
            except ProtocolViolation as violation:
                peer.violation(violation)

        return handle

    def accept(self, peer: Peer, message: dict) -> bool:
        """
        Validate an application message from C{peer} and hand it to its
        handler (gossip calls this for each new message it receives).

        @return: C{False} if it was invalid (C{peer} is then closed for a
            violation) or its type is not registered.
        """
        registered = self._types.get(message["type"])
        if registered is None:
            return False
        if registered.validator is not None:
            try:
                checked = registered.validator(message)
            except (ProtocolViolation, ValueError, TypeError, KeyError) as e:
                peer.violation(ProtocolViolation(f"invalid {registered.name!r} message: {e}"))
                return False
            if checked is not None:
                message = checked
        try:
            registered.handler(peer, message)
        except Exception:
            # The application's bug is not the peer's fault.
            log.failure(
                "Handler for {kind!r} failed on a message from {peer}",
                kind=registered.name,
                peer=peer,
            )
        return True

    # -- inbound ----------------------------------------------------------------

    def _acceptInbound(self, addr) -> JSONLineWire | None:
        host = getattr(addr, "host", "")
        now = self._reactor.seconds()
        if self.bans.is_banned(host, now):
            log.debug("Refusing inbound connection from banned {host}", host=host)
            return None
        count = self._counts[ConnectionType.INBOUND]
        limit = self.config.inbound_slots
        discouraged = self.bans.is_discouraged(host, now)
        if discouraged:
            # Like Bitcoin Core: a discouraged host may still take a free
            # slot, but never the last one, and never evicts anyone.
            limit -= 1
        remote = _hostAddress(addr)
        group = self._diversityKey(remote) if remote is not None else None
        if group is not None and self._inboundGroups.get(group, 0) >= self.config.inbound_group_cap:
            log.info(
                "Refusing inbound connection from {host}: {count} inbound from {group} already",
                host=host,
                count=self._inboundGroups[group],
                group=group,
            )
            return None
        if count >= limit and (discouraged or not self._evictInbound()):
            log.info(
                "Refusing inbound connection from {host}: {inbound} inbound already",
                host=host,
                inbound=count,
            )
            return None
        return self._buildPeer(Direction.INBOUND, None, ConnectionType.INBOUND, group)

    def _evictInbound(self) -> bool:
        """
        Make room for a new inbound connection by Bitcoin Core's rules
        (L{bitp2p.eviction.select_to_evict}): protect peers by keyed network
        group, lowest ping, recent novel addresses and longest uptime, then
        close the youngest peer of the network group holding the most of
        the rest. A full node thus still admits newcomers (a seed must, or
        nodes that arrive late never learn an address), while an attacker
        cannot push out the long-lived, diverse, fast peers.

        Only established peers are candidates. A connection still in its
        handshake (at most C{handshake_timeout_s}) would always be the
        youngest: when newcomers arrive faster than a handshake takes (a
        thousand nodes starting from one seed), each would evict the one
        before it and none would ever finish. But one still in its
        handshake after C{stale_handshake_s} (an honest peer sends its
        C{version} at once) is doing nothing a peer does: it goes first,
        the longest waiting, so that silent connections cannot hold the
        slots for the whole handshake timeout.

        @return: whether a peer was evicted.
        """
        now = self._reactor.seconds()
        stale = [
            peer
            for peer in self._connections
            if peer.kind is ConnectionType.INBOUND
            and not peer.established
            and peer.close_reason is None
            and now - peer.connected_at > self.config.stale_handshake_s
        ]
        if stale:
            victim = min(stale, key=lambda peer: peer.connected_at)
            log.info(
                "Inbound slots full: closing {peer}, still in its handshake, to make room",
                peer=victim,
            )
            victim.close(PeerLost("evicted: still in its handshake, to make room"))
            return True
        candidates = []
        for peer in self._connections:
            if (
                peer.kind is not ConnectionType.INBOUND
                or not peer.established
                or peer.close_reason is not None
            ):
                continue
            remote = _remoteAddress(peer)
            group = network_group(remote) if remote is not None else "?"
            candidates.append(
                EvictionCandidate(
                    id=peer,
                    connected_at=peer.connected_at,
                    min_ping_s=peer.min_rtt_s,
                    keyed_net_group=self._keyedGroup(group),
                    is_local=remote is not None and remote.ip.is_loopback,
                    last_addr_time=peer.last_addr_time,
                )
            )
        victim = select_to_evict(candidates)
        if victim is None:
            return False
        log.info("Inbound slots full: evicting {peer} to make room", peer=victim)
        victim.close(PeerLost("evicted to make room for a new connection"))
        return True

    def _keyedGroup(self, group: str) -> int:
        digest = hashlib.blake2b(group.encode(), key=self._groupKey, digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def _diversityKey(self, address: Address) -> str | None:
        """
        The network group that counts for the one-outbound-per-group rule
        and the inbound group cap, or L{None} for an address exempt from
        both: a loopback or private address in one of our own groups.
        """
        group = network_group(address)
        if group in self._localGroups and is_local_range(address):
            return None
        return group

    def _buildPeer(
        self,
        direction: Direction,
        dialed: Address | None,
        kind: ConnectionType | None = None,
        group: str | None = None,
    ) -> JSONLineWire:
        """
        A new connection's peer and wire, counted in.

        @param group: for an inbound connection, the remote's network group
            as L{_diversityKey} gives it (L{None}: exempt from the cap).
        """
        peer = Peer(
            self,
            self._reactor,
            direction,
            settings=self._settings,
            rng=self._rng,
            dialed=dialed,
        )
        if kind is not None:
            peer.kind = kind
        kind = peer.kind
        self._connections[peer] = None
        self._counts[kind] += 1
        if kind is ConnectionType.INBOUND:
            self._groupOf[peer] = group
            if group is not None:
                self._inboundGroups[group] = self._inboundGroups.get(group, 0) + 1
        return JSONLineWire(
            peer, self.config.max_message_bytes, self.config.max_send_buffer_bytes
        )

    # -- outbound ---------------------------------------------------------------

    def _endpointFor(self, target: Target, address: Address | None):
        if target.endpoint is not None:
            return clientFromString(self._reactor, target.endpoint)
        host, port = target.host, target.port
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

    def _dial(self, target: Target, kind: ConnectionType) -> Deferred[Peer]:
        now = self._reactor.seconds()
        address = target.address
        if address is not None:
            self.book.attempt(address, now, self._countFailures())
        try:
            endpoint = self._endpointFor(target, address)
        except (ValueError, TypeError, KeyError) as e:
            return defer.fail(ConnectFailed(f"cannot dial {target}: {e}"))
        factory = PeerClientFactory(self, address, kind)
        if self.identity is not None:
            factory = self.identity.wrapClientFactory(factory)
        connecting = endpoint.connect(factory)
        result: Deferred[Peer] = Deferred(lambda _: connecting.cancel())
        if address is not None:
            self._dialing[address] = result
            self._dialKinds[address] = kind
            # First in the chain: followers get the outcome before the
            # dialer's own callbacks (which may consume a failure).
            followers = self._followers[address] = []
            result.addBoth(_tell, followers)

        def done() -> None:
            if address is not None and self._dialing.get(address) is result:
                del self._dialing[address]
                del self._dialKinds[address]
                del self._followers[address]

        def connected(protocol) -> None:
            done()
            peer = getattr(protocol, "wrappedProtocol", protocol).peer  # under TLS, or not
            peer.whenEstablished().addErrback(self._alreadyConnected, peer).chainDeferred(result)

        def failed(failure: Failure) -> None:
            done()
            if failure.check(defer.CancelledError, ConnectingCancelledError):
                result.errback(ConnectFailed(f"dialing {target} cancelled"))
                return
            if address is not None and self.running:
                self.book.failed(address, self._reactor.seconds())
            error = failure.value
            if failure.check(ConnectError):
                error = ConnectFailed(
                    f"cannot connect to {target}: {failure.getErrorMessage()}"
                )
            result.errback(error)

        connecting.addCallbacks(connected, failed)
        return result

    def _countFailures(self) -> bool:
        """
        Whether a failed dial now counts against the address (Bitcoin
        Core): only while at least two outbound peers in distinct groups
        work, so that a node that is offline does not condemn every
        address it knows.
        """
        keys = {
            self._diversityKey(p.dialed) or str(p.dialed)
            for p in self._connections
            if p.kind is ConnectionType.OUTBOUND and p.established and p.dialed is not None
        }
        return len(keys) >= min(self.config.outbound_slots - 1, 2)

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
            if peer.dialed is not None:
                busy.add(peer.dialed)
        return busy

    def _dialable(self, address: Address, busy: set[Address], now: float) -> bool:
        return not (
            address in busy
            or address in self._own
            or self.bans.is_banned(address.host, now)
            or self.bans.is_discouraged(address.host, now)
        )

    def _maintain(self) -> None:
        """
        The connection manager's round (see the module docstring).
        """
        if not self.running:
            return
        now = self._reactor.seconds()
        self.book.resolve_collisions(now)
        self._maintainManual(now)
        self._fetchAddresses(now)
        if self.config.connect:
            return
        slots = self.config.outbound_slots
        connected = self._counts[ConnectionType.OUTBOUND]
        pending = sum(kind is ConnectionType.OUTBOUND for kind in self._dialKinds.values())
        # Feelers only once every outbound slot is held by a connection
        # (not a dial in progress), as in Bitcoin Core.
        feeler = 0 < slots <= connected and now >= self._nextFeeler and self._feeler is None
        if connected + pending >= slots and not feeler:
            return  # the usual round of a settled node: nothing to do
        busy = self._busyAddresses()
        groups: set[str] = set()
        for peer in self._connections:
            if peer.kind is ConnectionType.OUTBOUND:
                address = peer.dialed or peer.address
                key = self._diversityKey(address) if address is not None else None
                if key is not None:
                    groups.add(key)
        for address, kind in self._dialKinds.items():
            if kind is ConnectionType.OUTBOUND:
                key = self._diversityKey(address)
                if key is not None:
                    groups.add(key)
        missing = slots - connected - pending
        while missing > 0 and self._anchors:
            address = self._anchors.pop(0)
            key = self._diversityKey(address)
            if self._dialable(address, busy, now) and key not in groups:
                self._dialOutbound(address, ConnectionType.OUTBOUND, busy, groups)
                missing -= 1
        tries = 0
        while missing > 0 and tries < OUTBOUND_SELECT_TRIES:
            tries += 1
            info = self.book.select(now)
            if info is None:
                break
            if not self._eligible(info, busy, now, tries):
                continue
            key = self._diversityKey(info.address)
            if key is not None and key in groups:
                continue
            self._dialOutbound(info.address, ConnectionType.OUTBOUND, busy, groups)
            missing -= 1
        if feeler:
            self._nextFeeler = now + self._feelerDelay()
            self._startFeeler(now, busy)

    def _eligible(self, info, busy: set[Address], now: float, tries: int) -> bool:
        """
        Whether an address drawn from the book may be dialed now: dialable,
        out of its retry backoff, and (for the first draws of a round) not
        tried in the last 10 minutes.
        """
        if not self._dialable(info.address, busy, now):
            return False
        if info.failures:
            elapsed, delay = now - info.last_tried, retry_delay(info.failures)
            # (The spread, a hash, only matters in the second half.)
            if elapsed < delay and (elapsed < delay / 2 or elapsed < delay * self._spread(info)):
                return False
        return not (now - info.last_tried < RECENT_TRY_S and tries < RECENT_TRY_TRIES)

    def _spread(self, info) -> float:
        """
        A factor in [0.5, 1) for the retry delay of one try of one address,
        fixed for that try (a keyed hash of the address and the time of the
        try), different on every node. Without it, every node that lost
        its links across a cut at the same moment retries them at the same
        moments, in waves ever further apart: a heal just after a wave
        waited for the next one (up to the 10 minute maximum). Spread, the
        retries of many nodes come every few seconds.
        """
        key = f"{info.address} {info.last_tried!r}".encode()
        digest = hashlib.blake2b(key, key=self._groupKey, digest_size=8).digest()
        return 0.5 + int.from_bytes(digest, "big") / 2**65

    def _dialOutbound(
        self, address: Address, kind: ConnectionType, busy: set[Address], groups: set[str]
    ) -> None:
        busy.add(address)
        key = self._diversityKey(address)
        if key is not None and kind is ConnectionType.OUTBOUND:
            groups.add(key)
        log.debug("Dialing {address} ({kind})", address=address, kind=kind.value)
        self._dial(Target(address.host, address.port), kind).addErrback(
            self._dialFailed, address
        )

    def _feelerDelay(self) -> float:
        return self._rng.expovariate(1.0 / self.config.feeler_interval_s)

    def _startFeeler(self, now: float, busy: set[Address]) -> None:
        """
        Test one address: the old entry of a pending "tried" collision if
        there is one, else one from the "new" table.
        """
        info = self.book.select_tried_collision(now)
        if info is not None and self._dialable(info.address, busy, now):
            self._feeler = info.address
        else:
            for tries in range(1, OUTBOUND_SELECT_TRIES + 1):
                info = self.book.select(now, new_only=True)
                if info is None:
                    return
                if self._eligible(info, busy, now, tries):
                    self._feeler = info.address
                    break
            else:
                return
        self._dialOutbound(self._feeler, ConnectionType.FEELER, busy, set())

    def _maintainManual(self, now: float) -> None:
        """
        Keep every C{--addnode} / C{--connect} peer connected, redialing
        with backoff (2, 4, ... up to C{MANUAL_RETRY_MAX_S} seconds).
        """
        if not self._manual:
            return
        connected = {p.address for p in self._connections if p.established and p.address}
        for manual in self._manual:
            if manual.peer is not None or manual.dialing or now < manual.next_try:
                continue
            if manual.address is not None and (
                manual.address in connected or manual.address in self._dialing
            ):
                continue
            manual.dialing = True
            d = self._dial(manual.target, ConnectionType.MANUAL)
            d.addCallbacks(self._manualUp, self._manualDown, (manual,), None, (manual,))

    def _manualUp(self, peer: Peer, manual: _Manual) -> None:
        manual.dialing = False
        manual.failures = 0
        if peer.close_reason is None:
            manual.peer = peer

    def _manualDown(self, failure: Failure, manual: _Manual) -> None:
        manual.dialing = False
        manual.failures += 1
        delay = min(retry_delay(manual.failures), MANUAL_RETRY_MAX_S)
        manual.next_try = self._reactor.seconds() + delay
        log.info(
            "Could not connect to {target}: {error}; retrying in {delay:g} s",
            target=manual,
            error=failure.getErrorMessage(),
            delay=delay,
        )

    def _fetchAddresses(self, now: float) -> None:
        """
        Dial the next C{--seednode}, one at a time, for its addresses. A
        failed one is retried with backoff while the book is still empty.
        """
        if self._fetching or not self._fetches or now < self._fetches[0][2]:
            return
        entry = self._fetches.pop(0)
        host, port = entry[0], entry[1]
        address = _literal(host, port)
        if address is not None and address in self._own:
            return
        self._fetching = True
        d = self._dial(Target(host, port), ConnectionType.ADDR_FETCH)

        def failed(failure: Failure) -> None:
            self._fetching = False
            entry[3] += 1
            log.info(
                "Could not fetch addresses from {host}:{port}: {error}",
                host=host,
                port=port,
                error=failure.getErrorMessage(),
            )
            if len(self.book) == 0:
                entry[2] = self._reactor.seconds() + retry_delay(entry[3])
                self._fetches.append(entry)
                self._fetches.sort(key=lambda e: e[2])

        d.addErrback(failed)

    def _dialFailed(self, failure: Failure, address: Address) -> None:
        if address == self._feeler:
            self._feeler = None
        log.debug(
            "Could not connect to {address}: {error}",
            address=address,
            error=failure.getErrorMessage(),
        )

    def _addSeeds(self) -> None:
        """
        Put the bootstrap addresses in the address manager; host names are
        resolved to all their addresses first.
        """
        now = self._reactor.seconds()
        for host, port in self.config.seed_list():
            try:
                address = Address.of(host, port)
            except AddressError:
                self._resolveSeed(host, port)
                continue
            self._addSeed(address, now)

    def _addSeed(self, address: Address, now: float) -> None:
        if address not in self._own:
            self.book.add([(address, now)], address, now)

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
            if not self.running:
                return
            now = self._reactor.seconds()
            for address in addresses:
                self._addSeed(address, now)
            self._maintain()

        receiver.done.addCallback(done)

    def _seedFallback(self) -> None:
        self._seed_timer = None
        if not self.peers():
            log.info("No peer yet: falling back to the seeds")
            self._addSeeds()
            self._maintain()

    # -- persistence --------------------------------------------------------------

    def _load(self, now: float) -> None:
        if self._datadir is None:
            return
        body = self._datadir.load_document(PEERS_FILE, *PEERS_FORMAT, now, upgrade=_upgradePeers)
        if body is not None:
            try:
                self.book = self._bookFrom(body, now)
            except (AddrManError, AddressBookError, AddressError) as e:
                self._datadir.set_aside(PEERS_FILE, now, str(e))
                self.book = self._newBook()
            else:
                log.info(
                    "Loaded {count} addresses from {path}",
                    count=len(self.book),
                    path=str(self._datadir.path / PEERS_FILE),
                )
                self._savedSize = len(self.book)
        body = self._datadir.load_document(BANLIST_FILE, *BANLIST_FORMAT, now)
        if body is not None:
            try:
                self.bans = BanMan.from_json(body, now)
            except BanError as e:
                self._datadir.set_aside(BANLIST_FILE, now, str(e))
        if self.identity is not None:
            body = self._datadir.load_document(PINS_FILE, *PINS_FORMAT, now)
            if body is not None:
                try:
                    self.pins = PinStore.from_json(body)
                except ValueError as e:
                    self._datadir.set_aside(PINS_FILE, now, str(e))
        body = self._datadir.load_document(ANCHORS_FILE, *ANCHORS_FORMAT, now)
        # Anchors are used once: a crash before the next clean stop must
        # not make them permanent.
        self._datadir.remove(ANCHORS_FILE)
        if isinstance(body, list):
            for text in body[: self.config.outbound_slots]:
                try:
                    self._anchors.append(parse_address(text))
                except AddressError:
                    continue

    def _bookFrom(self, body, now: float):
        """
        The address manager saved in C{body}. A bitp2p 0.1 peers file
        (C{{"legacy": [...]}} from L{_upgradePeers}) is imported: its
        addresses go to "new", those that worked to "tried".
        """
        if isinstance(body, dict) and "legacy" in body:
            old = AddressBook.from_json(body["legacy"], rng=self._rng)
            if self.config.address_manager == "simple":
                return old
            book = self._newBook()
            for info in old:
                book.add([(info.address, info.last_seen)], info.address, now)
                if info.last_success:
                    book.good(info.address, info.last_success)
            return book
        if self.config.address_manager == "simple":
            return AddressBook.from_json(body, rng=self._rng)
        return AddrMan.from_json(body, rng=self._rng, group_of=self._bucketGroup)

    # -- relay ----------------------------------------------------------------------

    def _relay(self, source: Peer, entries: list[tuple[Address, int | None]]) -> None:
        """
        Pass fresh addresses on, as Bitcoin Core's RelayAddress does: each
        goes to the C{RELAY_FANOUT} peers (other than its source) that rank
        highest by a keyed hash of the address, the peer and the day, so
        the same address takes the same way for a day whoever sends it
        again (repeating an address does not reach more peers), and is sent
        only to those that do not know it yet (neither sent it to us nor
        were sent it by us), so re-advertisements stop at the first hop.
        """
        others = [p for p in self.peers() if p is not source]
        if not others:
            return
        now = int(self._reactor.seconds())
        batches: dict[Peer, list[tuple[Address, int | None]]] = {}
        for entry in entries:
            address = entry[0]
            for peer in self._relayTargets(address, others, now):
                if not peer.knowsAddress(address):
                    batches.setdefault(peer, []).append(entry)
        for peer, batch in batches.items():
            peer.rememberAddresses(address for address, _ in batch)
            peer.send(codec.addr(batch))

    def _relayTargets(self, address: Address, peers: list[Peer], now: int) -> list[Peer]:
        if len(peers) <= RELAY_FANOUT:
            return peers
        key = str(address).encode()
        offset = int.from_bytes(hashlib.blake2b(key, key=self._relayKey, digest_size=8).digest(), "big")
        day = ((now + offset % 86400) // 86400).to_bytes(8, "big")
        base = hashlib.blake2b(key + b"\0" + day, key=self._relayKey, digest_size=8)

        def rank(peer: Peer) -> bytes:
            h = base.copy()
            h.update((peer.node_id or "").encode())
            return h.digest()

        return heapq.nlargest(RELAY_FANOUT, peers, key=rank)

    def _whenClosed(self, peer: Peer) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._closing.append((peer, d))
        return d

    def _notify(self, callback: Callable, *args) -> None:
        try:
            callback(*args)
        except Exception:
            log.failure("Peer observer {callback!r} failed", callback=callback)


def _upgradePeers(old: object) -> dict:
    """
    Read a bitp2p 0.1 peers file (one JSON object, version 1).

    @raise ValueError: if it is not one.
    """
    if not isinstance(old, dict) or old.get("version") != 1 or not isinstance(
        old.get("addresses"), dict
    ):
        raise ValueError("not a bitp2p peers file")
    return {"legacy": old["addresses"]}


def _literal(host: str, port: int) -> Address | None:
    try:
        return Address.of(host, port)
    except AddressError:
        return None


def _hostAddress(address) -> Address | None:
    """
    The IP address (port 0) of a Twisted C{IAddress}, or L{None} (a UNIX
    socket, a test transport without one).
    """
    host = getattr(address, "host", None)
    if not isinstance(address, (IPv4Address, IPv6Address)) or host is None:
        return None
    try:
        return Address.of(host, 0)
    except AddressError:
        return None


def _remoteAddress(peer: Peer) -> Address | None:
    transport = peer.wire.transport if peer.wire is not None else None
    return _hostAddress(transport.getPeer()) if transport is not None else None


def _remoteHost(peer: Peer) -> str:
    transport = peer.wire.transport if peer.wire is not None else None
    return getattr(transport.getPeer(), "host", "") or "" if transport is not None else ""


def _merge(totals: dict[str, list[int]], table: dict[str, list[int]]) -> None:
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


def _tell(outcome, followers: list[Deferred]):
    """
    Give C{outcome} (a result or a failure) to each of C{followers}, and pass
    it on unchanged.
    """
    for follower in followers:
        if isinstance(outcome, Failure):
            follower.errback(outcome)
        else:
            follower.callback(outcome)
    return outcome


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
