"""
The seeds for fleets, on a simulated clock: a seed name is resolved again on
every fallback while the node is short of outbound peers, with a backoff up
to a bound, one resolution of a name in flight at a time, one log line for a
failing name, never our own address, and no more tries once the node has its
peers (L{bitp2p.discovery.AddressRelay}). No sockets, no sleeping.
"""

from __future__ import annotations

import random

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address
from bitp2p.constants import SEED_ENOUGH_OUTBOUND, SEED_FALLBACK_S, SEED_RETRY_MAX_S
from bitp2p.node import Node, NodeConfig

from .helpers import linkNodes, makeNode

NAME = "fleet.example"
PORT = 6001


class TableResolver:
    """
    An C{IHostnameResolver} answering from a table that a test may change,
    at once, or, when C{hold} is set, when the test calls L{finish}.
    """

    def __init__(self, table=None, hold=False):
        self.table = dict(table or {})
        self.hold = hold
        self.asked: list[tuple[float, str, int]] = []
        self.pending = []
        self.clock = None

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        self.asked.append((self.clock.seconds() if self.clock else 0, hostName, portNumber))
        receiver.resolutionBegan(object())
        if self.hold:
            self.pending.append((receiver, hostName, portNumber))
        else:
            self._answer(receiver, hostName, portNumber)

    def _answer(self, receiver, hostName, portNumber):
        for host in self.table.get(hostName, []):
            receiver.addressResolved(IPv4Address("TCP", host, portNumber))
        receiver.resolutionComplete()

    def finish(self):
        pending, self.pending = self.pending, []
        for receiver, hostName, portNumber in pending:
            self._answer(receiver, hostName, portNumber)


def seedNode(resolver, reactor=None, port=PORT, **config) -> Node:
    """
    A started node on 127.0.0.1:C{port} whose only seed is C{NAME}, resolved
    by C{resolver}.
    """
    config.setdefault("interface", "127.0.0.1")
    reactor = reactor if reactor is not None else MemoryReactorClock()
    resolver.clock = reactor
    node = Node(
        NodeConfig(port=port, seeds=[f"{NAME}:{PORT}"], **config),
        reactor=reactor,
        rng=random.Random(port),
        resolver=resolver,
    )
    node.startService()
    return node


def askedAt(resolver) -> list[float]:
    return [when for when, host, port in resolver.asked]


