"""
The connection manager (Bitcoin Core's C{CConnman}): sockets and slots.

L{ConnectionManager} owns the listening ports (through its
L{Listener<bitp2p.listener.Listener>}), the server and client factories,
the registry of live connections (by kind, by node id, inbound ones by
network group), inbound admission (bans, the per-group cap, how often
each group connects (L{Arrivals<bitp2p.arrivals.Arrivals>}), eviction by
Bitcoin Core's rules), dialing (endpoints, the bind address,
connect() calls that join a dial in progress), and the detection of
self-connections and duplicates. It publishes each connection's
establishment and end on L{PeerEvents<bitp2p.events.PeerEvents>}.

It knows no message meaning: it never reads or builds a message, and it
reaches the wire format only through L{IWireFormat
<bitp2p.interfaces.IWireFormat>} (through the C{newPeer} factory the node
gives it). It knows nothing of the address manager either: what a dial or a
self-connection means for the address book goes out through callbacks
(C{onDialStarted}, C{onDialFailed}, C{onSelfAddress}, C{onLocalGroup}).

It tells the node's L{LocalNetworks<bitp2p.address.LocalNetworks>} which
groups are its own (its listening address, the local end of each
connection), and asks it which addresses count for group diversity.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, AbstractSet, Callable, Iterable

from twisted.internet import defer
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
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from bitp2p.address import (
    Address,
    AddressError,
    LocalNetworks,
    hostAddress,
    is_reachable,
    network_group,
    unreachable_reason,
)
from bitp2p.arrivals import Arrivals
from bitp2p.constants import (
    INBOUND_CHURN_HALF_LIFE_S,
    INBOUND_CHURN_RATIO,
    INBOUND_CHURN_SOURCES,
    LOCAL_HOSTS_REMEMBERED,
)
from bitp2p.endpoints import Target
from bitp2p.errors import (
    ConnectFailed,
    DuplicateConnection,
    LimitReached,
    PeerLost,
    SelfConnection,
)
from bitp2p.eviction import EvictionCandidate, select_to_evict
from bitp2p.listener import Listener
from bitp2p.logs import UNSUMMARISED
from bitp2p.peer import SHORT_LIVED, ConnectionType, Direction, Peer

if TYPE_CHECKING:
    from bitp2p.banman import BanMan
    from bitp2p.config import NodeConfig
    from bitp2p.events import PeerEvents
    from bitp2p.logs import RepeatedEvents
    from bitp2p.tls import Identity

log = Logger()

# The kinds of the log lines anyone can cause at will (RepeatedEvents).
REFUSED = "Inbound connections refused"
EVICTED = "Inbound peers evicted to make room"


def _host(peer: Peer) -> str:
    return getattr(peer.remote_address, "host", "") or ""


NewPeer = Callable[[Direction, "Address | None", ConnectionType], tuple[Peer, object]]


class PeerServerFactory(ServerFactory):
    """
    Builds the protocol of each inbound connection, or refuses it.
    """

    noisy = False  # the node logs what matters itself

    def __init__(self, connections: ConnectionManager) -> None:
        self.connections = connections

    def buildProtocol(self, addr):
        return self.connections.admit(addr)


class PeerClientFactory(ClientFactory):
    """
    Builds the protocol of one outbound connection.

    @ivar dialed: the address dialed, when it is an IP literal.
    @ivar kind: the L{ConnectionType} of the connection.
    """

    noisy = False

    def __init__(
        self, connections: ConnectionManager, dialed: Address | None, kind: ConnectionType
    ) -> None:
        self.connections = connections
        self.dialed = dialed
        self.kind = kind

    def buildProtocol(self, addr):
        return self.connections.buildPeer(Direction.OUTBOUND, self.dialed, self.kind)


class ConnectionManager:
    """
    Listening, dialing, admission and the registry of live connections.

    @param nodeId: this node's id (a callable: it is the node's public
        attribute).
    @param newPeer: makes a new connection's L{Peer} and the framing
        protocol feeding it (from the node's wire format):
        C{newPeer(direction, dialed, kind) -> (peer, protocol)}.
    @param bans: the current L{BanMan} (a callable: the node may replace it
        when it loads its data directory).
    @param local: the node's own network groups.
    @param groupKey: the secret that keys network groups for eviction.
    @param noveltyOf: when a peer last told us of an address new to us (0:
        never), which protects it from eviction.
    @param onDialStarted: C{(address, now, count_failure)}: a dial of an IP
        address starts; C{count_failure} says whether a failure would count
        against the address (see L{countsFailures}).
    @param onDialFailed: C{(address, now)}: a dial of an IP address failed.
    @param onSelfAddress: C{(address)}: a dialed address turned out to be
        this node.
    @param onLocalGroup: C{(group)}: a network group became local (see the
        module docstring).
    @param repeated: where refusals and evictions are logged (anyone can
        cause them at will): the node's L{RepeatedEvents}; by default every
        one is written.

    Counters since it was made (plain ints, for the metrics: the node's
    C{counters}, L{bitp2p.views.NodeView.counters}):

    @ivar dials_connected: dials whose connection was made (the handshake
        may still fail).
    @ivar dials_failed: dials that could not connect.
    @ivar dials_cancelled: dials cancelled before they connected.
    @ivar accepted: inbound connections accepted.
    @ivar refused_banned: inbound connections refused: banned host.
    @ivar refused_group: refused: the network group's inbound cap reached.
    @ivar refused_full: refused: every inbound slot taken, no one evicted.
    @ivar evictions: inbound peers evicted to make room.
    """

    dials_connected = 0
    dials_failed = 0
    dials_cancelled = 0
    accepted = 0
    refused_banned = 0
    refused_group = 0
    refused_full = 0
    evictions = 0

    def __init__(
        self,
        config: NodeConfig,
        reactor,
        nodeId: Callable[[], str],
        events: PeerEvents,
        newPeer: NewPeer,
        bans: Callable[[], BanMan],
        local: LocalNetworks,
        groupKey: bytes,
        identity: Identity | None,
        noveltyOf: Callable[[Peer], float],
        onDialStarted: Callable[[Address, float, bool], None],
        onDialFailed: Callable[[Address, float], None],
        onSelfAddress: Callable[[Address], None],
        onLocalGroup: Callable[[str], None],
        running: Callable[[], bool],
        repeated: RepeatedEvents = UNSUMMARISED,
    ) -> None:
        self._config = config
        self._reactor = reactor
        self._nodeId = nodeId
        self._events = events
        self._newPeer = newPeer
        self._bans = bans
        self._local = local
        self._groupKey = groupKey
        self._identity = identity
        self._noveltyOf = noveltyOf
        self._onDialStarted = onDialStarted
        self._onDialFailed = onDialFailed
        self._onSelfAddress = onSelfAddress
        self._onLocalGroup = onLocalGroup
        self._running = running
        self._repeated = repeated
        self._listener = Listener(
            config, reactor, PeerServerFactory(self), identity, self.addLocalGroup, repeated
        )
        # A dict, not a set: iteration in connection order keeps runs with a
        # seeded rng reproducible (a set would follow memory addresses).
        self._connections: dict[Peer, None] = {}
        # The connections that are not short-lived (SHORT_LIVED), in the
        # same order: peers() is asked for on every addr relayed. (A dict
        # too: removing a peer from a list walked it, at every close.)
        self._longLived: dict[Peer, None] = {}
        # Connections by kind, and inbound ones by network group, kept as
        # they come and go: accepting one must not cost a walk over thousands.
        self._counts = {kind: 0 for kind in ConnectionType}
        self._inboundGroups: dict[str, int] = {}
        # Each inbound connection's group as it was counted at admission
        # (what is local may change meanwhile).
        self._groupOf: dict[Peer, str] = {}
        # What eviction asks of each established inbound peer that does
        # not change while it is connected: its keyed network group and
        # whether it is on loopback (made once, not on every eviction
        # round, where each costs ~10 us a peer).
        self._evictionKeys: dict[Peer, tuple[int, bool]] = {}
        # How often each network group connects (local ones exempt, as from
        # the group cap).
        self._arrivals = Arrivals(reactor, INBOUND_CHURN_HALF_LIFE_S, INBOUND_CHURN_SOURCES)
        # The last peer evicted to make room, until it is gone.
        self._evicted: Peer | None = None
        # The peer let in under each node id, and (rarely) the others that
        # claim the same id from other hosts: without TLS an id is only a
        # claim, and a claim from elsewhere must not lock the real node out
        # (PROTOCOL.md, Handshake), so such peers are kept apart.
        self._byId: dict[str, Peer] = {}
        self._alsoById: dict[str, list[Peer]] = {}
        # Each dial of an IP address in progress: its kind, its outcome, and
        # the Deferreds of connect() calls that joined it.
        self._dials: dict[Address, _Dial] = {}
        self._own: set[Address] = set()
        # The local hosts of established connections already looked at.
        self._localHosts: set[str | None] = set()
        self._closing: dict[Peer, list[Deferred]] = {}

    # -- listening (the Listener's) ----------------------------------------------

    def listen(self) -> None:
        """
        Listen now (L{Listener.listen<bitp2p.listener.Listener.listen>}).
        """
        self._listener.listen()

    def stopListening(self) -> list[Deferred]:
        return self._listener.stopListening()

    @property
    def ports(self) -> list[IListeningPort]:
        """
        The ports listened on (a copy).
        """
        return self._listener.ports

    @property
    def pendingListens(self) -> int:
        """
        Endpoints still on their way to listening (an onion service, ...).
        """
        return self._listener.pendingListens

    @property
    def listeningAddress(self) -> Address | None:
        """
        The address this node listens on (the real port when 0 was asked).
        """
        return self._listener.listeningAddress

    # -- the registry -----------------------------------------------------------

    def connections(self) -> list[Peer]:
        """
        Every live connection, in the order they were made.
        """
        return list(self._connections)

    def peers(self) -> list[Peer]:
        """
        The established peers (feeler and address-fetch connections, which
        close as soon as their job is done, are not counted).
        """
        return [p for p in self._longLived if p.established]

    def __len__(self) -> int:
        return len(self._connections)

    def __contains__(self, peer: object) -> bool:
        return peer in self._connections

    def count(self, kind: ConnectionType) -> int:
        """
        Live connections of C{kind}, established or not.
        """
        return self._counts[kind]

    def inboundFrom(self, group: str) -> int:
        """
        Live inbound connections from network group C{group}.
        """
        return self._inboundGroups.get(group, 0)

    def byId(self, node_id: str) -> Peer | None:
        """
        The connection whose peer claimed C{node_id} and was let in, if any
        (the first, when peers on several hosts claim it).
        """
        return self._byId.get(node_id)

    def _heldBy(self, peer: Peer) -> Peer | None:
        """
        Another connection holding C{peer}'s node id for the same claimant
        (L{_sameClaimant}), if any.
        """
        first = self._byId.get(peer.node_id)
        if first is None:
            return None
        for other in (first, *self._alsoById.get(peer.node_id, ())):
            if other is not peer and self._sameClaimant(other, peer):
                return other
        return None

    def _sameClaimant(self, a: Peer, b: Peer) -> bool:
        """
        Whether two connections claiming one node id are the same claimant:
        with TLS, always (the id is proven by the key); without, when they
        come from the same host.
        """
        if self._identity is not None:
            return True
        return getattr(a.remote_address, "host", None) == getattr(b.remote_address, "host", None)

    def _forget(self, peer: Peer) -> None:
        """
        C{peer} no longer holds its node id.
        """
        node_id = peer.node_id
        others = self._alsoById.get(node_id)
        if self._byId.get(node_id) is peer:
            if others:
                self._byId[node_id] = others.pop(0)
            else:
                del self._byId[node_id]
        elif others and peer in others:
            others.remove(peer)
        if others is not None and not others:
            del self._alsoById[node_id]

    def dialCount(self) -> int:
        """
        Dials in progress (of IP addresses; host names and endpoint strings
        are not tracked).
        """
        return len(self._dials)

    def isDialing(self, address: Address) -> bool:
        return address in self._dials

    def dialingKinds(self) -> Iterable[tuple[Address, ConnectionType]]:
        """
        Each dial in progress: its address and its kind.
        """
        return [(address, dial.kind) for address, dial in self._dials.items()]

    def busyAddresses(self) -> set[Address]:
        """
        The addresses connected to or being dialed: not to dial again.
        """
        busy = set(self._dials)
        for peer in self._connections:
            address = peer.address
            if address is not None:
                busy.add(address)
            if peer.dialed is not None:
                busy.add(peer.dialed)
        return busy

    def whenClosed(self, peer: Peer) -> Deferred[None]:
        """
        A Deferred that fires once C{peer}'s connection has ended.
        """
        d: Deferred[None] = Deferred()
        self._closing.setdefault(peer, []).append(d)
        return d

    def closeAll(self, reason: Exception) -> list[Deferred]:
        """
        Cancel every dial and close every connection.

        @return: one Deferred per connection, firing once it has ended.
        """
        for dial in list(self._dials.values()):
            dial.result.cancel()
        closed = [self.whenClosed(peer) for peer in self._connections]
        for peer in list(self._connections):
            peer.close(reason)
        return closed

    # -- own addresses and groups -----------------------------------------------

    def isOwn(self, address: Address) -> bool:
        """
        Whether C{address} is this node's (advertised, or found by dialing
        ourselves).
        """
        return address in self._own

    @property
    def ownAddresses(self) -> AbstractSet[Address]:
        """
        This node's addresses (see L{isOwn}), for a caller that tests many
        at once: a live, read-only view.
        """
        return self._own

    def addOwn(self, address: Address) -> None:
        """
        Remember C{address} as this node's: it is never dialed.
        """
        self._own.add(address)

    def _selfFound(self, address: Address | None) -> None:
        """
        A connection to C{address} reached this node itself.
        """
        if address is not None:
            self._own.add(address)
            self._onSelfAddress(address)

    def addLocalGroup(self, address: Address) -> None:
        """
        C{address} is one of ours: its network group is local.
        """
        group = self._local.add(address)
        if group is not None:
            self._onLocalGroup(group)

    def diversityKey(self, address: Address) -> str | None:
        """
        The network group that counts for the one-outbound-per-group rule
        and the inbound group cap, or L{None} for an exempt local address
        (L{LocalNetworks.diversityKey<bitp2p.address.LocalNetworks.diversityKey>}).
        """
        return self._local.diversityKey(address)

    def outboundGroups(self) -> set[str]:
        """
        The diversity keys of the automatic outbound connections, live or
        being dialed (exempt addresses have none).
        """
        groups: set[str] = set()
        for peer in self._connections:
            if peer.kind is ConnectionType.OUTBOUND:
                address = peer.dialed or peer.address
                key = self.diversityKey(address) if address is not None else None
                if key is not None:
                    groups.add(key)
        for address, dial in self._dials.items():
            if dial.kind is ConnectionType.OUTBOUND:
                key = self.diversityKey(address)
                if key is not None:
                    groups.add(key)
        return groups

    def outboundAnchors(self) -> list[Address]:
        """
        The addresses dialed by the established automatic outbound
        connections, in connection order (the anchors to save).
        """
        return [
            p.dialed
            for p in self._connections
            if p.kind is ConnectionType.OUTBOUND and p.established and p.dialed is not None
        ]

    def countsFailures(self) -> bool:
        """
        Whether a failed dial now counts against the address (Bitcoin
        Core): only while at least two outbound peers in distinct groups
        work, so that a node that is offline does not condemn every
        address it knows.
        """
        keys = {self.diversityKey(address) or str(address) for address in self.outboundAnchors()}
        return len(keys) >= min(self._config.outbound_slots - 1, 2)

    # -- inbound ----------------------------------------------------------------

    def admit(self, addr):
        """
        An inbound connection from C{addr} (a Twisted C{IAddress}) arrives:
        its framing protocol, or L{None} to refuse it (banned host, group
        cap reached, or every inbound slot taken and no one to evict).
        """
        host = getattr(addr, "host", "")
        now = self._reactor.seconds()
        bans = self._bans()
        if bans.is_banned(host, now):
            self.refused_banned += 1
            log.debug("Refusing inbound connection from banned {host}", host=host)
            return None
        count = self._counts[ConnectionType.INBOUND]
        limit = self._config.inbound_slots
        discouraged = bans.is_discouraged(host, now)
        if discouraged:
            # Like Bitcoin Core: a discouraged host may still take a free
            # slot, but never the last one, and never evicts anyone.
            limit -= 1
        remote = hostAddress(addr)
        group = self.diversityKey(remote) if remote is not None else None
        # An exempt local newcomer (many nodes on one host) counts as quiet.
        arrivals = self._arrivals.arrived(group) if group is not None else 1.0
        if group is not None and self._inboundGroups.get(group, 0) >= self._config.inbound_group_cap:
            self.refused_group += 1
            self._repeated.emit(
                log,
                LogLevel.info,
                REFUSED,
                host,
                "Refusing inbound connection from {host}: {count} inbound from {group} already",
                host=host,
                count=self._inboundGroups[group],
                group=group,
            )
            return None
        if count >= limit and (discouraged or not self._evictInbound(arrivals)):
            self.refused_full += 1
            self._repeated.emit(
                log,
                LogLevel.info,
                REFUSED,
                host,
                "Refusing inbound connection from {host}: {inbound} inbound already",
                host=host,
                inbound=count,
            )
            return None
        self.accepted += 1
        return self.buildPeer(Direction.INBOUND, None, ConnectionType.INBOUND, group)

    def _evictInbound(self, arrivals: float) -> bool:
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

        Within that grace, a connection in its handshake still goes if its
        network group has been connecting more than C{INBOUND_CHURN_RATIO}
        times as often as the newcomer's (L{Arrivals<bitp2p.arrivals.Arrivals>}):
        the busiest group's oldest. Local addresses exempt from the group cap
        (L{diversityKey}) are exempt here too: such a newcomer counts as
        quiet (many nodes on one host all connect from it), and such a
        handshake never gives way by this rule. An attacker that reconnects
        each connection the moment it is closed would otherwise keep every
        slot filled with handshakes younger than the grace, and refuse
        every newcomer; and one newcomer still never evicts another as
        quiet as itself (a thousand nodes starting from one seed, each
        connecting once).

        One eviction at a time, as Bitcoin Core (which disconnects the
        evicted node before it accepts again): while the last peer evicted
        has not yet gone (its socket closes on the next turn of the
        reactor), no other is, and newcomers are refused. So a burst of
        arrivals read in one turn cannot evict a peer each, and the
        connections open never exceed the limit by more than the one
        going.

        @param arrivals: the newcomer's group's arrival count
            (L{Arrivals.arrived<bitp2p.arrivals.Arrivals.arrived>}).
        @return: whether a peer was evicted.
        """
        if self._evicted is not None:  # until peerClosed
            return False
        victim = self._chooseEvictee(arrivals)
        if victim is None:
            return False
        self._evicted = victim
        self.evictions += 1
        return True

    def _chooseEvictee(self, arrivals: float) -> Peer | None:
        """
        L{_evictInbound}'s choice, dropped (L{_drop}): the peer evicted, or
        L{None}.
        """
        now = self._reactor.seconds()
        handshaking = [
            peer
            for peer in self._connections
            if peer.kind is ConnectionType.INBOUND
            and not peer.established
            and peer.close_reason is None
        ]
        stale = [
            peer for peer in handshaking if now - peer.connected_at > self._config.stale_handshake_s
        ]
        if stale:
            return self._drop(
                min(stale, key=lambda peer: peer.connected_at),
                "evicted: still in its handshake, to make room",
                "Inbound slots full: closing {peer}, still in its handshake, to make room",
            )
        busiest = None
        for peer in handshaking:
            group = self._groupOf.get(peer)
            count = self._arrivals.count(group) if group is not None else 0.0
            # The highest count; of equal ones, the oldest connection.
            if busiest is None or count > busiest[0]:
                busiest = (count, peer)
        if busiest is not None and busiest[0] > INBOUND_CHURN_RATIO * arrivals:
            count, victim = busiest
            return self._drop(
                victim,
                "evicted: in its handshake, from a group that keeps reconnecting",
                "Inbound slots full: closing {peer}, in its handshake, whose network group"
                " connected {count:.0f} times lately, to make room",
                count=count,
            )
        candidates = []
        keys = self._evictionKeys
        for peer in self._connections:
            if (
                peer.kind is not ConnectionType.INBOUND
                or not peer.established
                or peer.close_reason is not None
            ):
                continue
            known = keys.get(peer)
            if known is None:
                remote = hostAddress(peer.remote_address)
                group = network_group(remote) if remote is not None else "?"
                known = keys[peer] = (
                    self._keyedGroup(group),
                    remote is not None and remote.is_loopback,
                )
            candidates.append(
                EvictionCandidate(
                    id=peer,
                    connected_at=peer.connected_at,
                    min_ping_s=peer.min_rtt_s,
                    keyed_net_group=known[0],
                    is_local=known[1],
                    last_addr_time=self._noveltyOf(peer),
                )
            )
        victim = select_to_evict(candidates)
        if victim is None:
            return None
        return self._drop(
            victim,
            "evicted to make room for a new connection",
            "Inbound slots full: evicting {peer} to make room",
        )

    def _drop(self, victim: Peer, reason: str, message: str, **fields) -> Peer:
        """
        Evict C{victim}: log C{message} (summarised: anyone can cause it)
        and drop it at once with C{reason}.
        """
        self._repeated.emit(log, LogLevel.info, EVICTED, _host(victim), message, peer=victim, **fields)
        victim.drop(PeerLost(reason))
        return victim

    def _keyedGroup(self, group: str) -> int:
        digest = hashlib.blake2b(group.encode(), key=self._groupKey, digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def buildPeer(
        self,
        direction: Direction,
        dialed: Address | None,
        kind: ConnectionType | None = None,
        group: str | None = None,
    ):
        """
        A new connection's peer, counted in, and the framing protocol
        feeding it (what a factory's C{buildProtocol} returns).

        @param kind: the connection's type; by default C{INBOUND} or
            C{OUTBOUND} as C{direction} says.
        @param group: for an inbound connection, the remote's network group
            as L{diversityKey} gives it (L{None}: exempt from the cap).
        """
        if kind is None:
            kind = (
                ConnectionType.INBOUND if direction is Direction.INBOUND else ConnectionType.OUTBOUND
            )
        peer, protocol = self._newPeer(direction, dialed, kind)
        self._connections[peer] = None
        if peer.kind not in SHORT_LIVED:
            self._longLived[peer] = None
        self._counts[kind] += 1
        if kind is ConnectionType.INBOUND and group is not None:
            self._groupOf[peer] = group
            self._inboundGroups[group] = self._inboundGroups.get(group, 0) + 1
        return protocol

    # -- outbound ---------------------------------------------------------------

    def connect(self, target: Target) -> Deferred[Peer]:
        """
        Dial C{target} as a manual connection (L{Node.connect
        <bitp2p.node.Node.connect>}), unless it is this node, already
        connected (its peer, once established), or being dialed (that
        dial's outcome).
        """
        address = target.address
        if address is not None:
            if address in self._own:
                return defer.fail(SelfConnection(f"{address} is this node"))
            for peer in self._connections:
                if peer.address == address:
                    return peer.whenEstablished()
            dial = self._dials.get(address)
            if dial is not None:
                follower: Deferred[Peer] = Deferred()
                dial.followers.append(follower)
                return follower
        if len(self._connections) + len(self._dials) >= self._config.max_connections:
            return defer.fail(
                LimitReached(f"{self._config.max_connections} connections already")
            )
        return self.dial(target, ConnectionType.MANUAL)

    def _endpointFor(self, target: Target, address: Address | None):
        if target.endpoint is not None:
            return clientFromString(self._reactor, target.endpoint)
        host, port = target.host, target.port
        timeout = self._config.connect_timeout_s
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
            own = Address.of(self._config.interface, 0)
        except AddressError:
            return None
        if (
            own.is_unspecified
            or not is_reachable(own)
            or not is_reachable(address)
            or own.is_ipv6 != address.is_ipv6
            or own.is_loopback != address.is_loopback
        ):
            return None
        return (own.host, 0)

    def dial(self, target: Target, kind: ConnectionType) -> Deferred[Peer]:
        """
        Dial C{target} and complete the handshake. A host of an overlay
        network (onion, I2P, CJDNS) is never dialed: bitp2p has no proxy
        to reach it (nor resolves its name, which would leak it to the DNS).

        @return: a Deferred that fires with the L{Peer} once established
            (that of the existing connection when the node turned out to be
            connected already), or fails with the reason.
        """
        if target.endpoint is None:
            unreachable = unreachable_reason(target.host)
            if unreachable is not None:
                return defer.fail(ConnectFailed(unreachable))
        now = self._reactor.seconds()
        address = target.address
        if address is not None:
            self._onDialStarted(address, now, self.countsFailures())
        try:
            endpoint = self._endpointFor(target, address)
        except (ValueError, TypeError, KeyError) as e:
            return defer.fail(ConnectFailed(f"cannot dial {target}: {e}", str(e)))
        factory = PeerClientFactory(self, address, kind)
        if self._identity is not None:
            factory = self._identity.wrapClientFactory(factory)
        connecting = endpoint.connect(factory)
        result: Deferred[Peer] = Deferred(lambda _: connecting.cancel())
        dial = None
        if address is not None:
            dial = self._dials[address] = _Dial(kind, result)
            # First in the chain: followers get the outcome before the
            # dialer's own callbacks (which may consume a failure).
            result.addBoth(_tell, dial.followers)

        def done() -> None:
            if dial is not None and self._dials.get(address) is dial:
                del self._dials[address]

        def connected(protocol) -> None:
            done()
            self.dials_connected += 1
            peer = getattr(protocol, "wrappedProtocol", protocol).peer  # under TLS, or not
            peer.whenEstablished().addErrback(self._alreadyConnected, peer).chainDeferred(result)

        def failed(failure: Failure) -> None:
            done()
            if failure.check(defer.CancelledError, ConnectingCancelledError):
                self.dials_cancelled += 1
                result.errback(ConnectFailed(f"dialing {target} cancelled", "dialing cancelled"))
                return
            self.dials_failed += 1
            if address is not None and self._running():
                self._onDialFailed(address, self._reactor.seconds())
            error = failure.value
            if failure.check(ConnectError):
                reason = failure.getErrorMessage().rstrip(".")
                error = ConnectFailed(f"cannot connect to {target}: {reason}", reason)
            result.errback(error)

        connecting.addCallbacks(connected, failed)
        return result

    def _alreadyConnected(self, failure: Failure, peer: Peer) -> Deferred[Peer] | Failure:
        """
        A dial that found the node already connected over another
        connection gets that connection's peer.
        """
        if failure.check(DuplicateConnection):
            other = self._heldBy(peer)
            if other is not None:
                return other.whenEstablished()
        return failure

    # -- what peers tell the connection manager -------------------------------

    def admitId(self, peer: Peer) -> Exception | None:
        """
        Judge the node id of C{peer}'s C{version}: the refusal if it is this
        node itself or a node already connected, else L{None} (and the id
        is registered). Already connected means: the same id from the same
        host, or, with TLS, the same (proven) id from anywhere. The same id
        claimed from another host without TLS is a different peer.
        """
        own = self._nodeId()
        if peer.node_id == own:
            # The other end of this connection is one of our own outbound
            # connections, still waiting for a version: close that one too,
            # and never dial its address again.
            remote = _endpointOf(peer.remote_address)
            for other in list(self._connections):
                if (
                    other.direction is Direction.OUTBOUND
                    and _endpointOf(other.local_address) == remote
                ):
                    self._selfFound(other.dialed)
                    other.close(SelfConnection(f"{other.dialed or other.remote} is this node"))
            self._selfFound(peer.dialed)
            return SelfConnection("connected to itself")
        existing = None
        if peer.node_id in self._byId:  # (rarely: most ids are new)
            existing = self._heldBy(peer)
        if existing is not None:
            duplicate = DuplicateConnection(f"already connected to {peer.node_id}")
            if existing.established or existing.direction is peer.direction:
                return duplicate  # the newer connection goes
            # Both nodes dialed each other at once, and each sees the other
            # connection as the newer one. Both keep the connection dialed
            # by the node with the smaller id, so exactly one survives.
            ours = Direction.OUTBOUND if own < peer.node_id else Direction.INBOUND
            if peer.direction is not ours:
                return duplicate
            existing.close(duplicate)
            self._forget(existing)
        if peer.node_id in self._byId:
            self._alsoById.setdefault(peer.node_id, []).append(peer)
        else:
            self._byId[peer.node_id] = peer
        return None

    def peerEstablished(self, peer: Peer) -> None:
        """
        C{peer}'s handshake is done: the local end's group is ours, and the
        event is published.
        """
        # The local end is one of a few addresses (those listened on, or
        # dialed from): each is looked at once, not at every handshake.
        host = getattr(peer.local_address, "host", None)
        if host not in self._localHosts:
            local = hostAddress(peer.local_address)
            if local is not None and not local.is_unspecified:
                self.addLocalGroup(local)
            if len(self._localHosts) < LOCAL_HOSTS_REMEMBERED:
                self._localHosts.add(host)
        self._events.established(peer)

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        """
        C{peer}'s connection ended: it leaves the registry, the event is
        published, then those waiting for the close are told.
        """
        if peer in self._connections:
            del self._connections[peer]
            if peer.kind not in SHORT_LIVED:
                del self._longLived[peer]
            self._counts[peer.kind] -= 1
            if peer is self._evicted:
                self._evicted = None
            self._evictionKeys.pop(peer, None)
            group = self._groupOf.pop(peer, None)
            if group is not None:
                left = self._inboundGroups[group] - 1
                if left:
                    self._inboundGroups[group] = left
                else:
                    del self._inboundGroups[group]
        node_id = peer.node_id
        if node_id is not None:
            if self._alsoById:
                self._forget(peer)
            elif self._byId.get(node_id) is peer:
                del self._byId[node_id]
        self._events.closed(peer, reason)
        for d in self._closing.pop(peer, ()):
            d.callback(None)


class _Dial:
    """
    One dial of an IP address in progress.

    @ivar kind: the connection's type.
    @ivar result: what the dialer gets.
    @ivar followers: the Deferreds of connect() calls made meanwhile.
    """

    __slots__ = ("kind", "result", "followers")

    def __init__(self, kind: ConnectionType, result: Deferred) -> None:
        self.kind = kind
        self.result = result
        self.followers: list[Deferred] = []


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


def _endpointOf(address) -> tuple[str, int] | None:
    """
    The C{(host, port)} of a Twisted C{IAddress}, to compare two ends of
    connections; L{None} when it has no host.
    """
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    return None if host is None else (host, port)


__all__ = [
    "ConnectionManager",
    "PeerClientFactory",
    "PeerServerFactory",
    "SHORT_LIVED",
    "hostAddress",
]
