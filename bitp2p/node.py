"""
The node: a C{twisted.application} service that listens, dials, and keeps a
healthy, diverse set of peers.

L{Node} is the boss (as magic-wormhole's C{_boss.py} is): a C{MultiService}
that builds the node's components from its L{NodeConfig}, wires them
together in one method (L{Node._wire}), runs their periodic work as child
timer services, and keeps the public API as thin delegations. It decides
nothing itself; each concern has one owner (see C{docs/architecture.rst}):

  - L{ConnectionManager<bitp2p.connman.ConnectionManager>} (C{connman}):
    listening (its L{Listener<bitp2p.listener.Listener>}), factories,
    admission, eviction, dialing, the registry of live connections, self
    and duplicate detection; no message meaning;
  - L{LocalNetworks<bitp2p.address.LocalNetworks>} (C{localNetworks}): the
    node's own network groups, and which addresses they exempt from the
    group-diversity rules;
  - L{OutboundFiller<bitp2p.outbound.OutboundFiller>} (C{outbound}): the
    automatic outbound slots, anchors, feelers, retry backoff;
  - L{ManualTargets<bitp2p.manual.ManualTargets>} (C{manual}) and
    L{AddressFetches<bitp2p.manual.AddressFetches>} (C{fetches}):
    C{--addnode}/C{--connect} and C{--seednode};
  - L{AddressRelay<bitp2p.discovery.AddressRelay>} (C{discovery}): all of
    C{getaddr}/C{addr}, relay, self-advertisement, seeds;
  - L{Handshake<bitp2p.handshake.Handshake>}: our C{version}, the judgement
    of theirs (TLS identity and pins);
  - L{MessageRegistry<bitp2p.messages.MessageRegistry>} (C{messages}): the
    application's message types, and gossip's (L{Gossip<bitp2p.gossip.Gossip>});
  - L{PeerEvents<bitp2p.events.PeerEvents>} (C{events}): established and
    closed, published once, to which the others subscribe;
  - L{NodeStore<bitp2p.store.NodeStore>} (C{store}): the data directory's
    files and when they are written;
  - L{Misbehavior<bitp2p.misbehavior.Misbehavior>},
    L{Accounting<bitp2p.accounting.Accounting>},
    L{ShortLived<bitp2p.shortlived.ShortLived>},
    L{AddressBookkeeping<bitp2p.bookkeeping.AddressBookkeeping>}: violations,
    traffic totals, feeler/fetch closing, and what connections teach the
    address manager;
  - the address manager (C{book}: L{AddrMan<bitp2p.addrman.AddrMan>} or the
    simple L{AddressBook<bitp2p.addrbook.AddressBook>}, one interface,
    L{IAddressManager<bitp2p.interfaces.IAddressManager>}) and the bans
    (C{bans}: L{BanMan<bitp2p.banman.BanMan>}).
  - L{RepeatedEvents<bitp2p.logs.RepeatedEvents>} (C{repeated}): the
    summary of the log lines anyone can make the node write at will
    (refused connections, violations, inbound peers coming and going),
    given to the components that write them, and stopped with the node.

Four timers run as child services: maintenance (every
C{maintenance_interval_s}, the connection manager's round: tried
collisions, manual peers, address fetches, the outbound slots), ping (every
C{ping_interval_s}), advertise (every C{advertise_interval_s}) and save
(every C{save_interval_s}). All time comes from the injected reactor (an
C{IReactorTime}), so tests drive every timer with
L{twisted.internet.task.Clock} or C{MemoryReactorClock}.

It must not know how any of those does its job: it only builds them,
connects them, and delegates to them.
"""

from __future__ import annotations

import random
import secrets
from typing import Callable