class LogLines:
    def __init__(self, testCase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testCase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def count(self, text: str) -> int:
        return sum(1 for e in self.events if text in (e.get("log_format") or ""))


class FallbackTests(SynchronousTestCase):
    def test_constantsAreCoreLike(self):
        # Bitcoin Core skips its DNS seeds with 2 full outbound peers, and
        # waits 5 minutes when it has many addresses.
        self.assertEqual((SEED_ENOUGH_OUTBOUND, SEED_FALLBACK_S, SEED_RETRY_MAX_S), (2, 60, 300))

    def test_nameResolvedAgainWhileShortWithBackoffUpToTheBound(self):
        # The first pod of a fleet: the name stands for itself only.
        resolver = TableResolver({NAME: ["127.0.0.1"]})
        node = seedNode(resolver, seed_fallback_s=60, seed_retry_max_s=300)
        node.reactor.advance(0)
        for _ in range(40):
            node.reactor.advance(30)
        self.assertEqual(askedAt(resolver), [0, 60, 180, 420, 720, 1020])
        self.assertEqual({host for _, host, _ in resolver.asked}, {NAME})
        # Its own address is never a seed.
        self.assertEqual(len(node.book), 0)
        node.stopService()
        self.assertEqual(node.reactor.getDelayedCalls(), [])

    def test_podsThatComeLaterAreFoundAtTheNextFallback(self):
        resolver = TableResolver({NAME: ["127.0.0.1"]})
        node = seedNode(resolver, seed_fallback_s=60)
        self.assertEqual(len(node.book), 0)
        resolver.table[NAME] = ["127.0.0.1", "10.1.0.2", "10.2.0.3"]
        node.reactor.advance(59)
        self.assertEqual(len(node.book), 0)
        node.reactor.advance(1)
        later = {Address.of("10.1.0.2", PORT), Address.of("10.2.0.3", PORT)}
        self.assertEqual({info.address for info in node.book}, later)
        dialed = {Address.of(host, port) for host, port, *_ in node.reactor.tcpClients}
        self.assertEqual(dialed, later)

    def test_ownLoopbackAddressIsSkippedBehindAWildcardListener(self):
        resolver = TableResolver({NAME: ["127.0.0.5", "10.0.0.9"]})
        node = seedNode(resolver, interface="0.0.0.0")
        self.assertEqual({info.address for info in node.book}, {Address.of("10.0.0.9", PORT)})

    def test_anAddressFoundToBeOursIsSkipped(self):
        resolver = TableResolver({NAME: ["10.0.0.7", "10.0.0.9"]})
        reactor = MemoryReactorClock()
        resolver.clock = reactor
        node = Node(
            NodeConfig(port=PORT, interface="0.0.0.0", seeds=[f"{NAME}:{PORT}"], max_outbound=0),
            reactor=reactor,
            rng=random.Random(1),
            resolver=resolver,
        )
        node.connman.addOwn(Address.of("10.0.0.7", PORT))  # the pod's IP, once seen
        node.startService()
        self.assertEqual({info.address for info in node.book}, {Address.of("10.0.0.9", PORT)})

    def test_oneResolutionOfANameInFlightAtATime(self):
        resolver = TableResolver({NAME: ["10.0.0.2"]}, hold=True)
        node = seedNode(resolver, seed_fallback_s=10, seed_retry_max_s=10)
        for _ in range(7):  # three fallbacks while the first is unanswered
            node.reactor.advance(5)
        self.assertEqual(askedAt(resolver), [0])
        resolver.finish()
        self.assertIn(Address.of("10.0.0.2", PORT), node.book)
        node.reactor.advance(5)
        self.assertEqual(askedAt(resolver), [0, 40])

    def test_aFailingNameLogsOneLineUntilItResolvesAgain(self):
        logs = LogLines(self)
        resolver = TableResolver({})
        node = seedNode(resolver, seed_fallback_s=10, seed_retry_max_s=10)
        node.reactor.advance(10)
        node.reactor.advance(10)
        node.reactor.advance(10)
        self.assertEqual(len(resolver.asked), 4)
        self.assertEqual(logs.count("resolved to no address"), 1)
        resolver.table[NAME] = ["10.0.0.2"]
        node.reactor.advance(10)
        self.assertEqual(logs.count("resolves again"), 1)
        resolver.table[NAME] = []
        node.reactor.advance(10)
        node.reactor.advance(10)
        self.assertEqual(logs.count("resolved to no address"), 2)

    def test_stopsOnceItHasItsPeersAndStartsAgainWhenOneGoes(self):
        reactor = MemoryReactorClock()
        resolver = TableResolver({NAME: ["127.0.0.1"]})
        node = seedNode(resolver, reactor, seed_fallback_s=60, inactivity_timeout_s=10**6,
                        ping_interval_s=10**5)
        b = makeNode(6002, reactor, inactivity_timeout_s=10**6, ping_interval_s=10**5)
        c = makeNode(6003, reactor, inactivity_timeout_s=10**6, ping_interval_s=10**5)
        pumps = [linkNodes(b, node, reactor), linkNodes(c, node, reactor)]
        self.assertEqual(len(node.peers()), 2)
        self.assertFalse(node.discovery.shortOfPeers())
        for _ in range(20):
            reactor.advance(60)
            for pump in pumps:
                pump.flush()
        self.assertEqual(askedAt(resolver), [0])
        node.disconnect(b.node_id)
        for pump in pumps:
            pump.flush()
        self.assertEqual(len(node.peers()), 1)
        self.assertTrue(node.discovery.shortOfPeers())
        reactor.advance(60)
        self.assertEqual(askedAt(resolver), [0, 1260])

    def test_injectedResolverIsUsedRatherThanTheReactors(self):
        reactor = MemoryReactorClock()
        reactors = TableResolver({NAME: ["10.0.0.1"]})
        reactor.nameResolver = reactors
        injected = TableResolver({NAME: ["10.0.0.2"]})
        node = seedNode(injected, reactor)
        self.assertEqual((len(reactors.asked), len(injected.asked)), (0, 1))
        self.assertEqual({info.address for info in node.book}, {Address.of("10.0.0.2", PORT)})

    def test_connectModeNeverFallsBack(self):
        resolver = TableResolver({NAME: ["10.0.0.2"]})
        node = seedNode(resolver, connect=["10.9.9.9:5000"], seed_fallback_s=10)
        node.reactor.advance(100)
        self.assertEqual(resolver.asked, [])

    def test_noSeedsNoFallback(self):
        logs = LogLines(self)
        node = makeNode(PORT, seed_fallback_s=10)
        node.reactor.advance(100)
        self.assertEqual(logs.count("falling back"), 0)
        self.assertNotIn("_seedFallback", repr(node.reactor.getDelayedCalls()))

    def test_aResolverThatFailsAtOnceLeavesNothingInFlight(self):
        logs = LogLines(self)

        class Broken(TableResolver):
            def resolveHostName(self, receiver, hostName, *args, **kwargs):
                self.asked.append((self.clock.seconds(), hostName, 0))
                raise OSError("no DNS")

        resolver = Broken()
        node = seedNode(resolver, seed_fallback_s=10, seed_retry_max_s=10)
        node.reactor.advance(10)
        node.reactor.advance(10)
        self.assertEqual(askedAt(resolver), [0, 10, 20])
        self.assertEqual(logs.count("Cannot resolve seed"), 1)
