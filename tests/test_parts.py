"""
The node's parts, each on its own: built directly, with recording stubs for
its collaborators (every call they receive is logged as an event, as
magic-wormhole's tests do), a L{Clock} or C{MemoryReactorClock} for time and
L{StringTransport} where a transport is needed. No L{Node} here: the
behaviour through a whole node is in C{test_node.py}, C{test_connman.py},
C{test_discovery.py}, ...

Addresses are public (20.x, 30.x, ...) unless a test is about loopback.
"""

from __future__ import annotations

import json
import os
import random

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from bitp2p import accounting as accountingModule
from bitp2p import codec
from bitp2p.accounting import Accounting
from bitp2p.addrbook import AddressBook
from bitp2p.address import Address, LocalNetworks, network_group
from bitp2p.arrivals import Arrivals
from bitp2p.backoff import manual_retry_delay, retry_delay
from bitp2p.banman import BanMan
from bitp2p.bookkeeping import AddressBookkeeping
from bitp2p.config import NodeConfig
from bitp2p.connman import SHORT_LIVED, ConnectionManager
from bitp2p.constants import (
    ADDR_FETCH_TIMEOUT_S,
    ADDR_FUTURE_SLACK_S,
    ADDR_UNKNOWN_AGE_S,
    ANCHORS_FILE,
    DISCOURAGE_S,
    PEERS_FILE,
    RECENT_TRY_TRIES,
    NOVEL_FLOOD_BURST,
    NOVEL_FLOOD_RATE_PER_S,
    RELAY_FANOUT,
)
from bitp2p.discovery import AddressRelay
from bitp2p.endpoints import Target
from bitp2p.errors import (
    ConnectFailed,
    DuplicateConnection,
    HandshakeFailed,
    LimitReached,
    PeerLost,
    ProtocolViolation,
    SelfConnection,
)
from bitp2p.events import Observers, PeerEvents
from bitp2p.handshake import Handshake
from bitp2p.manual import AddressFetches, ManualTargets
from bitp2p.messages import MessageRegistry
from bitp2p.misbehavior import Misbehavior
from bitp2p.outbound import OutboundFiller
from bitp2p.peer import OTHER_TYPE, ConnectionType, Direction
from bitp2p.shortlived import ShortLived
from bitp2p.storage import encode_document
from bitp2p.store import PEERS_FORMAT, BookKind, NodeStore
from bitp2p.timers import Deadlines, Every
from bitp2p.tls import PinStore
from bitp2p.wire import JSONLines

from .helpers import tempDir


def addr(text: str) -> Address:
    host, port = text.rsplit(":", 1)
    return Address.of(host, int(port))


def tcp(host: str, port: int) -> IPv4Address:
    return IPv4Address("TCP", host, port)


class FakePeer:
    """
    Just enough of a L{bitp2p.peer.Peer} for the parts: its facts are plain
    attributes, and what is done to it (C{send}, C{close}, C{violation}) is
    recorded.
    """

    def __init__(
        self,
        kind: ConnectionType = ConnectionType.OUTBOUND,
        dialed: Address | None = None,
        established: bool = True,
        node_id: str | None = "peer",
        remote: IPv4Address | None = None,
        local: IPv4Address | None = None,
        listen_port: int = 0,
        direction: Direction | None = None,
    ) -> None:
        self.kind = kind
        self.dialed = dialed
        self.established_at = 1.0 if established else None
        self.node_id = node_id
        self.remote_address = remote
        self.local_address = local
        self.listen_port = listen_port
        if direction is None:
            direction = Direction.INBOUND if kind is ConnectionType.INBOUND else Direction.OUTBOUND
        self.direction = direction
        self.connected_at = 0.0
        self.close_reason: Exception | None = None
        self.user_agent = "/fake/"
        self.messages_in = 0
        self.transport = None
        self.traffic: dict[str, list[int]] = {}
        self.sent: list[dict] = []
        self.closed: list[Exception] = []
        self.dropped = False
        self.violations: list[Exception] = []

    @property
    def established(self) -> bool:
        return self.established_at is not None and self.close_reason is None

    @property
    def address(self) -> Address | None:
        if self.dialed is not None:
            return self.dialed
        if self.listen_port and self.remote_address is not None:
            return Address.of(self.remote_address.host, self.listen_port)
        return None

    @property
    def remote(self) -> str:
        r = self.remote_address
        return f"{r.host}:{r.port}" if r is not None else "-"

    def whenEstablished(self):
        return defer.succeed(self)

    def send(self, message: dict, frames: dict | None = None) -> None:
        self.sent.append(message)

    def close(self, reason: Exception) -> None:
        self.closed.append(reason)
        if self.close_reason is None:
            self.close_reason = reason

    def drop(self, reason: Exception) -> None:
        self.dropped = True
        self.close(reason)

    def violation(self, violation: Exception) -> None:
        self.violations.append(violation)

    def __repr__(self) -> str:
        return f"<FakePeer {self.node_id} {self.kind.value}>"


class RecordingBans:
    """
    A L{BanMan} stand-in: C{banned} and C{discouraged} hosts are given; what
    it is asked to C{discourage} is recorded.
    """

    def __init__(self, banned=(), discouraged=()) -> None:
        self.banned = set(banned)
        self.discouraged = set(discouraged)
        self.events: list[tuple] = []

    def is_banned(self, host: str, now: float) -> bool:
        return host in self.banned

    def is_discouraged(self, host: str, now: float) -> bool:
        return host in self.discouraged

    def discourage(self, host: str, until: float) -> None:
        self.events.append(("discourage", host, until))
        self.discouraged.add(host)


@attrs.define
class Info:
    """
    An address manager's entry, as L{bitp2p.interfaces.AddressInfo}.
    """

    address: Address
    failures: int = 0
    last_tried: float = 0.0
    last_seen: float = 0.0
    source: Address | None = None


class RecordingBook:
    """
    An address manager that records each call as an event; iterating gives
    C{entries}, C{add} returns C{news}.
    """

    def __init__(self, entries=(), news: int = 1) -> None:
        self.entries = list(entries)
        self.news = news
        self.events: list[tuple] = []

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, address) -> bool:
        return any(entry.address == address for entry in self.entries)

    def add(self, entries, source, now, penalty_s=0.0):
        self.events.append(("add", list(entries), source, now))
        return self.news

    def good(self, address, now):
        self.events.append(("good", address, now))

    def connected(self, address, now):
        self.events.append(("connected", address, now))

    def failed(self, address, now):
        self.events.append(("failed", address, now))

    def attempt(self, address, now, count_failure=True):
        self.events.append(("attempt", address, now, count_failure))

    def remove(self, address):
        self.events.append(("remove", address))

    def regroup(self, group_of):
        self.events.append(("regroup", group_of))


class FakeConnections:
    """
    A connection manager stand-in: C{dial} records the call and returns a
    Deferred the test fires; the registry is given as plain lists.
    """

    def __init__(self) -> None:
        self.dials: list[tuple[Target, ConnectionType, defer.Deferred]] = []
        self.live: list = []
        self.established: list = []
        self.own: set[Address] = set()
        self.dialing: dict[Address, ConnectionType] = {}
        self.busy: set[Address] = set()
        self.groups: set[str] = set()
        self.counts: dict[ConnectionType, int] = {}
        self.listeningAddress: Address | None = Address.of("127.0.0.1", 5000)
        self.admitted: list = []
        self.refusal: Exception | None = None

    def dial(self, target: Target, kind: ConnectionType) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.dials.append((target, kind, d))
        return d

    def dialed(self) -> list[tuple[str, ConnectionType]]:
        return [(str(target), kind) for target, kind, _ in self.dials]

    def connections(self) -> list:
        return list(self.live)

    def peers(self) -> list:
        return list(self.established)

    def isDialing(self, address: Address) -> bool:
        return address in self.dialing

    def dialingKinds(self):
        return list(self.dialing.items())

    def isOwn(self, address: Address) -> bool:
        return address in self.own

    @property
    def ownAddresses(self) -> set[Address]:
        return self.own

    def addOwn(self, address: Address) -> None:
        self.own.add(address)

    def count(self, kind: ConnectionType) -> int:
        return self.counts.get(kind, 0)

    def busyAddresses(self) -> set[Address]:
        return set(self.busy)

    def outboundGroups(self) -> set[str]:
        return set(self.groups)

    def diversityKey(self, address: Address) -> str:
        return network_group(address)

    def admitId(self, peer) -> Exception | None:
        self.admitted.append(peer)
        return self.refusal


# -- PeerEvents and Observers ------------------------------------------------


class PeerEventsTests(SynchronousTestCase):
    def test_establishedSubscribersCalledInSubscriptionOrder(self):
        """
        Each established subscriber is called with the peer, in the order
        they subscribed.
        """
        events, calls, peer = PeerEvents(), [], FakePeer()
        for name in ("a", "b", "c"):
            events.subscribe(established=lambda p, name=name: calls.append((name, p)))
        events.established(peer)
        self.assertEqual(calls, [("a", peer), ("b", peer), ("c", peer)])

    def test_closedSubscribersCalledInSubscriptionOrderWithTheReason(self):
        """
        Each closed subscriber is called with the peer and the reason, in the
        order they subscribed.
        """
        events, calls, peer, reason = PeerEvents(), [], FakePeer(), PeerLost("gone")
        for name in ("a", "b"):
            events.subscribe(closed=lambda p, r, name=name: calls.append((name, p, r)))
        events.closed(peer, reason)
        self.assertEqual(calls, [("a", peer, reason), ("b", peer, reason)])

    def test_aSubscriberHearsOnlyTheEventsItSubscribedTo(self):
        """
        Subscribing to established only is not being told of closes, and
        the other way round.
        """
        events, calls = PeerEvents(), []
        events.subscribe(established=lambda p: calls.append("established"))
        events.subscribe(closed=lambda p, r: calls.append("closed"))
        events.closed(FakePeer(), PeerLost("x"))
        self.assertEqual(calls, ["closed"])
        events.established(FakePeer())
        self.assertEqual(calls, ["closed", "established"])

    def test_anInternalSubscribersExceptionPropagates(self):
        """
        An internal subscriber that raises is a bug: its exception reaches
        the publisher, and later subscribers are not called.
        """
        events, calls = PeerEvents(), []
        events.subscribe(established=lambda p: 1 / 0)
        events.subscribe(established=lambda p: calls.append(p))
        self.assertRaises(ZeroDivisionError, events.established, FakePeer())
        self.assertEqual(calls, [])