from twisted.application import service
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from bitp2p.accounting import Accounting
from bitp2p.addrbook import AddressBook
from bitp2p.address import LocalNetworks
from bitp2p.addrman import AddrMan
from bitp2p.backoff import retry_delay  # noqa: F401 (re-exported: its home is bitp2p.backoff)
from bitp2p.banman import BanMan
from bitp2p.bookkeeping import AddressBookkeeping
from bitp2p.config import NodeConfig
from bitp2p.connman import (
    SHORT_LIVED,
    ConnectionManager,
    PeerClientFactory,  # noqa: F401 (re-exported: its home is bitp2p.connman)
    PeerServerFactory,  # noqa: F401 (likewise)
)
from bitp2p.constants import (
    DEFAULT_BAN_S,
    FAST_LEARNING_MAX_ADDRESSES,
    FAST_LEARNING_WINDOW_S,
    LEARNING_MIN_GROWTH,
    LEARNING_MIN_GROWTH_LARGE,
)
from bitp2p.constants import MAX_TRAFFIC_KEYS, RELAY_FRESH_S  # noqa: F401 (re-exported)
from bitp2p.discovery import AddressRelay
from bitp2p.endpoints import Target, parse_target
from bitp2p.errors import ConnectFailed, NotRunning, PeerLost
from bitp2p.events import Observers, PeerEvents
from bitp2p.formatting import duration as _duration
from bitp2p.gossip import GOSSIP_FIELD, MAX_HOPS, Gossip, GossipSettings
from bitp2p.handshake import Handshake
from bitp2p.logs import RepeatedEvents
from bitp2p.manual import AddressFetches, ManualTargets
from bitp2p.messages import MessageHandler, MessageRegistry, MessageType, MessageValidator
from bitp2p.misbehavior import Misbehavior
from bitp2p.outbound import Learning, OutboundFiller
from bitp2p.peer import ConnectionType, Direction, Peer, PeerRoutes, PeerSettings
from bitp2p.shortlived import ShortLived
from bitp2p.store import (  # noqa: F401 (the formats are re-exported: their home is bitp2p.store)
    ANCHORS_FORMAT,
    BANLIST_FORMAT,
    PEERS_FORMAT,
    PINS_FORMAT,
    BookKind,
    NodeStore,
)
from bitp2p.timers import Deadlines, Every
from bitp2p.views import nodeStatus
from bitp2p.tls import Identity, PinStore
from bitp2p.bitcoin.wire import BitcoinFormat, nonceId
from bitp2p.wire import JSONLines

log = Logger()

__all__ = [
    "MessageType",
    "Node",
    "NodeConfig",
    "PeerClientFactory",
    "PeerServerFactory",
    "retry_delay",
]



