"""
The node service in memory: nodes on MemoryReactorClock, connections through
twisted.test.iosim, every timer driven by hand.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os

import attrs

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bitp2p import codec
from bitp2p.address import Address
from bitp2p.constants import RELAY_FANOUT
from bitp2p.errors import ConnectFailed, NotRunning, SelfConnection
from bitp2p.node import Node, NodeConfig
from bitp2p.peer import ConnectionType, Direction
from bitp2p.storage import DataDirInUse, encode_document

from .helpers import learn, linkNodes, makeNode, tempDir


def fullMesh(count: int, reactor) -> tuple[list[Node], list]:
    """
    C{count} nodes on ports 6000 and up, each linked to every other, with
    no address rate limit to speak of; their iosim pumps.
    """
    nodes = [makeNode(6000 + i, reactor, addr_rate_per_s=1000) for i in range(count)]
    pumps = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            pumps.append(linkNodes(a, b, reactor))
    return nodes, pumps


class LifecycleTests(SynchronousTestCase):
    def test_listensOnConfiguredInterfaceAndPort(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor)
        [(port, factory, backlog, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (6001, "127.0.0.1"))
        self.assertEqual(node.listeningAddress, Address.of("127.0.0.1", 6001))

    def test_builtInSeedsAreTheOriginalDesignsButOurOwnPort(self):
        reactor = MemoryReactorClock()
        makeNode(5001, reactor, seeds=None, interface="0.0.0.0")
        dialed = sorted((host, port) for host, port, *_ in reactor.tcpClients)
        self.assertEqual(dialed, [("127.0.0.1", 5000), ("127.0.0.1", 5002), ("127.0.0.1", 5003)])

    def test_configuredSeedsAreDialedAtStart(self):
        reactor = MemoryReactorClock()
        makeNode(6001, reactor, seeds=["10.0.0.1:7000", "[2001:db8::1]:7001"])
        dialed = sorted((host, port) for host, port, *_ in reactor.tcpClients)
        self.assertEqual(dialed, [("10.0.0.1", 7000), ("2001:db8::1", 7001)])

    def test_noSeedsMeansNoDialing(self):
        reactor = MemoryReactorClock()
        makeNode(6001, reactor)
        reactor.advance(3600)
        self.assertEqual(reactor.tcpClients, [])

    def test_stopClosesEverythingAndLeavesNoTimer(self):
        reactor = MemoryReactorClock()
        a = makeNode(6001, reactor)
        b = makeNode(6002, reactor)
        pump = linkNodes(a, b, reactor)
        self.assertEqual(len(a.peers()), 1)
        d = a.stopService()
        pump.flush()
        self.successResultOf(d)
        self.successResultOf(b.stopService())
        self.assertEqual(a.peers(), [])
        self.assertEqual(b.peers(), [])
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_connectWhenNotRunningFails(self):
        node = Node(NodeConfig(port=0, seeds=()), reactor=MemoryReactorClock())
        self.failureResultOf(node.connect("127.0.0.1", 5000), NotRunning)

    def test_invalidConfigurationIsRefusedWithOneLine(self):
        for bad in (
            {"port": 70000},
            {"max_outbound": -1},
            {"ping_interval_s": 0},
            {"seeds": ["nonsense"]},
        ):
            with self.assertRaises(ValueError) as caught:
                NodeConfig(**bad)
            self.assertNotIn("\n", str(caught.exception))


class ConnectionTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.a = makeNode(6001, self.reactor)
        self.b = makeNode(6002, self.reactor)

    def test_twoNodesEachListTheOther(self):
        linkNodes(self.a, self.b, self.reactor)
        [peerOfA] = self.a.status()["peers"]
        [peerOfB] = self.b.status()["peers"]
        self.assertEqual(peerOfA["node_id"], self.b.node_id)
        self.assertEqual(peerOfB["node_id"], self.a.node_id)
        self.assertEqual(peerOfA["direction"], "inbound")
        self.assertEqual(peerOfB["direction"], "outbound")
        self.assertEqual(peerOfB["address"], "127.0.0.1:6001")
        self.assertEqual(peerOfA["address"], "127.0.0.1:6002")
        for record in (peerOfA, peerOfB):
            self.assertGreater(record["bytes_in"], 0)
            self.assertGreater(record["bytes_out"], 0)
            self.assertGreater(record["messages_in"], 0)
            self.assertTrue(record["user_agent"].startswith("/bitp2p:"))

    def test_advertisedAddressesAreLearned(self):
        linkNodes(self.a, self.b, self.reactor)
        self.assertIn(Address.of("127.0.0.1", 6002), self.a.book)
        self.assertIn(Address.of("127.0.0.1", 6001), self.b.book)
        self.assertEqual(self.b.book.get(Address.of("127.0.0.1", 6001)).attempts, 0)
        # b dialed a: a's address worked, so it is in "tried".
        self.assertTrue(self.b.book.get(Address.of("127.0.0.1", 6001)).in_tried)

    def test_observersAreToldOfConnectAndDisconnect(self):
        events = []
        stop = self.a.observe(
            connected=lambda p: events.append(("up", p.node_id)),
            disconnected=lambda p, why: events.append(("down", p.node_id, str(why))),
        )
        pump = linkNodes(self.a, self.b, self.reactor)
        self.a.disconnect(self.b.node_id[:6])
        pump.flush()
        self.assertEqual(
            events, [("up", self.b.node_id), ("down", self.b.node_id, "disconnected by request")]
        )
        stop()
        linkNodes(self.a, self.b, self.reactor)
        self.assertEqual(len(events), 2)

    def test_disconnectUnknownPeerRaisesLookupError(self):
        self.assertRaises(LookupError, self.a.disconnect, "nobody")

    def test_duplicateConnectionIsClosed(self):
        linkNodes(self.a, self.b, self.reactor)
        events = []
        self.b.observe(connected=events.append)
        pump = linkNodes(self.a, self.b, self.reactor, serverPort=6001)
        self.assertEqual(len(self.a.peers()), 1)
        self.assertEqual(len(self.b.peers()), 1)
        self.assertEqual(events, [])
        closed = [p for p in self.b.connections() if p.close_reason is not None]
        self.assertEqual(closed, [])  # the newer connection is already gone
        self.assertTrue(pump.clientIO.disconnected or pump.serverIO.disconnected)

    def test_simultaneousDialsLeaveExactlyOneConnection(self):
        for _ in range(2):  # whichever node has the smaller id
            one = linkNodes(self.a, self.b, self.reactor, greet=False)
            two = linkNodes(self.b, self.a, self.reactor, greet=False)
            for _ in range(20):
                one.pump()
                two.pump()
            self.assertEqual([p.node_id for p in self.a.peers()], [self.b.node_id])
            self.assertEqual([p.node_id for p in self.b.peers()], [self.a.node_id])
            [kept] = self.a.peers()
            smaller = min(self.a, self.b, key=lambda n: n.node_id)
            self.assertEqual(
                kept.direction, Direction.OUTBOUND if smaller is self.a else Direction.INBOUND
            )
            self.a.disconnect(self.b.node_id)
            one.flush()
            two.flush()
            self.assertEqual(self.a.peers(), [])
            self.a, self.b = self.b, self.a

    def test_selfConnectionIsClosedAndNotDialedAgain(self):
        address = Address.of("127.0.0.1", 6001)
        learn(self.a, address)
        server = self.a
        linkNodes(server, self.a, self.reactor)
        self.assertEqual(self.a.peers(), [])
        self.assertNotIn(address, self.a.book)
        self.failureResultOf(self.a.connect("127.0.0.1", 6001), SelfConnection)

    def test_connectFiresWithThePeerAfterHandshake(self):
        d = self.b.connect("127.0.0.1", 6001)
        [(host, port, factory, timeout, bindAddress)] = [
            c for c in self.reactor.tcpClients if c[1] == 6001
        ]
        self.assertNoResult(d)
        from twisted.test import iosim

        serverWire = self.a.connman.admit(IPv4Address("TCP", "127.0.0.1", 50000))
        clientWire = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6001))
        iosim.connect(
            serverWire,
            iosim.FakeTransport(serverWire, True, IPv4Address("TCP", "127.0.0.1", 6001),
                                IPv4Address("TCP", "127.0.0.1", 50000)),
            clientWire,
            iosim.FakeTransport(clientWire, False, IPv4Address("TCP", "127.0.0.1", 50000),
                                IPv4Address("TCP", "127.0.0.1", 6001)),
            clock=self.reactor,
        )
        peer = self.successResultOf(d)
        self.assertEqual(peer.node_id, self.a.node_id)

    def test_connectFailureIsClearAndCountedAgainstTheAddress(self):
        learn(self.b, Address.of("127.0.0.1", 6009))
        d = self.b.connect("127.0.0.1", 6009)
        [connector] = [c for c in self.reactor.connectors]
        factory = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(connector, ConnectionRefusedError())
        failure = self.failureResultOf(d, ConnectFailed)
        self.assertIn("cannot connect to 127.0.0.1:6009", str(failure.value))
        info = self.b.book.get(Address.of("127.0.0.1", 6009))
        self.assertEqual((info.failures, info.last_tried), (1, self.reactor.seconds()))


class LimitTests(SynchronousTestCase):
    def test_inboundBeyondTheLimitIsRefused(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_connections=3, max_outbound=1)
        accepted = [
            node.connman.admit(IPv4Address("TCP", "127.0.0.1", 50000 + i)) for i in range(3)
        ]
        self.assertEqual([w is not None for w in accepted], [True, True, False])

    def test_fullNodeEvictsItsYoungestInboundPeerForANewcomer(self):
        # 24 inbound slots: Bitcoin Core's rules protect 16 peers outright
        # (here, as pings and groups tie, the oldest, and the 4 youngest,
        # whose self-advertisements were the last news) and half of the
        # rest by uptime: the youngest of those left goes.
        reactor = MemoryReactorClock()
        hub = makeNode(6000, reactor, max_connections=25, max_outbound=1)
        nodes = [makeNode(6001 + i, reactor) for i in range(25)]
        pumps = []
        for node in nodes[:24]:
            pumps.append(linkNodes(hub, node, reactor))
            reactor.advance(10)
            for pump in pumps:
                pump.flush()
        linkNodes(hub, nodes[24], reactor)
        for pump in pumps:
            pump.flush()
        kept = {p.node_id for p in hub.peers()}
        self.assertEqual(len(kept), 24)
        self.assertIn(nodes[24].node_id, kept)
        [evicted] = [n for n in nodes[:24] if n.node_id not in kept]
        self.assertEqual(evicted.peers(), [])
        self.assertIs(evicted, nodes[19])
        # The running counts of connections by kind match a recount.
        for node in (hub, *nodes):
            for kind in ConnectionType:
                self.assertEqual(
                    node.connman.count(kind), sum(p.kind is kind for p in node.connections())
                )

    def test_discouragedHostNeverEvicts(self):
        reactor = MemoryReactorClock()
        hub = makeNode(6000, reactor, max_connections=3, max_outbound=1)
        for i in range(2):
            linkNodes(hub, makeNode(6001 + i, reactor), reactor)
        hub.bans.discourage("10.6.6.6", reactor.seconds() + 100)
        self.assertIsNone(hub.connman.admit(IPv4Address("TCP", "10.6.6.6", 1)))
        self.assertEqual(len(hub.peers()), 2)

    def test_maintenanceKeepsAtMostMaxOutboundDials(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_outbound=3)
        learn(node, *(Address.of(f"10.{i}.0.1", 5000) for i in range(10)))
        reactor.advance(node.config.maintenance_interval_s)
        self.assertEqual(len(reactor.tcpClients), 3)
        reactor.advance(node.config.maintenance_interval_s)
        self.assertEqual(len(reactor.tcpClients), 3)

    def test_failedAddressIsRetriedWithBackoff(self):
        reactor = MemoryReactorClock()
        makeNode(6001, reactor, seeds=["10.0.0.1:5000"], maintenance_interval_s=1)
        dialTimes = []
        for _ in range(40):
            while len(dialTimes) < len(reactor.tcpClients):
                dialTimes.append(reactor.seconds())
                factory = reactor.tcpClients[-1][2]
                factory.clientConnectionFailed(reactor.connectors[-1], ConnectionRefusedError())
            reactor.advance(1)
        gaps = [b - a for a, b in zip(dialTimes, dialTimes[1:])]
        # 2, 4, 8, 16 s, each spread down to half (the maintenance round,
        # every second, rounds it up).
        self.assertGreaterEqual(len(gaps), 4)
        for gap, delay in zip(gaps, [2, 4, 8, 16]):
            self.assertTrue(delay / 2 <= gap <= delay, gaps)

    def test_retryDelaysAreSpreadDifferentlyOnEachNode(self):
        """
        Nodes that lost their links across a cut at the same moment do not
        retry them in step: each spreads a retry delay by its own factor in
        [0.5, 1), fixed for the try.
        """
        from bitp2p.addrman import AddrInfo

        a, b = makeNode(6001), makeNode(6002)
        source = Address.of("10.99.0.1", 5000)
        infos = [
            AddrInfo(address=Address.of(f"10.{i}.0.1", 5000), source=source, last_tried=100.0, failures=3)
            for i in range(50)
        ]
        spreadA = [a.outbound.spread(info) for info in infos]
        self.assertTrue(all(0.5 <= f < 1 for f in spreadA))
        self.assertEqual(spreadA, [a.outbound.spread(info) for info in infos])  # fixed for a try
        self.assertNotEqual(spreadA, [b.outbound.spread(info) for info in infos])
        self.assertGreater(max(spreadA) - min(spreadA), 0.25)  # spread, not one value
        later = attrs.evolve(infos[0], last_tried=200.0)
        self.assertNotEqual(a.outbound.spread(later), spreadA[0])  # a new try, a new factor

    def test_repeatedViolationsDiscourageTheHost(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_connections=10, max_outbound=0, discourage_threshold=3)
        from twisted.test import proto_helpers

        for i in range(3):
            wire = node.connman.admit(IPv4Address("TCP", "10.9.9.9", 40000 + i))
            wire.makeConnection(
                proto_helpers.StringTransport(peerAddress=IPv4Address("TCP", "10.9.9.9", 1))
            )
            wire.dataReceived(b"garbage\n")
            self.assertTrue(wire.transport.disconnecting)
        self.assertTrue(node.isDiscouraged("10.9.9.9", reactor.seconds()))
        self.assertFalse(node.isDiscouraged("10.9.9.8", reactor.seconds()))
        reactor.advance(24 * 3600)
        self.assertFalse(node.isDiscouraged("10.9.9.9", reactor.seconds()))


class GossipTests(SynchronousTestCase):
    def test_freshSmallAddrIsRelayedToTwoOtherPeers(self):
        """
        A fresh address the hub already knew goes on to C{RELAY_FANOUT}
        (2) of its other peers; one new to it (a newcomer's announcement)
        to those and to every peer the hub dialed (its full outbound
        peers).
        """
        for known in (True, False):
            reactor = MemoryReactorClock()
            reactor.advance(1000)
            hub = makeNode(6000, reactor, addr_rate_per_s=1000)
            others = [makeNode(6001 + i, reactor, addr_rate_per_s=1000) for i in range(7)]
            # others[0] (the source) and others[4:] dial the hub; the hub
            # dials others[1:4].
            pumps = [
                linkNodes(other, hub, reactor) if 1 <= i <= 3 else linkNodes(hub, other, reactor)
                for i, other in enumerate(others)
            ]
            for node in [hub, *others]:
                for peer in node.peers():
                    peer.wire.transport.getOutBuffer()
            fresh = Address.of("10.20.30.40", 5000)
            if known:
                hub.book.add([(fresh, reactor.seconds() - 3600)], fresh, reactor.seconds())
            source = others[0].peers()[0]
            reactor.advance(1)
            now = int(reactor.seconds())
            source.send(codec.addr([(fresh, now)]))
            for pump in pumps:
                pump.flush()
            hubPeers = [p for p in hub.peers() if p.node_id != others[0].node_id]
            hashed = {p.node_id for p in hub.discovery.relayTargets(fresh, hubPeers, now)}
            expected = set(hashed)
            if not known:
                expected |= {other.node_id for other in others[1:4]}
            learned = {node.node_id for node in others[1:] if fresh in node.book}
            self.assertEqual(learned, expected, known)
            self.assertEqual(len(hashed), RELAY_FANOUT)
            self.assertIn(fresh, hub.book)

    def test_relayStopsWhenEveryoneKnows(self):
        reactor = MemoryReactorClock()
        nodes, pumps = fullMesh(4, reactor)
        fresh = Address.of("10.20.30.40", 5000)
        nodes[0].peers()[0].send(codec.addr([(fresh, int(reactor.seconds()))]))
        for _ in range(10):
            for pump in pumps:
                pump.flush()
        before = sum(p.messages_out for n in nodes for p in n.peers())
        for pump in pumps:
            pump.flush()
        after = sum(p.messages_out for n in nodes for p in n.peers())
        self.assertEqual(before, after)
        self.assertEqual(sum(fresh in n.book for n in nodes[1:]), 3)

    def test_relayGoesOnlyToPeersThatDoNotKnowTheAddress(self):
        reactor = MemoryReactorClock()
        hub = makeNode(6000, reactor, addr_rate_per_s=1000)
        x, y, z = (makeNode(6001 + i, reactor, addr_rate_per_s=1000) for i in range(3))
        pumps = [linkNodes(hub, other, reactor) for other in (x, y, z)]
        fresh = Address.of("10.20.30.40", 5000)
        reactor.advance(1)
        # x tells the hub first (the hub relays it to y and z, the only
        # others); then y tells it again, with a newer time: news, but every
        # other peer of the hub already knows it, so nothing more is sent.
        x.findPeer(hub.node_id).send(codec.addr([(fresh, int(reactor.seconds()))]))
        for pump in pumps:
            pump.flush()
        self.assertTrue(all(fresh in n.book for n in (y, z)))
        sentBefore = {p.node_id: p.messages_out for p in hub.peers()}
        reactor.advance(5)
        y.findPeer(hub.node_id).send(codec.addr([(fresh, int(reactor.seconds()))]))
        for pump in pumps:
            pump.flush()
        self.assertEqual({p.node_id: p.messages_out for p in hub.peers()}, sentBefore)

    def test_periodicReadvertisementsStopAtTheFirstHop(self):
        """
        In a full mesh, the first advertisement of a node spreads; once every
        link has carried its address, its later advertisements (each news:
        a newer time) reach its direct peers and go no further.
        """
        reactor = MemoryReactorClock()
        nodes, pumps = fullMesh(5, reactor)

        def addrMessagesAfterAdvertising() -> int:
            before = sum(p.wire.bytesOut for n in nodes for p in n.peers())
            counts = {id(p): p.messages_out for n in nodes for p in n.peers()}
            reactor.advance(1)  # a newer time, and no ping or maintenance yet
            nodes[0].advertiseAll()
            for _ in range(5):
                for pump in pumps:
                    pump.flush()
            self.assertGreater(sum(p.wire.bytesOut for n in nodes for p in n.peers()), before)
            return sum(p.messages_out - counts[id(p)] for n in nodes for p in n.peers())

        for _ in range(3):
            addrMessagesAfterAdvertising()
        self.assertEqual(addrMessagesAfterAdvertising(), 4)  # node 0 to its 4 peers, no relay

    def test_getaddrAnswerHoldsKnownAddressesButNotTheAsker(self):
        reactor = MemoryReactorClock()
        reactor.advance(1000)
        a = makeNode(6001, reactor)
        learn(a, *(Address.of(f"10.0.0.{i + 1}", 5000) for i in range(5)), seen=999)
        b = makeNode(6002, reactor)
        linkNodes(a, b, reactor)
        for i in range(5):
            self.assertIn(Address.of(f"10.0.0.{i + 1}", 5000), b.book)
        self.assertNotIn(Address.of("127.0.0.1", 6002), b.book)

    def test_applicationHandlersReceiveTheirMessages(self):
        reactor = MemoryReactorClock()
        a, b = makeNode(6001, reactor), makeNode(6002, reactor)
        got = []
        a.registerMessage("chat", lambda peer, message: got.append((peer.node_id, message)))
        pump = linkNodes(a, b, reactor)
        self.assertEqual(b.sendAll({"type": "chat", "text": "hi"}), 1)
        pump.flush()
        self.assertEqual(got, [(b.node_id, {"type": "chat", "text": "hi"})])
        self.assertRaises(ValueError, a.registerMessage, "ping", lambda p, m: None)

    def test_unhandledTypesAreIgnoredAndLoggedOncePerConnection(self):
        from twisted.logger import globalLogPublisher

        reactor = MemoryReactorClock()
        a, b = makeNode(6001, reactor), makeNode(6002, reactor)
        pump = linkNodes(a, b, reactor)
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        for n in range(3):
            b.sendAll({"type": "nobody-handles-this", "n": n})
        pump.flush()
        ignoring = [e for e in events if "Ignoring" in e.get("log_format", "")]
        self.assertEqual(len(ignoring), 1)
        self.assertEqual(a.findPeer(b.node_id).messages_ignored, 3)
        self.assertEqual(len(a.peers()), 1)

    def test_broadcastReachesEveryPeerAndEncodesOnce(self):
        reactor = MemoryReactorClock()
        hub = makeNode(6001, reactor)
        others = [makeNode(6002 + i, reactor) for i in range(3)]
        got = []
        pumps = []
        for other in others:
            other.registerMessage("news", lambda peer, message: got.append(message))
            pumps.append(linkNodes(hub, other, reactor))
        encoded = []
        original = codec.encode
        self.patch(codec, "encode", lambda m: encoded.append(m["type"]) or original(m))
        self.assertEqual(hub.sendAll({"type": "news", "n": 1}), 3)
        self.assertEqual(encoded, ["news"])
        for pump in pumps:
            pump.flush()
        self.assertEqual(got, [{"type": "news", "n": 1}] * 3)

    def test_pingLoopMeasuresRoundTrips(self):
        reactor = MemoryReactorClock()
        a, b = makeNode(6001, reactor), makeNode(6002, reactor)
        pump = linkNodes(a, b, reactor)
        reactor.advance(a.config.ping_interval_s)
        pump.flush()
        self.assertIsNotNone(a.status()["peers"][0]["rtt_s"])


class DataDirLockTests(SynchronousTestCase):
    """
    Two nodes never share a data directory: the second is refused with one
    line, in this process or in another, until the first stops or dies.
    """

    def test_secondNodeOnTheSameDataDirectoryIsRefusedUntilTheFirstStops(self):
        datadir = os.path.join(tempDir(self), "d")
        first = makeNode(6001, MemoryReactorClock(), datadir=datadir)
        with self.assertRaises(DataDirInUse) as caught:
            makeNode(6002, MemoryReactorClock(), datadir=datadir)
        self.assertEqual(str(caught.exception), f"data directory {datadir} is in use by another node")
        self.successResultOf(first.stopService())
        second = makeNode(6002, MemoryReactorClock(), datadir=datadir)
        self.assertEqual(second.node_id, first.node_id)
        self.successResultOf(second.stopService())

    def test_aDataDirectoryDroppedWithoutUnlockLetsGo(self):
        """
        Like a file object, a L{DataDir} that is dropped (a node built and
        never started, a store that failed half-way) releases its lock.
        """
        from bitp2p.storage import DataDir

        datadir = os.path.join(tempDir(self), "d")
        held = DataDir(datadir)
        with self.assertRaises(DataDirInUse):
            DataDir(datadir)
        del held
        gc.collect()
        DataDir(datadir).unlock()

    def test_aNodeRestartedTakesTheLockAgain(self):
        datadir = os.path.join(tempDir(self), "d")
        node = makeNode(6001, MemoryReactorClock(), datadir=datadir)
        self.successResultOf(node.stopService())
        node.startService()
        with self.assertRaises(DataDirInUse):
            makeNode(6002, MemoryReactorClock(), datadir=datadir)
        self.successResultOf(node.stopService())

    def test_aRestartRefusedTheDirectoryDoesNotListen(self):
        """
        A stopped node whose directory another node took meanwhile is
        refused at its restart before it listens: not left half-started.
        """
        datadir = os.path.join(tempDir(self), "d")
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, datadir=datadir)
        self.successResultOf(node.stopService())
        other = makeNode(6002, MemoryReactorClock(), datadir=datadir)
        listening = len(reactor.tcpServers)
        with self.assertRaises(DataDirInUse):
            node.startService()
        self.assertEqual(len(reactor.tcpServers), listening)
        self.assertFalse(node.running)
        self.successResultOf(other.stopService())

    def test_aNodeInAnotherProcessHoldsTheLockUntilItEnds(self):
        import subprocess
        import sys

        datadir = os.path.join(tempDir(self), "d")
        script = (
            "import sys\n"
            "from twisted.internet.testing import MemoryReactorClock\n"
            "from bitp2p.node import Node, NodeConfig\n"
            "node = Node(NodeConfig(port=6001, seeds=(), datadir=sys.argv[1]),"
            " reactor=MemoryReactorClock())\n"
            "node.startService()\n"
            "print('started', flush=True)\n"
            "sys.stdin.read()\n"
        )
        for end in ("exit", "kill"):
            holder = subprocess.Popen(
                [sys.executable, "-c", script, datadir],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            try:
                self.assertEqual(holder.stdout.readline(), b"started\n")
                with self.assertRaises(DataDirInUse):
                    Node(NodeConfig(port=6002, seeds=(), datadir=datadir), reactor=MemoryReactorClock())
                if end == "kill":
                    holder.kill()
                holder.stdin.close()
                holder.wait(30)
            finally:
                if holder.poll() is None:
                    holder.kill()
                    holder.wait(30)
                holder.stdout.close()
                if not holder.stdin.closed:
                    holder.stdin.close()
            node = makeNode(6002, MemoryReactorClock(), datadir=datadir)
            self.successResultOf(node.stopService())


class PersistenceTests(SynchronousTestCase):
    def test_nodeIdAndAddressBookSurviveARestart(self):
        datadir = os.path.join(tempDir(self), "d")
        reactor = MemoryReactorClock()
        first = makeNode(6001, reactor, datadir=datadir)
        learn(first, Address.of("10.1.1.1", 5000), seen=100)
        first.book.good(Address.of("10.1.1.1", 5000), 100)
        self.successResultOf(first.stopService())
        second = makeNode(6001, MemoryReactorClock(), datadir=datadir)
        self.assertEqual(second.node_id, first.node_id)
        self.assertEqual(second.book.get(Address.of("10.1.1.1", 5000)).last_success, 100)

    def test_savedBookIsUsedBeforeSeeds(self):
        datadir = os.path.join(tempDir(self), "d")
        first = makeNode(6001, MemoryReactorClock(), datadir=datadir)
        learn(first, Address.of("10.1.1.1", 5000), seen=100)
        self.successResultOf(first.stopService())
        reactor = MemoryReactorClock()
        makeNode(6001, reactor, datadir=datadir, seeds=["10.2.2.2:5000"])
        self.assertEqual([c[:2] for c in reactor.tcpClients], [("10.1.1.1", 5000)])
        reactor.advance(60)
        self.assertIn(("10.2.2.2", 5000), [c[:2] for c in reactor.tcpClients])

    def test_peersFileIsWrittenPeriodically(self):
        datadir = os.path.join(tempDir(self), "d")
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, datadir=datadir, save_interval_s=10)
        learn(node, Address.of("10.1.1.1", 5000))
        path = os.path.join(datadir, "peers.json")
        self.assertFalse(os.path.exists(path))
        reactor.advance(10)
        with open(path, "rb") as f:
            header, body = f.read().splitlines()
        header = json.loads(header)
        self.assertEqual((header["format"], header["version"]), ("bitp2p-peers", 2))
        self.assertEqual(header["sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(json.loads(body)["entries"][0]["addr"], "10.1.1.1:5000")
        self.assertEqual([n for n in os.listdir(datadir) if "tmp" in n], [])

    def test_bookIsSavedSoonAfterItDoubles(self):
        """
        Addresses learned from a peer are saved C{growth_save_delay_s}
        later, long before the periodic save, each time the book has
        doubled since the last save; smaller growth waits for the period.
        """
        datadir = os.path.join(tempDir(self), "d")
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, datadir=datadir, growth_save_delay_s=5, addr_rate_per_s=1000)
        teller = makeNode(6002, reactor, addr_rate_per_s=1000)
        pump = linkNodes(node, teller, reactor)
        path = os.path.join(datadir, "peers.json")

        def tell(*hosts):
            now = int(reactor.seconds())
            teller.findPeer(node.node_id).send(
                codec.addr([(Address.of(h, 5000), now) for h in hosts])
            )
            pump.flush()

        def saved():
            with open(path, "rb") as f:
                return {e["addr"] for e in json.loads(f.read().splitlines()[1])["entries"]}

        # The teller advertised itself at the handshake: 1 address, not
        # saved (one is not twice none: seeds and the first peer alone do
        # not make a save).
        self.assertEqual(len(node.book), 1)
        reactor.advance(60)
        self.assertFalse(os.path.exists(path))
        tell("10.1.1.1", "10.2.1.1", "10.3.1.1")
        reactor.advance(4.9)
        self.assertFalse(os.path.exists(path))
        reactor.advance(0.1)
        self.assertEqual(len(saved()), 4)
        self.assertIn("10.3.1.1:5000", saved())
        # 4 saved: 7 is not twice as many, so it waits for the period...
        tell("10.4.1.1", "10.5.1.1", "10.6.1.1")
        reactor.advance(60)
        self.assertEqual(len(saved()), 4)
        # ...8 is, and is saved 5 s later.
        tell("10.7.1.1")
        reactor.advance(5)
        self.assertEqual(len(saved()), 8)
        # A stop cancels a pending growth save (and saves anyway).
        tell(*(f"10.{i}.2.2" for i in range(8, 20)))
        self.assertTrue(node.store.growthSavePending)
        stopped = node.stopService()
        pump.flush()
        self.successResultOf(stopped)
        self.assertEqual(len(saved()), 20)
        self.assertFalse(node.store.growthSavePending)

    def test_damagedPeersFileIsSetAsideAndNodeStartsClean(self):
        datadir = os.path.join(tempDir(self), "d")
        os.makedirs(datadir)
        with open(os.path.join(datadir, "peers.json"), "w") as f:
            f.write("{truncated")
        node = makeNode(6001, MemoryReactorClock(), datadir=datadir)
        self.assertEqual(len(node.book), 0)
        aside = [n for n in os.listdir(datadir) if n.startswith("peers.json.damaged-")]
        self.assertEqual(len(aside), 1)
        self.assertFalse(os.path.exists(os.path.join(datadir, "peers.json")))
        self.flushLoggedErrors()

    def test_structurallyWrongPeersFileIsSetAside(self):
        datadir = os.path.join(tempDir(self), "d")
        os.makedirs(datadir)
        with open(os.path.join(datadir, "peers.json"), "wb") as f:
            f.write(encode_document("bitp2p-peers", 2, {"entries": "not a list"}))
        node = makeNode(6001, MemoryReactorClock(), datadir=datadir)
        self.assertEqual(len(node.book), 0)
        self.assertEqual(
            len([n for n in os.listdir(datadir) if n.startswith("peers.json.damaged-")]), 1
        )

    def test_damagedNodeIdIsReplaced(self):
        datadir = os.path.join(tempDir(self), "d")
        os.makedirs(datadir)
        with open(os.path.join(datadir, "node_id"), "w") as f:
            f.write("not a valid id!\n")
        node = makeNode(6001, MemoryReactorClock(), datadir=datadir)
        with open(os.path.join(datadir, "node_id")) as f:
            self.assertEqual(f.read().strip(), node.node_id)
        self.assertEqual(len([n for n in os.listdir(datadir) if "damaged" in n]), 1)


class FakeResolver:
    """
    An IHostnameResolver answering from a fixed table, synchronously.
    """

    def __init__(self, table):
        self.table = table
        self.asked = []

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        from twisted.internet.address import IPv6Address

        self.asked.append((hostName, portNumber))
        receiver.resolutionBegan(object())
        for host in self.table.get(hostName, []):
            kind = IPv6Address if ":" in host else IPv4Address
            receiver.addressResolved(kind("TCP", host, portNumber))
        receiver.resolutionComplete()


class BootstrapTests(SynchronousTestCase):
    def test_seedHostNameStandsForAllItsAddresses(self):
        reactor = MemoryReactorClock()
        reactor.nameResolver = FakeResolver(
            {"seeds.example": ["10.0.0.1", "10.1.0.1", "2001:db8::5"]}
        )
        node = makeNode(6001, reactor, seeds=["seeds.example:7000"])
        self.assertEqual(reactor.nameResolver.asked, [("seeds.example", 7000)])
        expected = {
            Address.of("10.0.0.1", 7000),
            Address.of("10.1.0.1", 7000),
            Address.of("2001:db8::5", 7000),
        }
        self.assertEqual({info.address for info in node.book}, expected)
        dialed = {Address.of(host, port) for host, port, *_ in reactor.tcpClients}
        self.assertEqual(dialed, expected)

    def test_ownAddressIsAdvertisedPeriodically(self):
        reactor = MemoryReactorClock()
        a = makeNode(6001, reactor, advertise_interval_s=600, inactivity_timeout_s=10_000,
                     ping_interval_s=10_000)
        b = makeNode(6002, reactor, inactivity_timeout_s=10_000, ping_interval_s=10_000)
        pump = linkNodes(a, b, reactor)
        [peer] = b.peers()
        before = peer.messages_in
        reactor.advance(599)
        pump.flush()
        self.assertEqual(peer.messages_in, before)
        reactor.advance(1)
        pump.flush()
        self.assertEqual(peer.messages_in, before + 1)
        # b keeps a's last-seen time up to date, within the hour, as
        # Bitcoin Core does (more often would tell who is connected to whom).
        reactor.advance(3600)
        pump.flush()
        self.assertGreater(b.book.get(Address.of("127.0.0.1", 6001)).last_seen, 3600)


class TrafficTotalsTests(SynchronousTestCase):
    def test_peersGoneStayCountedAndTypesAreBounded(self):
        from bitp2p import accounting

        reactor = MemoryReactorClock()
        a, b = makeNode(6001, reactor), makeNode(6002, reactor)
        a.registerMessage("chat", lambda peer, message: None)
        pump = linkNodes(a, b, reactor)
        b.sendAll({"type": "chat", "text": "hi"})
        pump.flush()
        line = len(b'{"type":"chat","text":"hi"}\n')
        self.assertEqual(a.trafficTotals()[("in", "chat")], [1, line])
        b.disconnect(a.node_id)
        pump.flush()
        self.assertEqual(a.peers(), [])
        self.assertEqual(a.trafficTotals()[("in", "chat")], [1, line])
        self.assertEqual(a.trafficTotals()[("in", "version")][0], 1)
        totals: dict = {}
        self.patch(accounting, "MAX_TRAFFIC_KEYS", 3)
        accounting.mergeTraffic(
            totals, {}, {"a": [1, 10, 0, 0], "b": [1, 10, 0, 0], "c": [2, 20, 0, 0], "d": [3, 30, 0, 0]}
        )
        self.assertEqual(totals, {"a": [1, 10], "b": [1, 10], "*other*": [5, 50]})


class CrashTests(SynchronousTestCase):
    """
    L{Node.crash}: a stop as a crashed process's, for the lab's kill and
    for tests.
    """

    def test_aCrashResetsEverythingSavesNothingAndLetsTheDirectoryGo(self):
        datadir = os.path.join(tempDir(self), "d")
        clock = MemoryReactorClock()
        node = makeNode(6001, clock, datadir=datadir)
        other = makeNode(6002, clock)
        pump = linkNodes(node, other, clock)
        [peer] = node.peers()
        learn(node, Address.of("10.1.2.3", 8333))
        dial = node.connect("127.0.0.1", 6003)
        node.crash()
        pump.flush()
        self.assertFalse(node.running)
        self.assertTrue(peer.transport.disconnected)
        self.assertEqual(node.peers(), [])
        self.assertEqual(other.peers(), [])
        self.failureResultOf(dial, ConnectFailed)
        self.assertFalse([timer for timer in node if timer.running])  # no timer left
        # Nothing saved: no address table, no anchors (an orderly stop writes both).
        self.assertFalse(os.path.exists(os.path.join(datadir, "peers.json")))
        self.assertFalse(os.path.exists(os.path.join(datadir, "anchors.json")))
        # The directory is free, as after a process's death; a node built
        # on it again has the same id.
        again = makeNode(6001, MemoryReactorClock(), datadir=datadir)
        self.assertEqual(again.node_id, node.node_id)
        self.successResultOf(again.stopService())
        self.successResultOf(other.stopService())