class ObserversTests(SynchronousTestCase):
    def test_observersToldOfEstablishedAndClosedInOrderAdded(self):
        """
        Each observer hears of an established peer and of its close, in the
        order the observers were added.
        """
        observers, calls = Observers(SHORT_LIVED), []
        for name in ("a", "b"):
            observers.add(
                lambda p, name=name: calls.append((name, "up", p)),
                lambda p, r, name=name: calls.append((name, "down", p, r)),
            )
        peer, reason = FakePeer(), PeerLost("bye")
        observers.peerEstablished(peer)
        observers.peerClosed(peer, reason)
        self.assertEqual(
            calls,
            [
                ("a", "up", peer),
                ("b", "up", peer),
                ("a", "down", peer, reason),
                ("b", "down", peer, reason),
            ],
        )

    def test_aRaisingObserverIsLoggedAndTheOthersStillCalled(self):
        """
        An observer that raises is logged (with its traceback) and the
        observers after it are still called, for both events.
        """
        observers, calls = Observers(SHORT_LIVED), []
        observers.add(lambda p: 1 / 0, lambda p, r: 1 / 0)
        observers.add(lambda p: calls.append("up"), lambda p, r: calls.append("down"))
        peer = FakePeer()
        observers.peerEstablished(peer)
        observers.peerClosed(peer, PeerLost("bye"))
        self.assertEqual(calls, ["up", "down"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_shortLivedConnectionsAreNotTold(self):
        """
        Feeler and address-fetch connections are not peers in the usual
        sense: observers hear of neither their establishment nor their end.
        """
        observers, calls = Observers(SHORT_LIVED), []
        observers.add(lambda p: calls.append("up"), lambda p, r: calls.append("down"))
        for kind in (ConnectionType.FEELER, ConnectionType.ADDR_FETCH):
            peer = FakePeer(kind=kind)
            observers.peerEstablished(peer)
            observers.peerClosed(peer, PeerLost("done"))
        self.assertEqual(calls, [])
        observers.peerEstablished(FakePeer(kind=ConnectionType.MANUAL))
        self.assertEqual(calls, ["up"])

    def test_theCloseOfAPeerNeverEstablishedIsNotTold(self):
        """
        A connection that ends before its handshake was never a peer to the
        observers: its end is not told either.
        """
        observers, calls = Observers(SHORT_LIVED), []
        observers.add(None, lambda p, r: calls.append("down"))
        observers.peerClosed(FakePeer(established=False), HandshakeFailed("no"))
        self.assertEqual(calls, [])

    def test_theRemoveFunctionRemovesTheObserver(self):
        """
        The function C{add} returns removes that observer (only), and may be
        called again harmlessly.
        """
        observers, calls = Observers(SHORT_LIVED), []
        remove = observers.add(lambda p: calls.append("first"), None)
        observers.add(lambda p: calls.append("second"), None)
        remove()
        remove()
        observers.peerEstablished(FakePeer())
        self.assertEqual(calls, ["second"])


# -- Misbehavior ---------------------------------------------------------------


class MisbehaviorTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.bans = RecordingBans()
        self.misbehavior = Misbehavior(self.clock, lambda: self.bans, threshold=3)

    def violate(self, host: str | None, times: int = 1) -> None:
        peer = FakePeer(remote=tcp(host, 40000) if host else None)
        for _ in range(times):
            self.misbehavior.violationFrom(peer, ProtocolViolation("bad"))

    def test_violationsAreCountedPerHost(self):
        """
        Each host has its own count.
        """
        self.violate("20.0.0.1", 2)
        self.violate("20.0.0.2")
        self.assertEqual(self.misbehavior.violations("20.0.0.1"), 2)
        self.assertEqual(self.misbehavior.violations("20.0.0.2"), 1)
        self.assertEqual(self.misbehavior.violations("20.0.0.3"), 0)
        self.assertEqual(self.bans.events, [])

    def test_theThresholdDiscouragesTheHostAndResetsItsCount(self):
        """
        At the threshold the host is discouraged for C{DISCOURAGE_S} through
        the bans, and its count starts again from zero.
        """
        self.violate("20.0.0.1", 2)
        self.assertEqual(self.bans.events, [])
        self.violate("20.0.0.1")
        self.assertEqual(self.bans.events, [("discourage", "20.0.0.1", 1000 + DISCOURAGE_S)])
        self.assertEqual(self.misbehavior.violations("20.0.0.1"), 0)
        self.violate("20.0.0.1")
        self.assertEqual(self.misbehavior.violations("20.0.0.1"), 1)

    def test_theTotalCountsEveryViolation(self):
        """
        The total counts every violation, those that led to discouragement
        included.
        """
        self.violate("20.0.0.1", 4)
        self.violate("20.0.0.2")
        self.assertEqual(self.misbehavior.total, 5)

    def test_aPeerWithoutHostCountsInTheTotalOnly(self):
        """
        A peer without a host (a UNIX socket, say) is counted in the total,
        and no host is discouraged however often it misbehaves.
        """
        self.violate(None, 5)
        self.assertEqual(self.misbehavior.total, 5)
        self.assertEqual(self.misbehavior.violations(""), 0)
        self.assertEqual(self.bans.events, [])


# -- Accounting ----------------------------------------------------------------


def trafficPeer(recv: dict, send: dict, established: bool = True) -> FakePeer:
    peer = FakePeer(established=established)
    for kind in dict.fromkeys([*recv, *send]):  # in order
        peer.traffic[kind] = [*recv.get(kind, [0, 0]), *send.get(kind, [0, 0])]
    return peer


class AccountingTests(SynchronousTestCase):
    def test_aClosingPeersCountersAreMerged(self):
        """
        The per-type counters of each peer gone are added up by direction
        and type.
        """
        accounting = Accounting()
        accounting.peerClosed(trafficPeer({"ping": [1, 10]}, {"pong": [1, 12]}), PeerLost("x"))
        accounting.peerClosed(
            trafficPeer({"ping": [2, 20], "addr": [1, 100]}, {}), PeerLost("x")
        )
        self.assertEqual(
            accounting.totals([]),
            {("in", "ping"): [3, 30], ("in", "addr"): [1, 100], ("out", "pong"): [1, 12]},
        )

    def test_handshakeFailuresCountOnlyPeersNeverEstablished(self):
        """
        Only a connection that closed before its handshake was done is a
        handshake failure.
        """
        accounting = Accounting()
        accounting.peerClosed(trafficPeer({}, {}, established=True), PeerLost("x"))
        self.assertEqual(accounting.handshake_failures, 0)
        accounting.peerClosed(trafficPeer({}, {}, established=False), HandshakeFailed("x"))
        accounting.peerClosed(trafficPeer({}, {}, established=False), HandshakeFailed("x"))
        self.assertEqual(accounting.handshake_failures, 2)

    def test_totalsAddTheLivePeersWithoutKeepingThem(self):
        """
        C{totals} adds the live peers' counters to those of the peers gone,
        without merging them for good.
        """
        accounting = Accounting()
        accounting.peerClosed(trafficPeer({"ping": [1, 10]}, {}), PeerLost("x"))
        live = trafficPeer({"ping": [5, 50]}, {"ping": [2, 20]})
        expected = {("in", "ping"): [6, 60], ("out", "ping"): [2, 20]}
        self.assertEqual(accounting.totals([live]), expected)
        self.assertEqual(accounting.totals([live]), expected)
        self.assertEqual(accounting.totals([]), {("in", "ping"): [1, 10]})

    def test_theTotalsKeepAtMostMaxTrafficKeysTypes(self):
        """
        Past C{MAX_TRAFFIC_KEYS} types, new types are counted under
        C{OTHER_TYPE}; types already kept go on being counted on their own.
        """
        self.patch(accountingModule, "MAX_TRAFFIC_KEYS", 3)
        accounting = Accounting()
        accounting.peerClosed(
            trafficPeer({"a": [1, 1], "b": [1, 2], "c": [1, 4], "d": [1, 8]}, {}), PeerLost("x")
        )
        accounting.peerClosed(trafficPeer({"a": [1, 16], "e": [1, 32]}, {}), PeerLost("x"))
        totals = accounting.totals([])
        self.assertEqual(
            totals,
            {("in", "a"): [2, 17], ("in", "b"): [1, 2], ("in", OTHER_TYPE): [3, 44]},
        )


# -- ShortLived ----------------------------------------------------------------


class ShortLivedTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.live: set = set()
        self.shortLived = ShortLived(self.clock, self.live)

    def peer(self, kind: ConnectionType) -> FakePeer:
        peer = FakePeer(kind=kind)
        self.live.add(peer)
        return peer

    def test_aFeelerIsClosedAtItsHandshake(self):
        """
        Protocol 1.1: a feeler's job is its handshake; it is closed as soon
        as it is established, and no timer is left.
        """
        feeler = self.peer(ConnectionType.FEELER)
        self.shortLived.peerEstablished(feeler)
        self.assertEqual(len(feeler.closed), 1)
        self.assertIsInstance(feeler.closed[0], PeerLost)
        self.assertIn("done", str(feeler.closed[0]))
        self.assertEqual(self.shortLived.pending(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_anAddressFetchWaitsAddrFetchTimeout(self):
        """
        An address-fetch connection waits C{ADDR_FETCH_TIMEOUT_S}, not the
        feeler's timeout.
        """
        fetch = self.peer(ConnectionType.ADDR_FETCH)
        self.shortLived.peerEstablished(fetch)
        self.clock.advance(ADDR_FETCH_TIMEOUT_S - 0.5)
        self.assertEqual(fetch.closed, [])
        self.clock.advance(0.5)
        self.assertEqual(len(fetch.closed), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_anAnswerClosesAtOnceAndCancelsTheTimer(self):
        """
        Once the answer to its C{getaddr} arrived, the connection is closed
        at once and its timer cancelled.
        """
        fetch = self.peer(ConnectionType.ADDR_FETCH)
        self.shortLived.peerEstablished(fetch)
        self.shortLived.answerReceived(fetch)
        self.assertEqual(len(fetch.closed), 1)
        self.assertIn("done", str(fetch.closed[0]))
        self.assertEqual(self.shortLived.pending(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_ordinaryPeersAreIgnored(self):
        """
        Outbound, inbound and manual peers get no timer, and an answer does
        not close them.
        """
        for kind in (ConnectionType.OUTBOUND, ConnectionType.INBOUND, ConnectionType.MANUAL):
            peer = self.peer(kind)
            self.shortLived.peerEstablished(peer)
            self.shortLived.answerReceived(peer)
            self.assertEqual(peer.closed, [])
        self.assertEqual(self.shortLived.pending(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_aClosedConnectionLosesItsTimerAndIsNotClosedAgain(self):
        """
        When a short-lived connection ends by itself, its timer is cancelled
        and, no longer live, it is not closed again.
        """
        fetch = self.peer(ConnectionType.ADDR_FETCH)
        self.shortLived.peerEstablished(fetch)
        self.live.discard(fetch)
        self.shortLived.peerClosed(fetch, PeerLost("gone"))
        self.assertEqual(fetch.closed, [])
        self.assertEqual(self.shortLived.pending(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


# -- AddressBookkeeping ----------------------------------------------------------


class AddressBookkeepingTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(500)
        self.book = RecordingBook()
        self.running = True
        self.groupOf = lambda address: "g"
        self.bookkeeping = AddressBookkeeping(
            self.clock, lambda: self.book, self.groupOf, lambda: self.running
        )
        self.there = addr("20.0.0.1:5000")

    def test_establishedWithADialedAddressIsAddedAndGood(self):
        """
        A handshake completed with an address we dialed adds it (known or
        not) and makes it good.
        """
        self.bookkeeping.peerEstablished(FakePeer(dialed=self.there))
        self.assertEqual(
            self.book.events,
            [("add", [(self.there, 500)], self.there, 500), ("good", self.there, 500)],
        )

    def test_anInboundPeerTeachesNothing(self):
        """
        A connection we did not dial says nothing about an address, at its
        establishment or its end.
        """
        peer = FakePeer(kind=ConnectionType.INBOUND, listen_port=5000, remote=tcp("20.0.0.1", 4))
        self.bookkeeping.peerEstablished(peer)
        self.bookkeeping.peerClosed(peer, PeerLost("x"))
        self.assertEqual(self.book.events, [])

    def test_aCloseAfterTheHandshakeIsConnected(self):
        """
        The end of an established connection we dialed records its
        last-seen time (C{connected}).
        """
        self.bookkeeping.peerClosed(FakePeer(dialed=self.there), PeerLost("x"))
        self.assertEqual(self.book.events, [("connected", self.there, 500)])

    def test_aCloseBeforeTheHandshakeIsFailedButNotForSelfOrDuplicate(self):
        """
        A dialed connection that ended before its handshake is a failure of
        the address, unless it reached this node itself or a node already
        connected.
        """
        peer = FakePeer(dialed=self.there, established=False)
        self.bookkeeping.peerClosed(peer, SelfConnection("me"))
        self.bookkeeping.peerClosed(peer, DuplicateConnection("again"))
        self.assertEqual(self.book.events, [])
        self.bookkeeping.peerClosed(peer, HandshakeFailed("timeout"))
        self.assertEqual(self.book.events, [("failed", self.there, 500)])

    def test_nothingIsWrittenWhenNotRunning(self):
        """
        Closes while the node does not run (its stop) are not written.
        """
        self.running = False
        self.bookkeeping.peerClosed(FakePeer(dialed=self.there), PeerLost("stop"))
        unfinished = FakePeer(dialed=self.there, established=False)
        self.bookkeeping.peerClosed(unfinished, PeerLost("stop"))
        self.assertEqual(self.book.events, [])

    def test_dialsAndSelfAddressesAreWrittenThrough(self):
        """
        A dial started is an attempt, a dial failed a failure, and an
        address found to be ours is removed.
        """
        self.bookkeeping.dialStarted(self.there, 7.0, False)
        self.bookkeeping.dialFailed(self.there, 8.0)
        self.bookkeeping.selfAddress(self.there)
        self.assertEqual(
            self.book.events,
            [
                ("attempt", self.there, 7.0, False),
                ("failed", self.there, 8.0),
                ("remove", self.there),
            ],
        )

    def test_aLocalGroupRegroupsOnlyWhenAnEntryIsInIt(self):
        """
        A network group becoming local regroups the book only when one of
        its addresses, or of their sources, is in that group.
        """
        self.book.entries = [Info(addr("20.0.0.1:5000"), source=addr("30.1.0.1:5000"))]
        self.bookkeeping.localGroup("40.0.0.0/16")
        self.assertEqual(self.book.events, [])
        self.bookkeeping.localGroup("30.1.0.0/16")
        self.assertEqual(self.book.events, [("regroup", self.groupOf)])
        self.bookkeeping.localGroup("20.0.0.0/16")
        self.assertEqual(len(self.book.events), 2)


# -- ManualTargets and AddressFetches -----------------------------------------------


class ManualTargetsTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(100)
        self.connections = FakeConnections()

    def manual(self, *targets: str) -> ManualTargets:
        return ManualTargets(self.clock, self.connections, targets)

    def test_maintainDialsEachTargetOnce(self):
        """
        Each target is dialed (as a manual connection), and not again while
        that dial is in progress.
        """
        manual = self.manual("20.0.0.1:5000", "30.0.0.1:5000")
        manual.maintain(self.clock.seconds())
        manual.maintain(self.clock.seconds())
        self.assertEqual(
            self.connections.dialed(),
            [("20.0.0.1:5000", ConnectionType.MANUAL), ("30.0.0.1:5000", ConnectionType.MANUAL)],
        )

    def test_aFailedDialIsRetriedAfterTheTargetsBackoff(self):
        """
        A failed dial schedules the next try by the manual backoff: not
        before it is due, then once.
        """
        manual = self.manual("20.0.0.1:5000")
        manual.maintain(100)
        self.connections.dials[0][2].errback(ConnectFailed("refused"))
        delay = manual_retry_delay(1)
        self.clock.advance(delay - 0.5)
        manual.maintain(self.clock.seconds())
        self.assertEqual(len(self.connections.dials), 1)
        self.clock.advance(0.5)
        manual.maintain(self.clock.seconds())
        self.assertEqual(len(self.connections.dials), 2)
        # A second failure doubles the wait.
        self.connections.dials[1][2].errback(ConnectFailed("refused"))
        self.clock.advance(manual_retry_delay(2) - 0.5)
        manual.maintain(self.clock.seconds())
        self.assertEqual(len(self.connections.dials), 2)
        self.assertGreater(manual_retry_delay(2), delay)

    def test_aDialedPeerIsKeptAndNotDialedAgain(self):
        """
        The peer a dial gave is the target's connection: C{peers} reports it
        and C{maintain} leaves it be.
        """
        manual = self.manual("20.0.0.1:5000")
        manual.maintain(100)
        peer = FakePeer(kind=ConnectionType.MANUAL, dialed=addr("20.0.0.1:5000"))
        self.connections.dials[0][2].callback(peer)
        self.assertEqual(manual.peers(), [("20.0.0.1:5000", peer)])
        manual.maintain(1000)
        self.assertEqual(len(self.connections.dials), 1)

    def test_anEstablishedPeerIsMatchedByAddress(self):
        """
        A connection to a target's address made otherwise (inbound, or
        before the target was added) counts as the target's.
        """
        manual = self.manual("20.0.0.1:5000", "30.0.0.1:5000")
        peer = FakePeer(
            kind=ConnectionType.INBOUND, remote=tcp("20.0.0.1", 40000), listen_port=5000
        )
        manual.peerEstablished(peer)
        self.assertEqual(manual.peers(), [("20.0.0.1:5000", peer), ("30.0.0.1:5000", None)])
        manual.maintain(100)
        self.assertEqual(self.connections.dialed(), [("30.0.0.1:5000", ConnectionType.MANUAL)])

    def test_aConnectedOrBusyAddressIsNotDialed(self):
        """
        A target whose address has an established connection, or a dial in
        progress, in the connection manager is not dialed.
        """
        manual = self.manual("20.0.0.1:5000", "30.0.0.1:5000")
        self.connections.live = [FakePeer(dialed=addr("20.0.0.1:5000"))]
        self.connections.dialing[addr("30.0.0.1:5000")] = ConnectionType.OUTBOUND
        manual.maintain(100)
        self.assertEqual(self.connections.dials, [])

    def test_aCloseSchedulesARedial(self):
        """
        When the target's connection ends, it is redialed after the first
        step of its backoff.
        """
        manual = self.manual("20.0.0.1:5000")
        peer = FakePeer(kind=ConnectionType.MANUAL, dialed=addr("20.0.0.1:5000"))
        manual.peerEstablished(peer)
        manual.peerClosed(peer, PeerLost("gone"))
        self.assertEqual(manual.peers(), [("20.0.0.1:5000", None)])
        manual.maintain(100 + manual_retry_delay(1) - 0.5)
        self.assertEqual(self.connections.dials, [])
        manual.maintain(100 + manual_retry_delay(1))
        self.assertEqual(self.connections.dialed(), [("20.0.0.1:5000", ConnectionType.MANUAL)])

    def test_addRemoveAndPeers(self):
        """
        C{add} refuses a target already kept in any spelling, C{remove}
        says whether it was kept, and C{peers} lists the targets in the
        order added.
        """
        manual = self.manual("20.0.0.1:5000")
        self.assertTrue(manual.add("30.0.0.1:5000"))
        self.assertFalse(manual.add("tcp:20.0.0.1:5000"))
        self.assertEqual(len(manual), 2)
        self.assertEqual([t for t, _ in manual.peers()], ["20.0.0.1:5000", "30.0.0.1:5000"])
        self.assertTrue(manual.remove("tcp:20.0.0.1:5000"))
        self.assertFalse(manual.remove("20.0.0.1:5000"))
        self.assertEqual(manual.peers(), [("30.0.0.1:5000", None)])
        self.assertRaises(ValueError, manual.add, "not a target")


class AddressFetchesTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(100)
        self.connections = FakeConnections()
        self.bookSize = 0

    def fetches(self, *seednodes: str) -> AddressFetches:
        fetches = AddressFetches(self.clock, self.connections, seednodes, lambda: self.bookSize)
        fetches.start(self.clock.seconds())
        return fetches

    def test_oneFetchAtATime(self):
        """
        A second seednode is not dialed until the fetch under way ends.
        """
        fetches = self.fetches("20.0.0.1:5000", "30.0.0.1:5000")
        fetches.maintain(100)
        fetches.maintain(100)
        self.assertEqual(self.connections.dialed(), [("20.0.0.1:5000", ConnectionType.ADDR_FETCH)])
        ours = FakePeer(kind=ConnectionType.ADDR_FETCH)
        self.connections.dials[0][2].callback(ours)
        # Neither an ordinary connection's close nor another address
        # fetch's (the outbound filler's, while it learns) ends the fetch.
        fetches.peerClosed(FakePeer(kind=ConnectionType.OUTBOUND), PeerLost("x"))
        fetches.peerClosed(FakePeer(kind=ConnectionType.ADDR_FETCH), PeerLost("x"))
        fetches.maintain(100)
        self.assertEqual(len(self.connections.dials), 1)
        fetches.peerClosed(ours, PeerLost("done"))
        fetches.maintain(100)
        self.assertEqual(
            self.connections.dialed()[1:], [("30.0.0.1:5000", ConnectionType.ADDR_FETCH)]
        )

    def test_aFailedFetchIsRetriedWithBackoffWhileTheBookIsEmpty(self):
        """
        With no address known, a failed fetch is tried again after
        C{retry_delay}.
        """
        fetches = self.fetches("20.0.0.1:5000")
        fetches.maintain(100)
        self.connections.dials[0][2].errback(ConnectFailed("refused"))
        fetches.maintain(100 + retry_delay(1) - 0.5)
        self.assertEqual(len(self.connections.dials), 1)
        fetches.maintain(100 + retry_delay(1))
        self.assertEqual(len(self.connections.dials), 2)

    def test_aFailedFetchIsDroppedOnceAddressesAreKnown(self):
        """
        A fetch that fails when the book already holds addresses is not
        tried again.
        """
        fetches = self.fetches("20.0.0.1:5000")
        fetches.maintain(100)
        self.bookSize = 3
        self.connections.dials[0][2].errback(ConnectFailed("refused"))
        fetches.maintain(100_000)
        self.assertEqual(len(self.connections.dials), 1)

    def test_ownAddressesAreSkipped(self):
        """
        A seednode that is this node's own address is dropped, not dialed.
        """
        self.connections.own.add(addr("20.0.0.1:5000"))
        fetches = self.fetches("20.0.0.1:5000", "30.0.0.1:5000")
        fetches.maintain(100)
        self.assertEqual(self.connections.dials, [])
        fetches.maintain(100)
        self.assertEqual(self.connections.dialed(), [("30.0.0.1:5000", ConnectionType.ADDR_FETCH)])
        fetches.maintain(100_000)
        self.assertEqual(len(self.connections.dials), 1)


# -- OutboundFiller --------------------------------------------------------------


class Selector:
    """
    A stand-in for the address manager's C{select}: hands out C{infos} in
    turn, then L{None}; records each call.
    """

    def __init__(self, infos=()) -> None:
        self.infos = list(infos)
        self.calls: list[tuple[float, bool]] = []

    def __call__(self, now: float, new_only: bool):
        self.calls.append((now, new_only))
        return self.infos.pop(0) if self.infos else None


class OutboundFillerTests(SynchronousTestCase):
    NOW = 10_000.0

    def setUp(self):
        self.connections = FakeConnections()
        self.bans = RecordingBans()
        self.select = Selector()
        self.collision = None

    def filler(self, slots: int = 3, anchors=()) -> OutboundFiller:
        filler = OutboundFiller(
            NodeConfig(max_outbound=slots, feeler_interval_s=1.0, seeds=()),
            Clock(),
            random.Random(3),
            self.connections,
            bans=lambda: self.bans,
            select=self.select,
            selectCollision=lambda now: self.collision,
            spreadKey=b"s" * 32,
        )
        filler.start(0.0, list(anchors))
        return filler

    def dialed(self) -> list[tuple[str, ConnectionType]]:
        return self.connections.dialed()

    def test_theMissingSlotsAreFilled(self):
        """
        Only the slots neither connected nor being dialed are filled.
        """
        self.connections.counts[ConnectionType.OUTBOUND] = 1
        self.connections.dialing[addr("50.0.0.1:5000")] = ConnectionType.OUTBOUND
        self.select.infos = [Info(addr(f"{g}.0.0.1:5000")) for g in (20, 30, 40)]
        self.filler(slots=3).fill(self.NOW)
        self.assertEqual(self.dialed(), [("20.0.0.1:5000", ConnectionType.OUTBOUND)])

    def test_neverTwoInOneNetworkGroup(self):
        """
        An address in the group of another outbound connection, live or
        chosen in the same round, is skipped.
        """
        self.connections.groups = {"40.0.0.0/16"}
        self.select.infos = [
            Info(addr("20.0.0.1:5000")),
            Info(addr("20.0.9.9:5000")),
            Info(addr("40.0.0.7:5000")),
            Info(addr("30.0.0.1:5000")),
        ]
        self.filler(slots=3).fill(self.NOW)
        self.assertEqual(
            self.dialed(),
            [
                ("20.0.0.1:5000", ConnectionType.OUTBOUND),
                ("30.0.0.1:5000", ConnectionType.OUTBOUND),
            ],
        )

    def test_bannedDiscouragedOwnAndBusyAddressesAreSkipped(self):
        """
        Banned, discouraged, own and busy addresses are never dialed.
        """
        self.bans = RecordingBans(banned={"20.0.0.1"}, discouraged={"21.0.0.1"})
        self.connections.own.add(addr("22.0.0.1:5000"))
        self.connections.busy.add(addr("23.0.0.1:5000"))
        self.select.infos = [Info(addr(f"{g}.0.0.1:5000")) for g in (20, 21, 22, 23, 24)]
        self.filler(slots=8).fill(self.NOW)
        self.assertEqual(self.dialed(), [("24.0.0.1:5000", ConnectionType.OUTBOUND)])

    def test_anchorsAreDialedFirst(self):
        """
        The anchors take the first slots, before any address is drawn, and
        are used once.
        """
        self.select.infos = [Info(addr("30.0.0.1:5000"))]
        filler = self.filler(slots=2, anchors=[addr("20.0.0.1:5000")])
        filler.fill(self.NOW)
        self.assertEqual(
            self.dialed(),
            [
                ("20.0.0.1:5000", ConnectionType.OUTBOUND),
                ("30.0.0.1:5000", ConnectionType.OUTBOUND),
            ],
        )
        self.assertEqual(filler.anchors, [])

    def test_eligibleRespectsTheSpreadRetryBackoff(self):
        """
        An address that failed waits out C{retry_delay(failures)} scaled by
        its spread: refused before, taken after.
        """
        filler = self.filler()
        last = self.NOW - 1000
        info = Info(addr("20.0.0.1:5000"), failures=3, last_tried=last)
        wait = retry_delay(3) * filler.spread(info)
        tries = RECENT_TRY_TRIES  # past the draws that skip recent tries
        self.assertFalse(filler.eligible(info, set(), last + retry_delay(3) / 2 - 0.01, tries))
        self.assertFalse(filler.eligible(info, set(), last + wait - 0.01, tries))
        self.assertTrue(filler.eligible(info, set(), last + wait + 0.01, tries))
        self.assertFalse(filler.eligible(info, {info.address}, last + wait + 0.01, tries))

    def test_recentlyTriedAddressesWaitForTheLaterDraws(self):
        """
        An address tried in the last ten minutes is skipped by the first
        draws of a round only.
        """
        filler = self.filler()
        info = Info(addr("20.0.0.1:5000"), last_tried=self.NOW - 60)
        self.assertFalse(filler.eligible(info, set(), self.NOW, 1))
        self.assertTrue(filler.eligible(info, set(), self.NOW, RECENT_TRY_TRIES))

    def test_theSpreadIsInItsRangeAndFixedPerTry(self):
        """
        The spread is in [0.5, 1), the same for one try of one address, and
        differs between tries.
        """
        filler = self.filler()
        spreads = [
            filler.spread(Info(addr(f"20.0.{i // 250}.{i % 250 + 1}:5000"), last_tried=float(i)))
            for i in range(300)
        ]
        self.assertTrue(all(0.5 <= s < 1 for s in spreads))
        self.assertGreater(len(set(spreads)), 290)
        self.assertLess(min(spreads), 0.6)
        self.assertGreater(max(spreads), 0.9)
        one = Info(addr("20.0.0.1:5000"), last_tried=5.0)
        self.assertEqual(filler.spread(one), filler.spread(Info(one.address, last_tried=5.0)))

    def test_aFeelerStartsOnlyWhenEverySlotIsConnected(self):
        """
        No feeler while a slot is free or only being dialed; once every slot
        is held by a connection, one feeler tests a "new" address.
        """
        filler = self.filler(slots=2)
        self.connections.counts[ConnectionType.OUTBOUND] = 1
        self.connections.dialing[addr("50.0.0.1:5000")] = ConnectionType.OUTBOUND
        self.select.infos = [Info(addr("20.0.0.1:5000"))]
        filler.fill(self.NOW)
        self.assertEqual(self.dialed(), [])
        self.assertEqual(self.select.calls, [])
        self.connections.dialing.clear()
        self.connections.counts[ConnectionType.OUTBOUND] = 2
        filler.fill(self.NOW)
        self.assertEqual(self.dialed(), [("20.0.0.1:5000", ConnectionType.FEELER)])
        self.assertEqual(self.select.calls, [(self.NOW, True)])
        self.assertEqual(filler.feeler, addr("20.0.0.1:5000"))
        # One at a time.
        self.select.infos = [Info(addr("30.0.0.1:5000"))]
        filler.fill(self.NOW + 10_000)
        self.assertEqual(len(self.dialed()), 1)

    def test_aFailedFeelerDialFreesTheFeeler(self):
        """
        When the feeler's dial fails, another feeler may start.
        """
        self.collision = Info(addr("20.0.0.1:5000"))
        filler = self.filler(slots=1)
        self.connections.counts[ConnectionType.OUTBOUND] = 1
        filler.fill(self.NOW)
        self.assertEqual(self.dialed(), [("20.0.0.1:5000", ConnectionType.FEELER)])
        self.connections.dials[0][2].errback(ConnectFailed("refused"))
        self.assertIsNone(filler.feeler)


# -- MessageRegistry ---------------------------------------------------------------


class RecordingGossip:
    """
    Gossip's side of the registry: each method records its call; C{fail}
    makes the next one raise a L{ProtocolViolation}.
    """

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.fail = False

    def _record(self, name, peer, message):
        self.events.append((name, peer, message))
        if self.fail:
            raise ProtocolViolation(f"bad {name}")

    def received(self, peer, message):
        self._record("received", peer, message)

    def inv(self, peer, message):
        self._record("inv", peer, message)

    def getdata(self, peer, message):
        self._record("getdata", peer, message)

    def notfound(self, peer, message):
        self._record("notfound", peer, message)


class RecordingWireFormat:
    """
    An C{IWireFormat} whose C{frames} records the message and returns a
    recognisable dict.
    """

    gossip = True
    reservedTypes = JSONLines.reservedTypes
    minProtocol = 0

    def __init__(self) -> None:
        self.framed: list[dict] = []

    def frames(self, message):
        self.framed.append(message)
        return {"line": json.dumps(message).encode()}

    def buildProtocol(self, peer):
        raise AssertionError("the registry builds no protocol")


class MessageRegistryTests(SynchronousTestCase):
    def setUp(self):
        self.wireFormat = RecordingWireFormat()
        self.gossip = RecordingGossip()
        self.registry = MessageRegistry(self.wireFormat, self.gossip)
        self.handled: list[tuple] = []
        self.peer = FakePeer()

    def handler(self, peer, message):
        self.handled.append((peer, message))

    def test_registerRefusesProtocolTypes(self):
        """
        The protocol's own types, gossip's control types and an empty name
        cannot be registered.
        """
        for name in ("version", "addr", "ping", "inv", "getdata", "notfound", ""):
            self.assertRaises(ValueError, self.registry.register, name, self.handler, None)
        self.assertFalse(self.registry.handles("version"))
        self.registry.register("chat", self.handler, None)
        self.assertTrue(self.registry.handles("chat"))

    def test_acceptRunsTheValidatorAndHandsOnWhatItReturns(self):
        """
        The validator's result (when not L{None}) is what the handler gets.
        """
        self.registry.register("chat", self.handler, lambda m: {**m, "checked": True})
        self.assertTrue(self.registry.accept(self.peer, {"type": "chat"}))
        self.assertEqual(self.handled, [(self.peer, {"type": "chat", "checked": True})])
        self.assertEqual(self.peer.violations, [])

    def test_anInvalidMessageIsAViolationOfThePeer(self):
        """
        A validator raising C{ValueError}, C{TypeError}, C{KeyError} or a
        L{ProtocolViolation} makes the message a violation of the peer; the
        handler is not called.
        """
        for error in (ValueError, TypeError, KeyError, ProtocolViolation):

            def validator(message, error=error):
                raise error("nope")

            self.registry.register("chat", self.handler, validator)
            peer = FakePeer()
            self.assertFalse(self.registry.accept(peer, {"type": "chat"}))
            self.assertEqual(len(peer.violations), 1)
            self.assertIsInstance(peer.violations[0], ProtocolViolation)
        self.assertEqual(self.handled, [])

    def test_aRaisingHandlerIsLoggedAndTheMessageStillAccepted(self):
        """
        The application's bug is not the peer's fault: it is logged, and
        the message counts as accepted.
        """

        def broken(peer, message):
            raise RuntimeError("application bug")

        self.registry.register("chat", broken, lambda m: None)
        self.assertTrue(self.registry.accept(self.peer, {"type": "chat"}))
        self.assertEqual(self.peer.violations, [])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_anUnregisteredTypeIsNotAccepted(self):
        """
        C{accept} of a type never registered, or unregistered, is refused;
        the handler mapping drops an unregistered type.
        """
        self.assertFalse(self.registry.accept(self.peer, {"type": "chat"}))
        self.registry.register("chat", self.handler, None)
        self.assertIn("chat", self.registry.handlers)
        self.registry.unregister("chat")
        self.assertNotIn("chat", self.registry.handlers)
        self.assertFalse(self.registry.accept(self.peer, {"type": "chat"}))
        self.assertEqual(self.handled, [])

    def test_outgoingRefusesProtocolTypesAndAsksTheWireFormat(self):
        """
        A message to send must have an application type; its frames come
        from the wire format.
        """
        for bad in ({"type": "version"}, {"type": "inv"}, {"type": ""}, {}, ["chat"]):
            self.assertRaises(ValueError, self.registry.outgoing, bad)
        self.assertEqual(self.wireFormat.framed, [])
        message = {"type": "chat", "text": "hi"}
        self.assertEqual(
            self.registry.outgoing(message), {"line": json.dumps(message).encode()}
        )
        self.assertEqual(self.wireFormat.framed, [message])

    def test_aGossipedMessageGoesToGossip(self):
        """
        A registered type's message carrying the gossip field is gossip's to
        handle; one without it goes to the handler.
        """
        self.registry.register("chat", self.handler, None)
        gossiped = {"type": "chat", "gossip": {"id": "x"}}
        self.registry.handlers["chat"](self.peer, gossiped)
        self.assertEqual(self.gossip.events, [("received", self.peer, gossiped)])
        self.assertEqual(self.handled, [])
        self.registry.handlers["chat"](self.peer, {"type": "chat"})
        self.assertEqual(self.handled, [(self.peer, {"type": "chat"})])

    def test_gossipControlTypesGoToGossipAndItsViolationsCloseThePeer(self):
        """
        C{inv}, C{getdata} and C{notfound} are handled by gossip; a
        violation it raises is the peer's.
        """
        for kind in ("inv", "getdata", "notfound"):
            self.registry.handlers[kind](self.peer, {"type": kind})
        self.assertEqual([e[0] for e in self.gossip.events], ["inv", "getdata", "notfound"])
        self.assertEqual(self.peer.violations, [])
        self.gossip.fail = True
        self.registry.handlers["inv"](self.peer, {"type": "inv"})
        self.assertEqual([str(v) for v in self.peer.violations], ["bad inv"])


# -- NodeStore ------------------------------------------------------------------


class NodeStoreTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.rng = random.Random(1)
        self.book = AddressBook(rng=self.rng)
        self.bans = BanMan()
        self.pins = PinStore()
        self.running = True
        self.kind = BookKind(
            simple=True,
            new=lambda: AddressBook(rng=self.rng),
            fromJson=lambda body: AddressBook.from_json(body, rng=self.rng),
        )

    def store(self, path: str | None, delay: float = 30.0) -> NodeStore:
        return NodeStore(
            path,
            self.clock,
            delay,
            book=lambda: self.book,
            bans=lambda: self.bans,
            pins=lambda: self.pins,
            running=lambda: self.running,
        )

    def learn(self, count: int, first: int = 0) -> None:
        now = self.clock.seconds()
        self.book.add(
            [(addr(f"20.0.0.{i + 1}:5000"), now) for i in range(first, first + count)],
            None,
            now,
        )

    def load(self, store: NodeStore, tls: bool = True, anchors: int = 2):
        return store.load(self.clock.seconds(), self.kind, self.rng, tls, anchors)

    def test_saveThenLoadRoundTripsTheBookTheBansAndThePins(self):
        """
        What was saved is what is loaded: the book's addresses, the bans,
        the pins.
        """
        path = tempDir(self)
        self.learn(3)
        self.bans.ban("30.0.0.0/16", self.clock.seconds() + 3600)
        self.pins.pin("20.0.0.1:5000", "a" * 64)
        self.store(path).save()
        loaded = self.load(self.store(path))
        self.assertEqual(
            sorted(str(i.address) for i in loaded.book),
            ["20.0.0.1:5000", "20.0.0.2:5000", "20.0.0.3:5000"],
        )
        self.assertTrue(loaded.bans.is_banned("30.0.1.2", self.clock.seconds()))
        self.assertEqual(loaded.pins.get("20.0.0.1:5000"), "a" * 64)
        self.assertIsNone(self.load(self.store(path), tls=False).pins)

    def test_anchorsAreReadOnceThenGone(self):
        """
        The anchors are loaded (at most as many as asked), and their file is
        deleted so that they are used only once.
        """
        path = tempDir(self)
        store = self.store(path)
        store.saveAnchors([addr("20.0.0.1:5000"), addr("30.0.0.1:5000"), addr("40.0.0.1:5000")])
        store.close()  # stopped: the next node may take the directory
        self.assertTrue(os.path.exists(os.path.join(path, ANCHORS_FILE)))
        loaded = self.load(self.store(path), anchors=2)
        self.assertEqual(loaded.anchors, (addr("20.0.0.1:5000"), addr("30.0.0.1:5000")))
        self.assertFalse(os.path.exists(os.path.join(path, ANCHORS_FILE)))
        self.assertEqual(self.load(self.store(path)).anchors, ())

    def test_anUnusablePeersFileIsSetAsideAndANewBookMade(self):
        """
        A peers document that decodes but is not an address book is moved
        aside, and the store hands a new, empty book.
        """
        path = tempDir(self)
        with open(os.path.join(path, PEERS_FILE), "wb") as f:
            f.write(encode_document(*PEERS_FORMAT, {"version": 99}))
        loaded = self.load(self.store(path))
        self.assertIsInstance(loaded.book, AddressBook)
        self.assertEqual(len(loaded.book), 0)
        self.assertFalse(os.path.exists(os.path.join(path, PEERS_FILE)))
        aside = [name for name in os.listdir(path) if name.startswith(PEERS_FILE + ".damaged-")]
        self.assertEqual(len(aside), 1)

    def test_aCorruptPeersFileIsSetAsideAndNoBookLoaded(self):
        """
        A peers file that is not a document at all is moved aside; nothing
        is loaded from it (the node keeps the book it made).
        """
        path = tempDir(self)
        with open(os.path.join(path, PEERS_FILE), "wb") as f:
            f.write(b"\x00garbage")
        loaded = self.load(self.store(path))
        self.assertIsNone(loaded.book)
        self.assertEqual(
            [n for n in os.listdir(path) if n.startswith(PEERS_FILE)],
            [f"{PEERS_FILE}.damaged-{int(self.clock.seconds())}"],
        )

    def test_aBookThatDoubledIsSavedOnceAfterTheDelay(self):
        """
        C{bookGrew} schedules one save C{growth_save_delay_s} later, only
        once the book holds twice what was last saved.
        """
        path = tempDir(self)
        store = self.store(path, delay=30.0)
        # The directory's lock set aside: other stores read and write here
        # too, to see what is on disk.
        store.close()
        self.learn(2)
        self.store(path).save()  # another store wrote it; this one knows 0
        store.bookGrew()
        store.bookGrew()
        self.assertTrue(store.growthSavePending)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.learn(2, first=2)
        self.clock.advance(29.5)
        self.assertEqual(len(self.load(self.store(path)).book), 2)
        self.clock.advance(0.5)
        self.assertFalse(store.growthSavePending)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.load(self.store(path)).book), 4)
        # Saved at 4 addresses: 7 is not yet double.
        self.learn(3, first=4)
        store.bookGrew()
        self.assertFalse(store.growthSavePending)
        self.learn(1, first=7)
        store.bookGrew()
        self.assertTrue(store.growthSavePending)
        store.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noGrowthSaveWhenNotRunning(self):
        """
        A node that does not run schedules no growth save.
        """
        store = self.store(tempDir(self))
        self.learn(4)
        self.running = False
        store.bookGrew()
        self.assertFalse(store.growthSavePending)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_withoutADataDirectoryNothingIsReadOrWritten(self):
        """
        Without a data directory the store never reads the book or the bans,
        schedules nothing, and loads nothing.
        """

        def untouchable():
            raise AssertionError("read without a data directory")

        store = NodeStore(
            None, self.clock, 1.0, untouchable, untouchable, untouchable, lambda: True
        )
        self.assertIsNone(store.path)
        store.save()
        store.saveBans()
        store.saveAnchors([addr("20.0.0.1:5000")])
        store.bookGrew()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        loaded = self.load(store)
        self.assertEqual(
            (loaded.book, loaded.bans, loaded.pins, loaded.anchors), (None, None, None, ())
        )
        self.assertNotEqual(store.nodeId(0), store.nodeId(0))


# -- Handshake ------------------------------------------------------------------


class Certified:
    """
    A transport as a TLS connection shows it: the peer's certificate.
    """

    def __init__(self, cert) -> None:
        self.cert = cert

    def getPeerCertificate(self):
        return self.cert


class HandshakeTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1234.7)
        self.connections = FakeConnections()
        self.nodeId = "n1"

    def handshake(self, identity=None) -> Handshake:
        return Handshake(
            NodeConfig(user_agent="/parts/", seeds=()),
            self.clock,
            lambda: self.nodeId,
            self.connections,
            identity,
            lambda: PinStore(),
        )

    def test_versionCarriesNodeIdPortAndTheAddressSeen(self):
        """
        Our C{version} has the node id as the callable gives it now, the
        listening port, our user agent and time, and the peer's address as
        we see it.
        """
        handshake = self.handshake()
        peer = FakePeer(remote=tcp("20.0.0.5", 40000))
        version = handshake.versionFor(peer)
        self.assertEqual(version["node_id"], "n1")
        self.assertEqual(version["port"], 5000)
        self.assertEqual(version["user_agent"], "/parts/")
        self.assertEqual(version["timestamp"], 1234)
        self.assertEqual(version["addr_recv"], "20.0.0.5:40000")
        self.nodeId = "n2"
        self.assertEqual(handshake.versionFor(peer)["node_id"], "n2")

    def test_versionWithoutListeningOrRemoteAddress(self):
        """
        Not listening, the port is 0; a peer without an IP remote address
        gets no C{addr_recv}.
        """
        self.connections.listeningAddress = None
        version = self.handshake().versionFor(FakePeer(remote=None))
        self.assertEqual(version["port"], 0)
        self.assertNotIn("addr_recv", version)

    def test_checkVersionDelegatesToAdmitId(self):
        """
        Without TLS, the judgement is the connection manager's C{admitId}:
        its refusal, or L{None}.
        """
        handshake = self.handshake()
        peer = FakePeer()
        self.assertIsNone(handshake.checkVersion(peer))
        refusal = DuplicateConnection("already")
        self.connections.refusal = refusal
        self.assertIs(handshake.checkVersion(peer), refusal)
        self.assertEqual(self.connections.admitted, [peer, peer])

    def test_withoutIdentityNoCertificateIsAsked(self):
        """
        With C{identity=None} the transport's certificate is never looked
        at.
        """

        class Untouchable:
            def getPeerCertificate(self):
                raise AssertionError("TLS checked without TLS")

        peer = FakePeer()
        peer.transport = Untouchable()
        self.assertIsNone(self.handshake(identity=None).checkVersion(peer))

    def test_withAnIdentityAPeerWithoutCertificateIsRefused(self):
        """
        With TLS, a peer that presented no certificate is refused before the
        connection manager registers its id.
        """
        peer = FakePeer()
        peer.transport = Certified(None)
        refusal = self.handshake(identity=object()).checkVersion(peer)
        self.assertIsInstance(refusal, HandshakeFailed)
        self.assertEqual(self.connections.admitted, [])


# -- ConnectionManager -------------------------------------------------------------


class ConnectionManagerTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.reactor.advance(100)
        self.events: list[tuple] = []
        self.peerEvents = PeerEvents()
        self.peerEvents.subscribe(
            established=lambda p: self.events.append(("established", p)),
            closed=lambda p, r: self.events.append(("closed", p, r)),
        )
        self.bans = RecordingBans()
        self.built: list[FakePeer] = []

    def manager(self, **config) -> ConnectionManager:
        config.setdefault("seeds", ())
        config.setdefault("interface", "127.0.0.1")
        return ConnectionManager(
            NodeConfig(**config),
            self.reactor,
            lambda: "me",
            self.peerEvents,
            newPeer=self.newPeer,
            bans=lambda: self.bans,
            local=LocalNetworks(),
            groupKey=b"g" * 32,
            identity=None,
            noveltyOf=lambda peer: 0.0,
            onDialStarted=lambda *a: self.events.append(("dialStarted", *a)),
            onDialFailed=lambda *a: self.events.append(("dialFailed", *a)),
            onSelfAddress=lambda a: self.events.append(("selfAddress", a)),
            onLocalGroup=lambda g: self.events.append(("localGroup", g)),
            running=lambda: True,
        )

    def newPeer(self, direction, dialed, kind):
        peer = FakePeer(
            kind=kind, dialed=dialed, established=False, node_id=None, direction=direction
        )
        peer.connected_at = self.reactor.seconds()
        self.built.append(peer)
        protocol = Protocol()
        protocol.peer = peer
        return peer, protocol

    def test_admitRefusesBannedHosts(self):
        """
        An inbound connection from a banned host gets no protocol and no
        peer.
        """
        self.bans.banned.add("20.0.0.1")
        connman = self.manager()
        self.assertIsNone(connman.admit(tcp("20.0.0.1", 40000)))
        self.assertEqual(self.built, [])
        self.assertIsNotNone(connman.admit(tcp("20.0.0.2", 40000)))
        self.assertEqual(len(connman), 1)

    def test_admitCapsInboundConnectionsPerGroup(self):
        """
        At most C{max_inbound_per_group} inbound connections from one
        network group; another group is still admitted.
        """
        connman = self.manager(max_inbound_per_group=2)
        for i in range(2):
            self.assertIsNotNone(connman.admit(tcp(f"20.0.0.{i + 1}", 40000)))
        self.assertIsNone(connman.admit(tcp("20.0.9.9", 40000)))
        self.assertIsNotNone(connman.admit(tcp("30.0.0.1", 40000)))
        self.assertEqual(connman.inboundFrom("20.0.0.0/16"), 2)
        self.assertEqual(connman.count(ConnectionType.INBOUND), 3)

    def test_admitRefusesWhenTheSlotsAreFullAndNoOneCanBeEvicted(self):
        """
        With every inbound slot taken by connections still (freshly) in
        their handshake, there is no one to evict: the newcomer is refused.
        """
        connman = self.manager(max_connections=3, max_outbound=1)
        self.assertIsNotNone(connman.admit(tcp("20.0.0.1", 40000)))
        self.assertIsNotNone(connman.admit(tcp("30.0.0.1", 40000)))
        self.assertIsNone(connman.admit(tcp("40.0.0.1", 40000)))
        self.assertEqual(len(connman), 2)
        self.assertEqual([p.closed for p in self.built], [[], []])

    def test_aStaleHandshakeIsEvictedForANewcomer(self):
        """
        With the inbound slots full, a connection still in its handshake
        after C{stale_handshake_s} is closed (the oldest first) to admit the
        newcomer.
        """
        connman = self.manager(max_connections=3, max_outbound=1, stale_handshake_s=5.0)
        connman.admit(tcp("20.0.0.1", 40000))
        self.reactor.advance(1)
        connman.admit(tcp("30.0.0.1", 40000))
        self.reactor.advance(5.5)
        self.assertIsNotNone(connman.admit(tcp("40.0.0.1", 40000)))
        oldest, younger, newcomer = self.built
        self.assertEqual(len(oldest.closed), 1)
        self.assertIsInstance(oldest.closed[0], PeerLost)
        self.assertTrue(oldest.dropped)  # at once, as Bitcoin Core does
        self.assertEqual((younger.closed, newcomer.closed), ([], []))

    def test_theRegistryCountsKindsAndPeerClosedRemoves(self):
        """
        Connections are counted by kind as they are built; C{peerClosed}
        takes one out of the registry and its group, publishes one
        C{closed}, and fires C{whenClosed}.
        """
        connman = self.manager()
        connman.admit(tcp("20.0.0.1", 40000))
        connman.buildPeer(Direction.OUTBOUND, addr("30.0.0.1:5000"))
        connman.buildPeer(Direction.OUTBOUND, addr("40.0.0.1:5000"), ConnectionType.FEELER)
        inbound, outbound, feeler = self.built
        self.assertEqual(
            [
                connman.count(k)
                for k in (ConnectionType.INBOUND, ConnectionType.OUTBOUND, ConnectionType.FEELER)
            ],
            [1, 1, 1],
        )
        self.assertEqual(
            connman.busyAddresses(), {addr("30.0.0.1:5000"), addr("40.0.0.1:5000")}
        )
        closed = []
        connman.whenClosed(inbound).addCallback(closed.append)
        reason = PeerLost("bye")
        connman.peerClosed(inbound, reason)
        self.assertEqual(closed, [None])
        self.assertEqual(
            [e for e in self.events if e[0] == "closed"], [("closed", inbound, reason)]
        )
        self.assertNotIn(inbound, connman)
        self.assertEqual(connman.count(ConnectionType.INBOUND), 0)
        self.assertEqual(connman.inboundFrom("20.0.0.0/16"), 0)
        self.assertEqual(connman.connections(), [outbound, feeler])

    def test_admitIdRefusesItselfAndADuplicate(self):
        """
        A peer claiming our own id is a self-connection; one claiming the id
        of an established peer from the same host is a duplicate; a new id
        is registered.
        """
        connman = self.manager()
        first = FakePeer(kind=ConnectionType.INBOUND, node_id="them", remote=tcp("20.0.0.1", 1))
        self.assertIsNone(connman.admitId(first))
        self.assertIs(connman.byId("them"), first)
        again = FakePeer(kind=ConnectionType.INBOUND, node_id="them", remote=tcp("20.0.0.1", 2))
        self.assertIsInstance(connman.admitId(again), DuplicateConnection)
        self.assertIs(connman.byId("them"), first)
        me = FakePeer(kind=ConnectionType.INBOUND, node_id="me", remote=tcp("20.0.0.3", 1))
        self.assertIsInstance(connman.admitId(me), SelfConnection)
        self.assertIsNone(connman.byId("me"))
        connman.peerClosed(first, PeerLost("x"))
        self.assertIsNone(connman.byId("them"))

    def test_anIdClaimedFromAnotherHostIsKeptApart(self):
        """
        Without TLS a node id is a claim (PROTOCOL.md, Handshake): the same
        id from another host is another peer, let in beside the first; when
        the first goes, the other holds the id, and the real node coming
        back from its own host is let in again, not refused as a duplicate.
        """
        connman = self.manager()
        real = FakePeer(kind=ConnectionType.INBOUND, node_id="them", remote=tcp("20.0.0.1", 1))
        squatter = FakePeer(kind=ConnectionType.INBOUND, node_id="them", remote=tcp("30.0.0.9", 1))
        self.assertIsNone(connman.admitId(squatter))
        self.assertIsNone(connman.admitId(real))
        self.assertIs(connman.byId("them"), squatter)
        connman.peerClosed(squatter, PeerLost("gone"))
        self.assertIs(connman.byId("them"), real)
        connman.peerClosed(real, PeerLost("gone"))
        self.assertIsNone(connman.byId("them"))
        back = FakePeer(kind=ConnectionType.INBOUND, node_id="them", remote=tcp("20.0.0.1", 3))
        squatter2 = FakePeer(kind=ConnectionType.INBOUND, node_id="them", remote=tcp("30.0.0.9", 2))
        self.assertIsNone(connman.admitId(squatter2))
        self.assertIsNone(connman.admitId(back))

    def test_connectToABusyAddressJoinsTheDialInProgress(self):
        """
        A C{connect} to an address being dialed makes no second dial: it
        gets that dial's outcome. C{dialCount} and C{isDialing} follow the
        dial.
        """
        connman = self.manager()
        there = addr("20.0.0.1:5000")
        first = connman.connect(Target("20.0.0.1", 5000))
        second = connman.connect(Target("20.0.0.1", 5000))
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.assertEqual(connman.dialCount(), 1)
        self.assertTrue(connman.isDialing(there))
        self.assertEqual(connman.dialingKinds(), [(there, ConnectionType.MANUAL)])
        self.assertEqual(self.events[0][:2], ("dialStarted", there))
        factory = self.reactor.tcpClients[0][2]
        factory.clientConnectionFailed(
            self.reactor.connectors[0], Failure(ConnectionRefusedError())
        )
        self.failureResultOf(first, ConnectFailed)
        self.failureResultOf(second, ConnectFailed)
        self.assertEqual(connman.dialCount(), 0)
        self.assertFalse(connman.isDialing(there))
        self.assertEqual(self.events[-1], ("dialFailed", there, 100))

    def test_aDialThatConnectsFiresWithTheEstablishedPeer(self):
        """
        A dial that connects gives its peer, once established, to the
        dialer and to the C{connect} that joined it.
        """
        connman = self.manager()
        first = connman.dial(Target("20.0.0.1", 5000), ConnectionType.OUTBOUND)
        second = connman.connect(Target("20.0.0.1", 5000))
        factory = self.reactor.tcpClients[0][2]
        protocol = factory.buildProtocol(tcp("20.0.0.1", 5000))
        protocol.makeConnection(StringTransport())
        (peer,) = self.built
        self.assertEqual((peer.kind, peer.dialed), (ConnectionType.OUTBOUND, addr("20.0.0.1:5000")))
        self.assertIs(self.successResultOf(first), peer)
        self.assertIs(self.successResultOf(second), peer)
        self.assertEqual(connman.dialCount(), 0)

    def test_connectRefusesOwnAddressesAndTheConnectionLimit(self):
        """
        C{connect} to an own address fails with L{SelfConnection}; past
        C{max_connections} with L{LimitReached}; neither dials.
        """
        connman = self.manager(max_connections=1, max_outbound=0)
        connman.addOwn(addr("20.0.0.1:5000"))
        self.failureResultOf(connman.connect(Target("20.0.0.1", 5000)), SelfConnection)
        connman.admit(tcp("30.0.0.1", 40000))
        self.failureResultOf(connman.connect(Target("40.0.0.1", 5000)), LimitReached)
        self.assertEqual(self.reactor.tcpClients, [])


# -- AddressRelay -------------------------------------------------------------------


class AddressRelayTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.connections = FakeConnections()
        self.book = RecordingBook()
        self.bans = RecordingBans()
        self.news: list[str] = []
        self.relay = AddressRelay(
            NodeConfig(seeds=()),
            self.clock,
            self.connections,
            book=lambda: self.book,
            bans=lambda: self.bans,
            relayKey=b"r" * 32,
            onNewAddresses=lambda learned: self.news.append(("new", learned)),
            onAnswer=lambda peer: self.news.append("answer"),
            maintain=lambda: None,
            running=lambda: True,
        )
        self.source = FakePeer(
            kind=ConnectionType.INBOUND,
            node_id="source",
            remote=tcp("20.0.0.9", 40000),
            listen_port=5000,
        )

    def others(self, count: int) -> list[FakePeer]:
        peers = [
            FakePeer(
                node_id=f"p{i}",
                dialed=addr(f"{30 + i}.0.0.1:5000"),
                remote=tcp(f"{30 + i}.0.0.1", 5000),
            )
            for i in range(count)
        ]
        self.connections.established = [self.source, *peers]
        return peers

    def told(self, peers) -> list[FakePeer]:
        return [p for p in peers if p.sent]

    def test_aFreshAddressGoesToRelayFanoutPeersNeverTheSource(self):
        """
        A fresh address we already knew is relayed to exactly
        C{RELAY_FANOUT} peers, chosen among those other than its source.
        """
        others = self.others(6)
        fresh = addr("40.0.0.1:5000")
        self.book.entries.append(Info(fresh))
        now = int(self.clock.seconds())
        self.relay.addressesReceived(self.source, [(fresh, now)], relay=True)
        told = self.told(others)
        self.assertEqual(len(told), RELAY_FANOUT)
        targets = self.relay.relayTargets(fresh, others, now)
        self.assertEqual(told, [p for p in others if p in targets])
        self.assertEqual(self.source.sent, [])
        for peer in told:
            self.assertEqual(peer.sent, [codec.addr([(fresh, now)])])
            self.assertTrue(self.relay.knowsAddress(peer, fresh))

    def test_aFreshAddressNewToUsAlsoGoesToEveryOutboundPeer(self):
        """
        A fresh address new to our address manager (a newcomer's
        announcement) goes to the C{RELAY_FANOUT} peers any address would
        go to, and to every full outbound peer; never to its source.
        """
        others = self.others(8)
        for peer in others[3:]:
            peer.kind = ConnectionType.INBOUND
        fresh = addr("40.0.0.1:5000")
        now = int(self.clock.seconds())
        self.relay.addressesReceived(self.source, [(fresh, now)], relay=True)
        hashed = self.relay.relayTargets(fresh, others, now)
        self.assertEqual(len(hashed), RELAY_FANOUT)
        self.assertEqual(
            self.told(others), [p for p in others if p in hashed or p in others[:3]]
        )
        self.assertEqual(self.source.sent, [])

    def test_floodsOfNewAddressesAreRateLimited(self):
        """
        At most C{NOVEL_FLOOD_BURST} new addresses are flooded to the
        outbound peers at once, then C{NOVEL_FLOOD_RATE_PER_S} a second;
        past that a new address goes to the C{RELAY_FANOUT} peers only.
        """
        others = self.others(8)
        now = int(self.clock.seconds())

        def relayed(address) -> int:
            for peer in others:
                peer.sent.clear()
            self.relay.addressesReceived(self.source, [(address, now)], relay=True)
            return len(self.told(others))

        fresh = [addr(f"41.{i // 250}.{i % 250}.1:5000") for i in range(NOVEL_FLOOD_BURST + 2)]
        self.assertEqual({relayed(a) for a in fresh[:NOVEL_FLOOD_BURST]}, {len(others)})
        self.assertEqual(relayed(fresh[NOVEL_FLOOD_BURST]), RELAY_FANOUT)
        self.clock.advance(1 / NOVEL_FLOOD_RATE_PER_S)
        now = int(self.clock.seconds())
        self.assertEqual(relayed(fresh[NOVEL_FLOOD_BURST + 1]), len(others))

    def test_aPeerThatKnowsTheAddressIsNotSentIt(self):
        """
        A chosen peer that sent us the address, or was sent it, does not get
        it again.
        """
        others = self.others(5)
        fresh = addr("40.0.0.1:5000")
        self.book.entries.append(Info(fresh))
        now = int(self.clock.seconds())
        targets = self.relay.relayTargets(fresh, others, now)
        self.relay.rememberAddresses(targets[0], [fresh])
        self.relay.addressesReceived(self.source, [(fresh, now)], relay=True)
        self.assertEqual(self.told(others), [targets[1]])
        # Relayed once, it is known everywhere it went: no second round.
        targets[1].sent.clear()
        self.relay.addressesReceived(self.source, [(fresh, now)], relay=True)
        self.assertEqual(self.told(others), [])

    def test_notRelayedWhenNotAskedOrNotFresh(self):
        """
        Without C{relay}, or for an entry seen long ago, nothing is relayed
        (but it is stored).
        """
        others = self.others(3)
        now = int(self.clock.seconds())
        self.relay.addressesReceived(self.source, [(addr("40.0.0.1:5000"), now)], relay=False)
        self.relay.addressesReceived(self.source, [(addr("40.0.0.2:5000"), now - 3600)], relay=True)
        self.assertEqual(self.told(others), [])
        self.assertEqual(len(self.book.events), 2)

    def test_ownBannedAndLoopbackAddressesAreDropped(self):
        """
        Our own addresses, banned or discouraged hosts, and loopback
        addresses from a peer not on loopback are not stored.
        """
        now = int(self.clock.seconds())
        self.connections.own.add(addr("40.0.0.1:5000"))
        self.bans.banned.add("40.0.0.2")
        self.bans.discouraged.add("40.0.0.3")
        entries = [(addr(f"40.0.0.{i}:5000"), now) for i in (1, 2, 3, 4)]
        entries.append((addr("127.0.0.5:5000"), now))
        self.relay.addressesReceived(self.source, entries, relay=False)
        self.assertEqual(
            self.book.events,
            [("add", [(addr("40.0.0.4:5000"), float(now))], self.source.address, now)],
        )
        self.assertEqual(self.news, [("new", True)])

    def test_aLoopbackPeerMayTellLoopbackAddresses(self):
        """
        A peer on loopback may tell loopback addresses.
        """
        now = int(self.clock.seconds())
        local = FakePeer(
            kind=ConnectionType.INBOUND, remote=tcp("127.0.0.1", 40000), listen_port=5001
        )
        self.relay.addressesReceived(local, [(addr("127.0.0.5:5000"), now)], relay=False)
        self.assertEqual(self.book.events[0][1], [(addr("127.0.0.5:5000"), float(now))])

    def test_unknownAndFutureTimesAreClampedAndNotRelayed(self):
        """
        An entry without a time, or too far in the future, is taken as seen
        C{ADDR_UNKNOWN_AGE_S} ago and not relayed, except the peer's own
        address, taken as seen now.
        """
        others = self.others(6)
        now = self.clock.seconds()
        self.relay.addressesReceived(
            self.source,
            [
                (addr("40.0.0.1:5000"), None),
                (addr("40.0.0.2:5000"), int(now + ADDR_FUTURE_SLACK_S + 60)),
                (self.source.address, None),
            ],
            relay=True,
        )
        (event,) = self.book.events
        self.assertEqual(
            event[1],
            [
                (addr("40.0.0.1:5000"), now - ADDR_UNKNOWN_AGE_S),
                (addr("40.0.0.2:5000"), now - ADDR_UNKNOWN_AGE_S),
                (self.source.address, float(int(now))),
            ],
        )
        # Only the peer's own announcement, seen now, is fresh enough.
        self.assertEqual(len(self.told(others)), len(others))  # new to us: outbound peers too
        for peer in self.told(others):
            self.assertEqual(peer.sent, [codec.addr([(self.source.address, int(now))])])

    def test_gossipIsNotLearning(self):
        """
        Addresses new to the book that came as relayed gossip are reported
        as not learned; an answer's (or a big C{addr}'s) as learned.
        """
        now = int(self.clock.seconds())
        self.relay.addressesReceived(self.source, [(addr("40.0.0.1:5000"), now)], relay=True)
        self.relay.addressesReceived(self.source, [(addr("40.0.0.2:5000"), now)], relay=False)
        self.assertEqual(self.news, [("new", False), ("new", True)])

    def test_nothingNewNoOnNewAddresses(self):
        """
        C{onNewAddresses} is called only when the book took something new.
        """
        self.book.news = 0
        now = int(self.clock.seconds())
        self.relay.addressesReceived(self.source, [(addr("40.0.0.1:5000"), now)], relay=False)
        self.assertEqual(len(self.book.events), 1)
        self.assertEqual(self.news, [])

    def test_advertisementFor(self):
        """
        Our advertised address is the listening one, with the connection's
        local host when listening on every interface; it is remembered as
        ours. Not listening, there is none.
        """
        peer = FakePeer(local=tcp("10.1.2.3", 5000))
        self.connections.listeningAddress = addr("127.0.0.1:5000")
        self.assertEqual(self.relay.advertisementFor(peer), addr("127.0.0.1:5000"))
        self.connections.listeningAddress = Address.of("0.0.0.0", 6000)
        self.assertEqual(self.relay.advertisementFor(peer), addr("10.1.2.3:6000"))
        self.assertEqual(self.connections.own, {addr("127.0.0.1:5000"), addr("10.1.2.3:6000")})
        self.connections.listeningAddress = None
        self.assertIsNone(self.relay.advertisementFor(peer))


# -- Every --------------------------------------------------------------------------


class EveryTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.calls: list[float] = []

    def every(self, now: bool, f=None) -> Every:
        if f is None:
            f = lambda: self.calls.append(self.clock.seconds())  # noqa: E731
        return Every("work", 10.0, f, self.clock, now=now)

    def test_nowCallsAtStartThenEveryInterval(self):
        """
        With C{now}, the first call is at start, then one per interval.
        """
        timer = self.every(now=True)
        timer.startService()
        self.clock.pump([10.0, 10.0])
        self.assertEqual(self.calls, [0.0, 10.0, 20.0])
        timer.stopService()

    def test_withoutNowTheFirstCallWaitsOneInterval(self):
        """
        Without C{now}, nothing happens until one interval has passed.
        """
        timer = self.every(now=False)
        timer.startService()
        self.assertEqual(self.calls, [])
        self.clock.advance(9.5)
        self.assertEqual(self.calls, [])
        self.clock.advance(0.5)
        self.assertEqual(self.calls, [10.0])
        timer.stopService()

    def test_stopServiceStopsTheCalls(self):
        """
        After C{stopService} no call is made and no timer is left.
        """
        parent = service.MultiService()
        timer = self.every(now=False)
        timer.setServiceParent(parent)
        parent.startService()
        self.assertTrue(timer.running)
        self.clock.advance(10)
        parent.stopService()
        self.assertFalse(timer.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(self.calls, [10.0])

    def test_aRaisingCallIsLoggedAndStopsTheCalls(self):
        """
        A call that raises is logged and ends the calls.
        """
        calls = []

        def broken():
            calls.append(self.clock.seconds())
            raise RuntimeError("broken")

        timer = self.every(now=True, f=broken)
        timer.startService()
        self.clock.advance(100)
        self.assertEqual(calls, [0.0])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        timer.stopService()


# -- Deadlines ----------------------------------------------------------------------


class _Owner:
    """
    A deadline owner that records its calls and may set another deadline
    from within one.
    """

    def __init__(self, deadlines: Deadlines, name: str, log: list, then: float | None = None):
        self.deadlines, self.name, self.log, self.then = deadlines, name, log, then

    def deadlineReached(self, now: float) -> None:
        self.log.append((self.name, now))
        if self.then is not None:
            when, self.then = now + self.then, None
            self.deadlines.set(self, when)


class _LateClock(Clock):
    """
    A clock whose timers come a hair before the time asked for (as a sum of
    now and a delay may round).
    """

    def callLater(self, delay, f, *args, **kw):
        return Clock.callLater(self, max(0.0, delay - 1e-9), f, *args, **kw)


class DeadlinesTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.deadlines = Deadlines(self.clock)
        self.log: list = []

    def owner(self, name: str, then: float | None = None) -> _Owner:
        return _Owner(self.deadlines, name, self.log, then)

    def test_eachOwnerIsCalledAtItsTimeOnOneTimer(self):
        """
        Deadlines set in any order come in time order, each at its own
        time, with that time; one clock timer stands for them all.
        """
        for name, when in (("c", 30.0), ("a", 10.0), ("b", 20.0), ("a2", 10.0)):
            self.deadlines.set(self.owner(name), when)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(len(self.deadlines), 4)
        self.clock.advance(9.9)
        self.assertEqual(self.log, [])
        self.clock.advance(0.1)
        self.assertEqual(self.log, [("a", 10.0), ("a2", 10.0)])
        self.clock.advance(10)
        self.assertEqual(self.log[2:], [("b", 20.0)])
        # A clock that comes late: the owner is told the clock's time.
        self.clock.advance(100)
        self.assertEqual(self.log[3:], [("c", 120.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.deadlines), 0)

    def test_anEarlierDeadlineMovesTheTimer(self):
        self.deadlines.set(self.owner("late"), 100.0)
        self.deadlines.set(self.owner("early"), 5.0)
        [timer] = self.clock.getDelayedCalls()
        self.assertEqual(timer.getTime(), 5.0)
        self.clock.advance(5)
        self.assertEqual(self.log, [("early", 5.0)])
        [timer] = self.clock.getDelayedCalls()
        self.assertEqual(timer.getTime(), 100.0)

    def test_aCancelledDeadlineIsNotCalled(self):
        """
        A cancelled deadline never comes; once none is left, no clock
        timer is left either (a node whose connections all ended leaves
        nothing pending). Cancelling twice, or after the call, is nothing.
        """
        first = self.deadlines.set(self.owner("a"), 10.0)
        second = self.deadlines.set(self.owner("b"), 20.0)
        self.deadlines.cancel(first)
        self.deadlines.cancel(first)
        self.clock.advance(15)
        self.assertEqual(self.log, [])
        self.clock.advance(5)
        self.assertEqual(self.log, [("b", 20.0)])
        self.deadlines.cancel(second)
        third = self.deadlines.set(self.owner("c"), 50.0)
        self.deadlines.cancel(third)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.deadlines), 0)
        self.clock.advance(100)
        self.assertEqual(self.log, [("b", 20.0)])

    def test_noTimerIsLeftForCancelledEntriesAlone(self):
        """
        Once the last deadline set has come, a cancelled one still in the
        heap keeps no clock timer pending.
        """
        self.deadlines.set(self.owner("a"), 10.0)
        self.deadlines.cancel(self.deadlines.set(self.owner("b"), 20.0))
        self.clock.advance(10)
        self.assertEqual(self.log, [("a", 10.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.deadlines.set(self.owner("c"), 30.0)
        self.clock.advance(20)
        self.assertEqual(self.log[1:], [("c", 30.0)])

    def test_anOwnerMaySetItsNextDeadlineWhenCalled(self):
        """
        An owner called sets its next deadline (an inactivity check that
        finds the peer heard from): it comes at its time, and a deadline
        set for a time already due comes on the next turn, not in the same
        round (an owner cannot keep the round going).
        """
        self.deadlines.set(self.owner("a", then=10.0), 10.0)
        self.deadlines.set(self.owner("now", then=0.0), 10.0)
        self.deadlines.set(self.owner("b"), 15.0)
        self.clock.advance(10)
        self.assertEqual(self.log, [("a", 10.0), ("now", 10.0), ("now", 10.0)])
        self.clock.advance(5)
        self.assertEqual(self.log[3:], [("b", 15.0)])
        self.clock.advance(5)
        self.assertEqual(self.log[4:], [("a", 20.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_aTimerAHairEarlyStillCallsAtTheTimeSet(self):
        """
        A clock whose timer comes a hair before the time asked for still
        has the deadline called, with the time it was set for.
        """
        clock = _LateClock()
        deadlines = Deadlines(clock)
        deadlines.set(_Owner(deadlines, "a", self.log), 10.0)
        clock.advance(10.0 - 1e-9)
        self.assertEqual(self.log, [("a", 10.0)])

    def test_cancelledEntriesDoNotPileUp(self):
        """
        Connections that come and go (each one's deadline cancelled) do not
        grow the heap past about twice the live deadlines.
        """
        keep = [self.deadlines.set(self.owner(f"k{i}"), 1000.0 + i) for i in range(10)]
        for i in range(5000):
            self.deadlines.cancel(self.deadlines.set(self.owner(f"x{i}"), 500.0 + i))
            self.assertLessEqual(len(self.deadlines._heap), 2 * 10 + 64 + 1)
        self.assertEqual(len(self.deadlines), 10)
        self.clock.advance(2000)
        self.assertEqual([name for name, _ in self.log], [f"k{i}" for i in range(10)])
        self.assertEqual(len(keep), 10)

    def test_aRaisingOwnerLeavesTheOthersDue(self):
        """
        An owner that raises does not lose the other deadlines: they come
        on the next turn of the clock.
        """

        class Broken:
            def deadlineReached(self, now):
                raise RuntimeError("broken")

        self.deadlines.set(Broken(), 10.0)
        self.deadlines.set(self.owner("b"), 10.0)
        self.assertRaises(RuntimeError, self.clock.advance, 10)
        self.clock.advance(0)
        self.assertEqual(self.log, [("b", 10.0)])


# -- LocalNetworks -----------------------------------------------------------------


class LocalNetworksTests(SynchronousTestCase):
    def test_addTellsWhetherTheGroupIsNewlyLocal(self):
        """
        L{LocalNetworks.add} returns the address's group the first time that
        group becomes local, and L{None} after.
        """
        local = LocalNetworks()
        self.assertEqual(local.add(Address.of("127.0.0.1", 0)), "127.0.0.0/16")
        self.assertIsNone(local.add(Address.of("127.0.9.9", 5000)))
        self.assertIn("127.0.0.0/16", local)

    def test_localPrivateAddressesAreExemptFromDiversity(self):
        """
        A loopback or private address in one of our groups has no diversity
        key (it is exempt from the group rules) and is bucketed by itself; a
        public address in a group of ours is not exempt.
        """
        local = LocalNetworks()
        here = Address.of("127.0.0.1", 5001)
        self.assertEqual(local.diversityKey(here), "127.0.0.0/16")
        local.add(Address.of("127.0.0.1", 0))
        local.add(Address.of("8.8.4.4", 0))
        self.assertIsNone(local.diversityKey(here))
        self.assertEqual(local.bucketGroup(here), "local 127.0.0.1:5001")
        public = Address.of("8.8.8.8", 5000)
        self.assertEqual(local.diversityKey(public), network_group(public))
        self.assertEqual(local.bucketGroup(public), network_group(public))


class ArrivalsTests(SynchronousTestCase):
    """
    L{bitp2p.arrivals.Arrivals}: decaying arrival counts per source,
    bounded in sources.
    """

    def test_countsDecayByHalfLife(self):
        clock = Clock()
        arrivals = Arrivals(clock, half_life_s=60, max_sources=10)
        self.assertEqual(arrivals.count("a"), 0.0)
        self.assertEqual(arrivals.arrived("a"), 1.0)
        self.assertEqual(arrivals.arrived("a"), 2.0)
        clock.advance(60)
        self.assertAlmostEqual(arrivals.count("a"), 1.0)
        self.assertAlmostEqual(arrivals.arrived("a"), 2.0)
        clock.advance(120)
        self.assertAlmostEqual(arrivals.count("a"), 0.5)
        self.assertEqual(arrivals.count("b"), 0.0)

    def test_theLeastRecentSourceIsForgottenFirst(self):
        clock = Clock()
        arrivals = Arrivals(clock, half_life_s=60, max_sources=3)
        for source in ("a", "b", "c"):
            arrivals.arrived(source)
            clock.advance(1)
        arrivals.arrived("a")  # now the most recent
        arrivals.arrived("d")
        self.assertEqual(len(arrivals), 3)
        self.assertEqual(arrivals.count("b"), 0.0)
        self.assertGreater(arrivals.count("a"), 1.0)
        for i in range(1000):
            arrivals.arrived(f"x{i}")
        self.assertEqual(len(arrivals), 3)