class Node(service.MultiService):
    """
    A bitp2p node. Start it as a service (C{setServiceParent},
    C{startService}); stop it with C{stopService}, which closes every
    connection and saves the address manager, the bans and the anchors.

    @ivar config: the L{NodeConfig}.
    @ivar node_id: this node's id.
    @ivar book: the address manager (L{AddrMan}, or the simple
        L{AddressBook} when C{config.address_manager} is C{"simple"}).
    @ivar bans: the L{BanMan}: bans (saved) and discouraged hosts (not).
    @ivar pins: with TLS, the node id pinned to each address dialed.
    @ivar identity: with TLS, the node's key pair and certificate.
    @ivar wireFormat: how messages become bytes (L{JSONLines}).
    @ivar localNetworks: the node's own network groups (L{LocalNetworks}).
    @ivar connman: the L{ConnectionManager}.
    @ivar outbound: the L{OutboundFiller}.
    @ivar manual: the L{ManualTargets}.
    @ivar fetches: the L{AddressFetches}.
    @ivar discovery: the L{AddressRelay}.
    @ivar handshake: the L{Handshake}.
    @ivar messages: the L{MessageRegistry}.
    @ivar gossip: the L{Gossip}.
    @ivar events: the L{PeerEvents}.
    @ivar store: the L{NodeStore}.
    @ivar misbehavior: the L{Misbehavior}.
    @ivar accounting: the L{Accounting}.
    @ivar shortLived: the L{ShortLived}.
    @ivar bookkeeping: the L{AddressBookkeeping}.
    @ivar repeated: the L{RepeatedEvents}: the log lines anyone can cause,
        summarised.
    @ivar name: the node's service name, C{"bitp2p-node-<node id>"}: unique
        to each node (several nodes can share one C{Application}), known
        from construction on (before the port, which 0 leaves to the
        system) and stable. Find a node in an application with
        C{IServiceCollection(application).getServiceNamed(node.name)}, or
        set another name before C{setServiceParent}.

    @param reactor: the reactor (the global one by default).
    @param rng: the source of randomness (the system's by default).
    @param resolver: the C{IHostnameResolver} that resolves seed names (all
        their addresses), for a DNS server other than the system's (a
        C{twisted.names} resolver, a test's); by default the reactor's
        C{nameResolver}.
    """

    def __init__(
        self,
        config: NodeConfig | None = None,
        reactor=None,
        rng: random.Random | None = None,
        resolver=None,
    ) -> None:
        service.MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        self.config = config = config if config is not None else NodeConfig()
        self._reactor = reactor
        self._resolver = resolver
        # Selection, relay targets and eviction must be unpredictable to an
        # attacker who sees our ping nonces: the default source is the
        # system's, not a Mersenne Twister (tests inject a seeded one).
        self._rng = rng if rng is not None else random.SystemRandom()
        self._secret = (lambda n: rng.randbytes(n)) if rng is not None else secrets.token_bytes
        relayKey = self._secret(32)
        groupKey = self._secret(32)
        self.store = NodeStore(
            config.datadir,
            reactor,
            config.growth_save_delay_s,
            book=lambda: self.book,
            bans=lambda: self.bans,
            pins=lambda: self.pins if self.identity is not None else None,
            running=lambda: self.running,
        )
        self.identity: Identity | None = None
        self.pins = PinStore()
        if config.tls:
            self.identity = (
                Identity.load_or_create(self.store.path, now=reactor.seconds())
                if self.store.path is not None
                else Identity.generate()
            )
        if self.identity is not None:
            self.node_id = self.identity.node_id
        elif config.bitcoin is not None:
            # On a Bitcoin network a node id is 16 hex digits, as a peer's
            # (the nonce of its version); ours stands for the nonces of our
            # versions, one per connection (BitcoinFormat.newNonce).
            self.node_id = nonceId(
                config.node_id if config.node_id is not None else f"{self._rng.getrandbits(64):016x}"
            )
        elif config.node_id is not None:
            self.node_id = config.node_id
        else:
            self.node_id = self.store.nodeId(reactor.seconds())
        # When the address manager last grew past its size so far (and that
        # size): how much the node is still learning (L{_learning}).
        self._grewAt = reactor.seconds()
        self._bookHigh = 0
        # Unique per node, so that two nodes fit in one application.
        self.name = f"bitp2p-node-{self.node_id}"
        self._wire(relayKey, groupKey)

    def _wire(self, relayKey: bytes, groupKey: bytes) -> None:
        """
        Build the components and connect them: the one place that knows
        who talks to whom.
        """
        config, reactor = self.config, self._reactor
        if config.bitcoin is not None:
            self.wireFormat = BitcoinFormat(
                config.bitcoin,
                services=config.services,
                maxSendBufferBytes=config.max_send_buffer_bytes,
                rng=self._rng,
            )
        else:
            self.wireFormat = JSONLines(config.max_message_bytes, config.max_send_buffer_bytes)
        self.events = events = PeerEvents()
        self.repeated = repeated = RepeatedEvents(reactor)
        self._settings = PeerSettings(
            handshake_timeout_s=config.handshake_timeout_s,
            ping_timeout_s=config.ping_timeout_s,
            inactivity_timeout_s=config.inactivity_timeout_s,
        )
        # Every connection's handshake deadline and inactivity check, on
        # one timer of the reactor.
        self._deadlines = Deadlines(reactor)
        self.localNetworks = local = LocalNetworks()
        self._bookKind = BookKind(
            simple=config.address_manager == "simple",
            new=self._newBook,
            fromJson=self._bookFromJson,
        )
        self.book = self._newBook()
        self.bans = BanMan()
        self.bookkeeping = bookkeeping = AddressBookkeeping(
            reactor, lambda: self.book, local.bucketGroup, lambda: self.running
        )
        self.connman = connman = ConnectionManager(
            config,
            reactor,
            lambda: self.node_id,
            events,
            newPeer=self._newPeer,
            bans=lambda: self.bans,
            local=local,
            groupKey=groupKey,
            identity=self.identity,
            # (The relay is built next: it needs the connection manager.)
            noveltyOf=lambda peer: self.discovery.lastNovelAddressAt(peer),
            onDialStarted=bookkeeping.dialStarted,
            onDialFailed=bookkeeping.dialFailed,
            onSelfAddress=bookkeeping.selfAddress,
            onLocalGroup=bookkeeping.localGroup,
            running=lambda: self.running,
            repeated=repeated,
        )
        self.shortLived = ShortLived(reactor, connman)
        self.discovery = discovery = AddressRelay(
            config,
            reactor,
            connman,
            book=lambda: self.book,
            bans=lambda: self.bans,
            relayKey=relayKey,
            onNewAddresses=self._bookGrew,
            onAnswer=self.shortLived.answerReceived,
            maintain=self._maintain,
            running=lambda: self.running,
            resolver=self._resolver,
        )
        self.outbound = OutboundFiller(
            config,
            reactor,
            self._rng,
            connman,
            bans=lambda: self.bans,
            select=lambda now, new_only: self.book.select(now, new_only=new_only),
            selectCollision=lambda now: self.book.select_tried_collision(now),
            spreadKey=groupKey,
            learning=self._learning,
        )
        self.manual = ManualTargets(reactor, connman, (*config.connect, *config.addnodes))
        self.fetches = AddressFetches(reactor, connman, config.seednodes, lambda: len(self.book))
        self.handshake = Handshake(
            config,
            reactor,
            lambda: self.node_id,
            connman,
            self.identity,
            lambda: self.pins,
            repeated,
            minProtocol=self.wireFormat.minProtocol,
        )
        self.misbehavior = Misbehavior(
            reactor, lambda: self.bans, config.discourage_threshold, repeated
        )
        self.accounting = Accounting()
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
        self.messages = MessageRegistry(self.wireFormat, self.gossip)
        self._observers = Observers(SHORT_LIVED, repeated)
        self._routes = PeerRoutes(
            versionFor=self.handshake.versionFor,
            checkVersion=self.handshake.checkVersion,
            peerEstablished=connman.peerEstablished,
            peerClosed=connman.peerClosed,
            violationFrom=self.misbehavior.violationFrom,
            getaddrReceived=discovery.getaddrReceived,
            addrReceived=discovery.addrReceived,
            applicationHandlers=self.messages.handlers,
            repeated=repeated,
        )
        # In this order: discovery starts (getaddr, our address) before the
        # rest hears of a peer; the application hears last. Each subscribes
        # to the connection types it has business with.
        every = tuple(ConnectionType)
        dialed = tuple(kind for kind in ConnectionType if kind is not ConnectionType.INBOUND)
        fetch = (ConnectionType.ADDR_FETCH,)
        for established, kinds in (
            (discovery.peerEstablished, every),
            (bookkeeping.peerEstablished, dialed),
            (self.manual.peerEstablished, every),
            (self.shortLived.peerEstablished, SHORT_LIVED),
            (self._observers.peerEstablished, every),
        ):
            events.subscribe(established=established, kinds=kinds)
        for closed, kinds in (
            (self.accounting.peerClosed, every),
            (bookkeeping.peerClosed, dialed),
            (self.shortLived.peerClosed, SHORT_LIVED),
            (self.outbound.peerClosed, SHORT_LIVED),
            (self.fetches.peerClosed, fetch),
            (self.manual.peerClosed, every),
            (self._gossipPeerClosed, every),
            (discovery.peerClosed, every),
            (self.handshake.peerClosed, dialed if self.identity is not None else ()),
            (self._observers.peerClosed, every),
        ):
            events.subscribe(closed=closed, kinds=kinds)
        for name, interval, work, now in (
            ("maintenance", config.maintenance_interval_s, self._maintain, True),
            ("ping", config.ping_interval_s, self.pingAll, False),
            ("advertise", config.advertise_interval_s, self.advertiseAll, False),
            ("save", config.save_interval_s, self.save, False),
        ):
            Every(name, interval, work, reactor, now=now).setServiceParent(self)

    def _newPeer(
        self, direction: Direction, dialed, kind: ConnectionType
    ) -> tuple[Peer, object]:
        peer = Peer(
            self._routes,
            self._reactor,
            direction,
            settings=self._settings,
            rng=self._rng,
            dialed=dialed,
            kind=kind,
            deadlines=self._deadlines,
        )
        return peer, self.wireFormat.buildProtocol(peer)

    def _newBook(self):
        if self.config.address_manager == "simple":
            return AddressBook(rng=self._rng)
        return AddrMan(rng=self._rng, key=self._secret(32), group_of=self.localNetworks.bucketGroup)

    def _bookFromJson(self, body):
        if self.config.address_manager == "simple":
            return AddressBook.from_json(body, rng=self._rng)
        return AddrMan.from_json(body, rng=self._rng, group_of=self.localNetworks.bucketGroup)

    def _learning(self, now: float) -> Learning:
        """
        How much this node is still learning addresses (L{Learning}): fast
        while its address manager is small and learned within
        C{FAST_LEARNING_WINDOW_S}, slowly while it learned within
        C{learning_window_s} (an answer or a table's worth grew it by at
        least C{LEARNING_MIN_GROWTH}, C{LEARNING_MIN_GROWTH_LARGE} once it
        holds C{FAST_LEARNING_MAX_ADDRESSES}; relayed gossip does not
        count: L{_bookGrew}).
        """
        quiet = now - self._grewAt
        if quiet > self.config.learning_window_s:
            return Learning.DONE
        if quiet <= FAST_LEARNING_WINDOW_S and len(self.book) < FAST_LEARNING_MAX_ADDRESSES:
            return Learning.FAST
        return Learning.SLOW

    def _bookGrew(self, learned: bool) -> None:
        # (Called when the address manager took something in: an address
        # new to it, or one it knew put in a further bucket. Only the first
        # is learning; and a full table that forgets as it learns does not
        # grow. Nor is gossip learning: in a network with churn, relayed
        # newcomers make every table grow every few minutes, and taking
        # that for learning turned every feeler into a fetch of a
        # quarter of the table, the traffic growing with N. Nor is an
        # answer that adds less than LEARNING_MIN_GROWTH of the table: in
        # such a network most answers hold a straggler or two, newcomers
        # the relay has not brought yet, or nodes long gone; of a table of
        # FAST_LEARNING_MAX_ADDRESSES or more, LEARNING_MIN_GROWTH_LARGE.)
        size = len(self.book)
        if size > self._bookHigh:
            grown = size - self._bookHigh
            self._bookHigh = size
            share = (
                LEARNING_MIN_GROWTH
                if size < FAST_LEARNING_MAX_ADDRESSES
                else LEARNING_MIN_GROWTH_LARGE
            )
            if learned and grown >= share * size:
                self._grewAt = self._reactor.seconds()
        self.store.bookGrew()

    def _gossipPeerClosed(self, peer: Peer, reason: Exception) -> None:
        if peer.established_at is not None:
            self.gossip.peerGone(peer)

    def __repr__(self) -> str:
        return f"<Node {self.node_id[:8]} {self.listeningAddress}>"

    # -- service --------------------------------------------------------------

    def privilegedStartService(self) -> None:
        self.connman.listen()
        service.MultiService.privilegedStartService(self)

    def startService(self) -> None:
        # The data directory first: a restart refused it must not be left
        # listening, half-started.
        self.store.lock()
        self.connman.listen()
        service.Service.startService(self)
        now = self._started_at = self._reactor.seconds()
        loaded = self.store.load(
            now, self._bookKind, self._rng, self.identity is not None, self.config.outbound_slots
        )
        if loaded.book is not None:
            self.book = loaded.book
        self._grewAt, self._bookHigh = now, len(self.book)
        if loaded.bans is not None:
            self.bans = loaded.bans
        if loaded.pins is not None:
            self.pins = loaded.pins
        self.outbound.start(now, list(loaded.anchors))
        self.fetches.start(now)
        self.discovery.start()
        for timer in self:
            timer.startService()
        log.info(
            "Node {node_id} listening on {address}",
            node_id=self.node_id,
            address=self.listeningAddress,
        )

    def stopService(self) -> Deferred:
        service.Service.stopService(self)
        for timer in self:
            timer.stopService()
        self.discovery.stop()
        self.store.stop()
        self.store.saveAnchors(self.connman.outboundAnchors()[: self.config.outbound_slots])
        self.gossip.stop()
        closed = self.connman.closeAll(PeerLost("node shutting down"))
        self.save()
        self.store.close()
        closed.extend(self.connman.stopListening())
        # Once every connection is gone, the summaries still due are written.
        return defer.gatherResults(closed).addCallback(lambda _: self.repeated.stop())

    def crash(self) -> None:
        """
        Stop as a crashed process would (the lab's "kill"; a test's): every
        connection reset at once (C{abortConnection}), dials in progress
        cancelled, the listening ports closed, the timers stopped, and
        nothing saved: no tables, no anchors. The data directory's lock is
        released, as the process's death would. The node can be started
        again (it loads what the last orderly stop saved).
        """
        service.Service.stopService(self)
        for timer in self:
            timer.stopService()
        self.discovery.stop()
        self.store.stop()
        self.gossip.stop()
        for peer in self.connections():
            if peer.transport is not None:
                peer.transport.abortConnection()
        self.connman.closeAll(PeerLost("crashed"))  # and the dials in progress
        self.store.close()
        self.connman.stopListening()
        self.repeated.stop()

    def _maintain(self) -> None:
        """
        The connection manager's round: tried collisions, manual peers,
        address fetches, then (without C{--connect}) the outbound slots.
        """
        if not self.running:
            return
        now = self._reactor.seconds()
        self.book.resolve_collisions(now)
        self.manual.maintain(now)
        self.fetches.maintain(now)
        if not self.config.connect:
            self.outbound.fill(now)

    @property
    def reactor(self):
        """
        The reactor (and clock) this node runs on.
        """
        return self._reactor

    @property
    def listeningAddress(self):
        """
        The address this node listens on (the real port when 0 was asked).
        """
        return self.connman.listeningAddress

    @property
    def listeningPort(self) -> int:
        """
        The port announced in C{version}: 0 when not listening.
        """
        address = self.listeningAddress
        return address.port if address is not None else 0

    @property
    def ownAddresses(self) -> frozenset:
        """
        This node's own addresses: those it advertised to its peers (for a
        node listening on every interface, the local end of each
        connection) and those a dial found to be itself.
        """
        return frozenset(self.connman.ownAddresses)

    @property
    def counters(self) -> dict[str, int]:
        """
        Since start: connections closed before their handshake was done,
        protocol violations, and the connection manager's counts of dials
        by outcome, inbound connections accepted and refused (by reason),
        and evictions (what Prometheus reads).
        """
        connman = self.connman
        return {
            "handshake_failures": self.accounting.handshake_failures,
            "violations": self.misbehavior.total,
            "dials_connected": connman.dials_connected,
            "dials_failed": connman.dials_failed,
            "dials_cancelled": connman.dials_cancelled,
            "accepted": connman.accepted,
            "refused_banned": connman.refused_banned,
            "refused_group": connman.refused_group,
            "refused_full": connman.refused_full,
            "evictions": connman.evictions,
        }

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
        return self.connman.connect(target)

    def disconnect(self, node_id: str) -> Deferred[None]:
        """
        Close the connection to a peer.

        @param node_id: the peer's node id, or a prefix of it that only one
            connected peer has.
        @return: a Deferred that fires once the connection is closed.
        @raise LookupError: if no peer, or more than one, matches.
        """
        peer = self.findPeer(node_id)
        d = self.connman.whenClosed(peer)
        peer.close(PeerLost("disconnected by request"))
        return d

    def findPeer(self, prefix: str) -> Peer:
        """
        The established peer whose node id is C{prefix} or starts with it.

        @raise LookupError: if none or several match.
        """
        exact = self.connman.byId(prefix)
        if exact is not None:
            return exact
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
        return self.connman.peers()

    def connections(self) -> list[Peer]:
        """
        Every live connection, in the order they were made: established
        peers, short-lived ones (feelers, address fetches) and those still
        in their handshake.
        """
        return self.connman.connections()

    def dialCount(self) -> int:
        """
        Outgoing connections being made (dialed, not yet connected).
        """
        return self.connman.dialCount()

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
        return self._observers.add(connected, disconnected)

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
        return self.messages.register(message_type, handler, validator)

    def unregisterMessage(self, message_type: str) -> None:
        """
        Stop handling C{message_type}: such messages are ignored again.
        """
        self.messages.unregister(message_type)

    def handles(self, message_type: str) -> bool:
        """
        Whether C{message_type} is registered.
        """
        return self.messages.handles(message_type)

    def accept(self, peer: Peer, message: dict) -> bool:
        """
        Validate an application message from C{peer} and hand it to its
        handler (gossip calls this for each new message it receives).

        @return: C{False} if it was invalid (C{peer} is then closed for a
            violation) or its type is not registered.
        """
        return self.messages.accept(peer, message)

    def send(self, to: Peer | str, message: dict) -> None:
        """
        Send an application message to one established peer.

        @param to: the L{Peer}, or its node id.
        @raise LookupError: if no established peer has that node id.
        @raise ValueError: if the message is not a JSON object with an
            application C{type}, or encodes to more than the
            C{max_message_bytes} peers accept.
        """
        peer = to if isinstance(to, Peer) else self.connman.byId(to)
        if peer is None or not peer.established:
            raise LookupError(f"no established peer {to!r}")
        peer.send(message, self.messages.outgoing(message))

    def sendAll(self, message: dict, exclude: Peer | None = None) -> int:
        """
        Send an application message to every established peer but
        C{exclude} (neighbours only: see L{broadcast} for the whole network).

        @return: how many peers it was sent to.
        @raise ValueError: as L{send}.
        """
        frames = self.messages.outgoing(message)  # encoded once, whatever the number of peers
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
        if not self.wireFormat.gossip:
            raise ValueError(
                f"broadcast is bitp2p's own gossip, which a {self.config.network} network does not carry"
            )
        if GOSSIP_FIELD in message:
            raise ValueError(f"the {GOSSIP_FIELD!r} field is gossip's own")
        self.messages.outgoing({**message, GOSSIP_FIELD: {"hops": MAX_HOPS}})
        return self.gossip.publish(message, hops)

    def trafficTotals(self) -> dict[tuple[str, str], list[int]]:
        """
        Messages and bytes since start, peers gone included: C{{(direction,
        type): [messages, bytes]}}, direction C{"in"} or C{"out"}.
        """
        return self.accounting.totals(self.connman.connections())

    def pingAll(self) -> None:
        """
        Ping every established peer (the ping timer's work).
        """
        for peer in self.peers():
            peer.ping()

    def advertiseAll(self) -> None:
        """
        Tell every established peer our address (the advertise timer's work).
        """
        self.discovery.advertiseAll()

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
        log.info(
            "Banned {subnet} for {duration}",
            subnet=subnet,
            duration=_duration(duration_s),
            seconds=duration_s,
        )
        for peer in self.connman.connections():
            if self.bans.is_banned(getattr(peer.remote_address, "host", "") or "", now):
                peer.close(PeerLost(f"banned ({subnet})"))
        self.store.saveBans()
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
            self.store.saveBans()
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
        self.store.saveBans()
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
        added = self.manual.add(target)
        if added and self.running:
            self.manual.maintain(self._reactor.seconds())
        return added

    def removeManual(self, target: str) -> bool:
        """
        Stop keeping a peer connected (C{addnode ... remove}). As in Bitcoin
        Core, a live connection to it stays open; it is just not redialed
        once lost.

        @param target: as for L{addManual}.
        @return: C{False} if that peer was not added.
        @raise ValueError: if C{target} is not a valid target.
        """
        return self.manual.remove(target)

    def manualPeers(self) -> list[tuple[str, Peer | None]]:
        """
        The peers kept connected (C{--connect}, C{--addnode}, L{addManual}),
        in the order they were added: each target as text, and its
        established connection (one made for it, or any other connection to
        its address), or L{None}.
        """
        return self.manual.peers()

    def uptime(self) -> float:
        """
        Seconds since the node started; 0.0 when it is not running.
        """
        return self._reactor.seconds() - self._started_at if self.running else 0.0

    def status(self) -> dict:
        """
        A snapshot of the node, fit for JSON: its id and address, every
        established peer, the connections in progress, the known addresses,
        the bans (L{bitp2p.views.nodeStatus}).
        """
        return nodeStatus(self)

    def save(self) -> None:
        """
        Write the address manager and the bans to the data directory, if
        there is one.
        """
        self.store.save()
