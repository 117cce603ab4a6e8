"""
The connection manager, rule by rule, on MemoryReactorClock: every dial the
node makes is answered by hand (refused, or accepted by a scripted remote
peer on a StringTransport), and every timer is driven by advancing the
clock.

Remote addresses are public (20.x.y.z, 30.x.y.z) unless a test is about
local networks: the node listens on 127.0.0.1, so loopback addresses in
127.0.0.0/16 are in its own group and exempt from the group rules.
"""

from __future__ import annotations

import functools
import json
import os

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from bitp2p import codec
from bitp2p.address import Address, network_group, parse_address
from bitp2p.constants import (
    ADDR_FETCH_TIMEOUT_S,
    FAST_LEARNING_MAX_ADDRESSES,
    FAST_LEARNING_WINDOW_S,
    RELAY_FANOUT,
    ANCHORS_FILE,
    BANLIST_FILE,
    MANUAL_RETRY_MAX_S,
    PEERS_FILE,
)
from bitp2p.node import Node, NodeConfig
from bitp2p.outbound import Learning
from bitp2p.peer import ConnectionType, Direction
from bitp2p.testing import EPOCH_2026, TestNetwork
from bitp2p.storage import encode_document

from . import helpers
from .helpers import Inbound, makeNode, receive, sent, tempDir
from .test_addrman import tried_colliding

DAY = 24 * 3600
# Addresses learned here are told by a public peer.
learn = functools.partial(helpers.learn, source="30.99.0.1")


def tick(node: Node, rounds: int = 1) -> None:
    """
    Let C{rounds} maintenance rounds run.
    """
    for _ in range(rounds):
        node.reactor.advance(node.config.maintenance_interval_s)


def dialed(reactor, since: int = 0) -> list[Address]:
    return [Address.of(host, port) for host, port, *_ in reactor.tcpClients[since:]]


class Remote:
    """
    The far end of one dial the node made, played by hand.
    """

    def __init__(self, reactor, index: int = -1) -> None:
        self.host, self.port, self.factory = reactor.tcpClients[index][:3]
        self.connector = reactor.connectors[index]
        self.address = Address.of(self.host, self.port)

    def refuse(self) -> None:
        self.factory.clientConnectionFailed(self.connector, ConnectionRefusedError())

    def accept(self, node_id: str | None = None, local: str = "127.0.0.1") -> Remote:
        """
        Take the connection and complete the handshake.
        """
        self.wire = self.factory.buildProtocol(IPv4Address("TCP", self.host, self.port))
        self.transport = StringTransport(
            hostAddress=IPv4Address("TCP", local, 40000),
            peerAddress=IPv4Address("TCP", self.host, self.port),
        )
        self.wire.makeConnection(self.transport)
        node_id = node_id or f"r-{self.host.replace('.', '-')}-{self.port}"
        receive(
            self.wire,
            {"type": "version", "node_id": node_id, "port": self.port},
            {"type": "verack"},
        )
        return self

    def send(self, *messages: dict) -> None:
        receive(self.wire, *messages)

    def sent(self) -> list[dict]:
        return sent(self.transport)

    @property
    def closing(self) -> bool:
        return self.transport.disconnecting

    def lose(self) -> None:
        self.wire.connectionLost(Failure(ConnectionDone()))


def entries(*addresses: Address, seen: int) -> dict:
    return codec.addr([(a, seen) for a in addresses])


def dialKind(reactor, index: int) -> ConnectionType:
    return reactor.tcpClients[index][2]._wrappedFactory.kind


def kinds(node: Node) -> list[str]:
    return sorted(p.kind.value for p in node.connections())


class OutboundGroupTests(SynchronousTestCase):
    def test_neverTwoOutboundPeersInOneNetworkGroup(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor)
        learn(node, *(Address.of(f"20.{g}.{i}.1", 5000) for g in range(3) for i in range(5)))
        tick(node)
        groups = [network_group(a) for a in dialed(reactor)]
        self.assertEqual(sorted(groups), ["20.0.0.0/16", "20.1.0.0/16", "20.2.0.0/16"])
        # The rule holds for dials in progress and for connections alike.
        for i in range(3):
            Remote(reactor, i).accept()
        reactor.advance(node.config.maintenance_interval_s * 5)
        self.assertEqual(len(dialed(reactor)), 3)

    def test_aNewGroupFillsAFreeSlot(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor)
        learn(node, Address.of("20.1.0.1", 5000), Address.of("20.1.0.2", 5000))
        tick(node)
        self.assertEqual(len(reactor.tcpClients), 1)
        learn(node, Address.of("20.2.0.1", 5000))
        reactor.advance(node.config.maintenance_interval_s)
        self.assertEqual(dialed(reactor, 1), [Address.of("20.2.0.1", 5000)])

    def test_privateAddressesOutsideOurGroupsFollowTheRule(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor)
        learn(node, *(Address.of(f"10.5.0.{i}", 5000) for i in range(1, 9)))
        learn(node, *(Address.of(f"127.5.0.{i}", 5000) for i in range(1, 9)), source="127.0.0.1")
        tick(node)
        self.assertEqual(
            sorted(network_group(a) for a in dialed(reactor)), ["10.5.0.0/16", "127.5.0.0/16"]
        )

    def test_manyNodesOnOurOwnAddressAreExempt(self):
        """
        Eight nodes on 127.0.0.1 (our own address, so our own group) can all
        be outbound peers: a network of nodes on one machine still forms.
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor)
        learn(node, *(Address.of("127.0.0.1", 7000 + i) for i in range(12)), source="127.0.0.1")
        tick(node)
        self.assertEqual(len(dialed(reactor)), node.config.max_outbound)
        self.assertEqual({a.host for a in dialed(reactor)}, {"127.0.0.1"})

    def test_groupOfTheLocalEndOfAConnectionBecomesLocal(self):
        """
        A node listening on all interfaces learns its own groups from the
        local ends of its connections: a private network it is on is local.
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, interface="0.0.0.0")
        learn(node, Address.of("10.7.0.1", 5000))
        tick(node)
        Remote(reactor, 0).accept(local="10.7.0.9")
        learn(node, *(Address.of(f"10.7.0.{i}", 5000) for i in range(2, 6)))
        reactor.advance(node.config.maintenance_interval_s)
        self.assertEqual(len(dialed(reactor)), 5)


class AnchorTests(SynchronousTestCase):
    def test_outboundPeersAtShutdownAreDialedFirstAtTheNextStart(self):
        datadir = os.path.join(tempDir(self), "d")
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, datadir=datadir, max_outbound=2, addnodes=["30.1.0.1:5000"])
        learn(node, Address.of("20.1.0.1", 5000), Address.of("20.2.0.1", 5000))
        tick(node)
        remotes = [Remote(reactor, i).accept() for i in range(len(reactor.tcpClients))]
        self.assertEqual(kinds(node), ["manual", "outbound", "outbound"])
        # Many more addresses known at shutdown, in other groups.
        learn(node, *(Address.of(f"20.{g}.0.1", 5000) for g in range(3, 60)))
        stopped = node.stopService()
        for remote in remotes:
            remote.lose()
        self.successResultOf(stopped)
        with open(os.path.join(datadir, ANCHORS_FILE), "rb") as f:
            header, body = f.read().splitlines()
        self.assertEqual(json.loads(header)["format"], "bitp2p-anchors")
        # Only automatic outbound peers: not the manual one.
        self.assertEqual(sorted(json.loads(body)), ["20.1.0.1:5000", "20.2.0.1:5000"])

        # At the next start the anchors come first, out of 59 addresses,
        # and the file is used once.
        reactor = MemoryReactorClock()
        second = makeNode(6001, reactor, datadir=datadir, max_outbound=2)
        self.assertEqual(len(second.book), 59)
        self.assertEqual(
            sorted(dialed(reactor)), [Address.of("20.1.0.1", 5000), Address.of("20.2.0.1", 5000)]
        )
        self.assertFalse(os.path.exists(os.path.join(datadir, ANCHORS_FILE)))

    def test_noOutboundPeersLeaveAnEmptyAnchorList(self):
        datadir = os.path.join(tempDir(self), "d")
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, datadir=datadir)
        self.successResultOf(node.stopService())
        with open(os.path.join(datadir, ANCHORS_FILE), "rb") as f:
            self.assertEqual(json.loads(f.read().splitlines()[1]), [])

    def test_damagedAnchorsFileIsSetAside(self):
        datadir = os.path.join(tempDir(self), "d")
        os.makedirs(datadir)
        with open(os.path.join(datadir, ANCHORS_FILE), "w") as f:
            f.write("garbage")
        reactor = MemoryReactorClock()
        makeNode(6001, reactor, datadir=datadir)
        self.assertEqual(reactor.tcpClients, [])
        self.assertEqual(
            len([n for n in os.listdir(datadir) if n.startswith(ANCHORS_FILE + ".damaged-")]), 1
        )


class FeelerTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.node = makeNode(6001, self.reactor, max_outbound=1, feeler_interval_s=60)
        learn(self.node, Address.of("20.1.0.1", 5000))
        tick(self.node)
        self.outbound = Remote(self.reactor, 0).accept()
        self.new = [Address.of(f"20.{g}.0.1", 5000) for g in range(2, 8)]
        learn(self.node, *self.new)

    def waitForFeeler(self) -> Remote:
        for _ in range(100):
            if len(self.reactor.tcpClients) > 1:
                break
            self.reactor.advance(self.node.config.maintenance_interval_s)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        return Remote(self.reactor, 1)

    def test_whileLearningTheTestIsAnAddressFetch(self):
        """
        While the address manager still grows, the test of a new address is
        an address fetch (protocol 1.1: it asks getaddr, takes the answer and
        closes), which promotes the address to tried as a feeler would.
        """
        fetch = self.waitForFeeler()
        self.assertEqual(dialKind(self.reactor, 1), ConnectionType.ADDR_FETCH)
        self.assertIn(fetch.address, self.new)
        self.assertFalse(self.node.book.get(fetch.address).in_tried)
        fetch.accept()
        self.assertTrue(self.node.book.get(fetch.address).in_tried)
        # Not a peer: not listed, and its getaddr answer ends it.
        self.assertNotIn(fetch.address, [p.address for p in self.node.peers()])
        self.assertIn({"type": "getaddr"}, fetch.sent())
        fetch.send(entries(Address.of("20.50.0.1", 5000), seen=int(self.reactor.seconds())))
        self.assertTrue(fetch.closing)
        self.assertIn(Address.of("20.50.0.1", 5000), self.node.book)
        fetch.lose()
        self.assertEqual(kinds(self.node), ["outbound"])

    def test_anAddressFetchWithoutAnAnswerClosesAfterItsTimeout(self):
        fetch = self.waitForFeeler().accept()
        self.reactor.advance(ADDR_FETCH_TIMEOUT_S - 0.1)
        self.assertFalse(fetch.closing)
        self.reactor.advance(0.1)
        self.assertTrue(fetch.closing)
        fetch.lose()
        self.assertEqual(self.node.shortLived.pending(), 0)

    def test_onceLearnedTheTestIsAFeelerThatAsksNothing(self):
        """
        Protocol 1.1: once nothing new came for C{learning_window_s}, the
        test is a plain feeler: it sends no getaddr and no addr, and closes
        right after the handshake, promoting the address to tried.
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_outbound=1, feeler_interval_s=60, learning_window_s=1)
        learn(node, Address.of("20.1.0.1", 5000))
        tick(node)
        Remote(reactor, 0).accept()
        new = [Address.of(f"20.{g}.0.1", 5000) for g in range(2, 8)]
        learn(node, *new)
        for _ in range(100):
            if len(reactor.tcpClients) > 1:
                break
            reactor.advance(node.config.maintenance_interval_s)
        self.assertEqual(dialKind(reactor, 1), ConnectionType.FEELER)
        feeler = Remote(reactor, 1).accept()
        self.assertTrue(feeler.closing)
        self.assertEqual([m["type"] for m in feeler.sent()], ["version", "verack"])
        self.assertTrue(node.book.get(feeler.address).in_tried)
        feeler.lose()
        self.assertEqual(node.shortLived.pending(), 0)

    def test_oneFeelerAtATimeAboutEveryInterval(self):
        """
        While a feeler is out no other starts; over an hour, with each
        answered at once, there are about 60 (one per minute, here).
        """
        self.waitForFeeler()
        self.reactor.advance(600)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        Remote(self.reactor, 1).refuse()
        start, count = self.reactor.seconds(), 0
        for _ in range(3600):
            self.reactor.advance(1)
            while len(self.reactor.tcpClients) > 2 + count:
                Remote(self.reactor, 2 + count).refuse()
                count += 1
        self.assertEqual(self.reactor.seconds() - start, 3600)
        self.assertTrue(30 <= count <= 90, count)
        self.assertEqual(self.node.outbound.feeler, None)

    def test_noFeelerWhileAnOutboundSlotIsFree(self):
        """
        Outbound dials that keep failing leave the slot free: feelers wait.
        """
        self.outbound.lose()
        answered = 1
        for _ in range(600):
            self.reactor.advance(1)
            while answered < len(self.reactor.tcpClients):
                Remote(self.reactor, answered).refuse()
                answered += 1
        self.assertGreater(answered, 3)
        kindsDialed = {dialKind(self.reactor, i) for i in range(1, len(self.reactor.tcpClients))}
        self.assertEqual(kindsDialed, {ConnectionType.OUTBOUND})

    def test_noFeelersWithoutOutboundSlots(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_outbound=0, feeler_interval_s=1)
        learn(node, *self.new)
        reactor.advance(600)
        self.assertEqual(reactor.tcpClients, [])


class FastLearningTests(SynchronousTestCase):
    """
    While its table is small (under C{FAST_LEARNING_MAX_ADDRESSES}) and
    grew within C{FAST_LEARNING_WINDOW_S}, a node fetches addresses about
    every C{FAST_FETCH_INTERVAL_S} instead of every C{feeler_interval_s}.
    """

    def runTests(self, node, reactor, seconds: float, grow: bool) -> list[ConnectionType]:
        """
        Run C{seconds}, answering each fetch with one new address when
        C{grow} (nothing otherwise); the kinds of the tests made.
        """
        made: list[ConnectionType] = []
        fresh = iter(Address.of(f"21.{i // 250}.{i % 250}.1", 5000) for i in range(10_000))
        for _ in range(int(seconds)):
            reactor.advance(1)
            while len(reactor.tcpClients) > 1 + len(made):
                index = 1 + len(made)
                made.append(dialKind(reactor, index))
                if grow:
                    test = Remote(reactor, index).accept()
                    test.send(entries(next(fresh), seen=int(reactor.seconds())))
                    test.lose()
                else:
                    Remote(reactor, index).refuse()
        return made

    def startNode(self, known: int):
        reactor = MemoryReactorClock()
        reactor.advance(1000)
        node = makeNode(6001, reactor, max_outbound=1)
        learn(node, Address.of("20.1.0.1", 5000))
        tick(node)
        Remote(reactor, 0).accept()
        for source in range(10):  # (one source fills 64 buckets at most)
            helpers.learn(
                node,
                *(Address.of(f"{40 + i % 100}.{i // 100}.0.1", 5000) for i in range(source, known, 10)),
                source=f"30.{source}.0.1",
            )
        return node, reactor

    def test_aSmallGrowingTableIsFetchedFromEveryFifteenSecondsOrSo(self):
        node, reactor = self.startNode(known=10)
        made = self.runTests(node, reactor, 600, grow=True)
        # About 600 / 15 = 40 (each between 7.5 and 22.5 s after the last,
        # plus up to a maintenance interval); at the feeler pace, ~5.
        self.assertTrue(25 <= len(made) <= 60, len(made))
        self.assertEqual(set(made), {ConnectionType.ADDR_FETCH})
        self.assertEqual(node._learning(reactor.seconds()), Learning.FAST)

    def test_aBigTableIsFetchedFromAtTheFeelerPace(self):
        node, reactor = self.startNode(known=FAST_LEARNING_MAX_ADDRESSES + 100)
        self.assertGreaterEqual(len(node.book), FAST_LEARNING_MAX_ADDRESSES)
        made = self.runTests(node, reactor, 600, grow=True)
        self.assertTrue(1 <= len(made) <= 15, made)
        self.assertEqual(set(made), {ConnectionType.ADDR_FETCH})
        self.assertEqual(node._learning(reactor.seconds()), Learning.SLOW)

    def test_theFastPaceEndsAMinuteAfterTheTableStoppedGrowing(self):
        node, reactor = self.startNode(known=10)
        made = self.runTests(node, reactor, FAST_LEARNING_WINDOW_S + 30, grow=False)
        self.assertEqual(node._learning(reactor.seconds()), Learning.SLOW)
        # The refused tests brought nothing: they were fetches at the fast
        # pace for a minute, then the feeler pace.
        later = self.runTests(node, reactor, 600, grow=False)
        self.assertTrue(3 <= len(made) <= 12, len(made))
        self.assertTrue(len(later) <= 15, len(later))

    def test_aRepeatedAddressIsNotGrowth(self):
        """
        Hearing again of an address it knows (put in a further bucket) is
        not learning.
        """
        node, reactor = self.startNode(known=10)
        node._bookGrew(True)
        reactor.advance(FAST_LEARNING_WINDOW_S + 1)
        self.assertEqual(node._learning(reactor.seconds()), Learning.SLOW)
        known = [info.address for info in node.book]
        # (What discovery does when the address manager took anything in.)
        for source in range(50):
            helpers.learn(node, *known, source=f"31.{source}.0.1")
            node._bookGrew(True)
        self.assertEqual(node._learning(reactor.seconds()), Learning.SLOW)
        learn(node, Address.of("23.1.0.1", 5000))
        node._bookGrew(True)
        self.assertEqual(node._learning(reactor.seconds()), Learning.FAST)


    def test_gossipIsNotLearning(self):
        """
        A table that grows only by relayed gossip (newcomers of a churning
        network) is not learning: the node's tests go back to plain
        feelers, which ask nothing, once no answer taught it anything for
        C{learning_window_s}.
        """
        node, reactor = self.startNode(known=10)
        reactor.advance(node.config.learning_window_s + 1)
        self.assertEqual(node._learning(reactor.seconds()), Learning.DONE)
        for i in range(20):
            learn(node, Address.of(f"24.{i}.0.1", 5000))
            node._bookGrew(False)
            reactor.advance(10)
        self.assertEqual(node._learning(reactor.seconds()), Learning.DONE)
        learn(node, Address.of("25.1.0.1", 5000))
        node._bookGrew(True)
        self.assertEqual(node._learning(reactor.seconds()), Learning.FAST)


    def test_aStragglerIsNotLearning(self):
        """
        An answer that adds less than C{LEARNING_MIN_GROWTH} of the table
        (a newcomer or two in a big network) is not learning; one that adds
        more is.
        """
        node, reactor = self.startNode(known=300)
        node._bookGrew(False)  # (the table as it stands is the high-water mark)
        reactor.advance(node.config.learning_window_s + 1)
        learn(node, Address.of("24.1.0.1", 5000), Address.of("24.2.0.1", 5000))
        node._bookGrew(True)
        self.assertEqual(node._learning(reactor.seconds()), Learning.DONE)
        learn(node, *(Address.of(f"25.{i}.0.1", 5000) for i in range(5)))
        node._bookGrew(True)
        self.assertEqual(node._learning(reactor.seconds()), Learning.FAST)


    def test_aBigTableIsLearningOnlyFromABigAnswer(self):
        """
        Once the table holds C{FAST_LEARNING_MAX_ADDRESSES}, an answer must
        add C{LEARNING_MIN_GROWTH_LARGE} of it (5 %), not 1 %, to be
        learning: there each fetch costs a quarter of a table.
        """
        node, reactor = self.startNode(known=FAST_LEARNING_MAX_ADDRESSES + 500)
        size = len(node.book)
        self.assertGreaterEqual(size, FAST_LEARNING_MAX_ADDRESSES)
        node._bookGrew(False)
        reactor.advance(node.config.learning_window_s + 1)

        def answer(first: int, share: float) -> float:
            before = len(node.book)
            count = int(before * share) + 1
            for source in range(10):  # (one source fills 64 buckets at most)
                learn(
                    node,
                    *(
                        Address.of(f"{120 + i % 100}.{200 + i // 100}.0.1", 5000)
                        for i in range(first + source, first + count, 10)
                    ),
                    source=f"31.{source}.0.1",
                )
            node._bookGrew(True)
            return (len(node.book) - before) / before

        grown = answer(0, 0.035)  # learning in a small table, not here
        self.assertTrue(0.01 < grown < 0.05, grown)
        self.assertEqual(node._learning(reactor.seconds()), Learning.DONE)
        grown = answer(1000, 0.065)
        self.assertGreaterEqual(grown, 0.05)
        self.assertEqual(node._learning(reactor.seconds()), Learning.SLOW)  # (big: not FAST)


class SmallNetworkTests(SynchronousTestCase):
    def test_everyNodeKnowsEveryOtherWithinTwoMinutes(self):
        """
        The goal for a small network: 40 nodes started one after the other
        over 40 seconds, each from the first as its only seed, on a clock
        that reads as a date: within two minutes of the first start every
        node knows every other's address.
        """
        with TestNetwork(seed=3, start=EPOCH_2026) as net:
            first = net.addNode()
            rest = net.addNodes(39, seeds=(net.addressOf(first),))
            nodes = [first, *rest]
            addresses = {parse_address(net.addressOf(node)) for node in nodes}
            for i, node in enumerate(nodes):
                net.network.callLater(i, node.startService)

            def everyoneKnowsEveryone() -> bool:
                return all(
                    addresses - {node.listeningAddress} <= {info.address for info in node.book}
                    for node in nodes
                )

            self.assertTrue(net.runUntil(everyoneKnowsEveryone, timeout=120, step=5))
            self.assertTrue(net.isConnected())


class TriedCollisionTests(SynchronousTestCase):
    """
    An address that worked but whose "tried" slot is taken waits while a
    feeler tests the old entry: the old one keeps its slot if it answers,
    loses it if not.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.reactor.advance(100 * DAY)
        self.node = makeNode(6001, self.reactor, max_outbound=1, feeler_interval_s=30)
        learn(self.node, Address.of("20.1.0.1", 5000))
        tick(self.node)
        Remote(self.reactor, 0).accept()
        self.old, self.new = tried_colliding(self.node.book)
        now = self.reactor.seconds()
        learn(self.node, self.old, self.new)
        self.node.book.good(self.old, now - 5 * 3600)
        self.node.connect(self.new.host, self.new.port)
        Remote(self.reactor, 1).accept()
        self.assertFalse(self.node.book.get(self.new).in_tried)
        self.assertIs(self.node.book.select_tried_collision(now), self.node.book.get(self.old))

    def feeler(self) -> Remote:
        for _ in range(1000):
            if len(self.reactor.tcpClients) > 2:
                break
            self.reactor.advance(1)
        feeler = Remote(self.reactor, 2)
        self.assertEqual(feeler.address, self.old)
        self.assertEqual(dialKind(self.reactor, 2), ConnectionType.FEELER)
        return feeler

    def test_oldEntryThatAnswersKeepsItsSlot(self):
        self.feeler().accept()
        tick(self.node)
        self.assertTrue(self.node.book.get(self.old).in_tried)
        self.assertFalse(self.node.book.get(self.new).in_tried)
        self.assertIsNone(self.node.book.select_tried_collision(self.reactor.seconds()))

    def test_oldEntryThatFailsGivesWay(self):
        self.feeler().refuse()
        self.reactor.advance(120)
        self.assertTrue(self.node.book.get(self.new).in_tried)
        self.assertFalse(self.node.book.get(self.old).in_tried)
        self.node.book.check()


class ManualTests(SynchronousTestCase):
    def test_addnodeIsRedialedWithBackoffUpToAMinute(self):
        reactor = MemoryReactorClock()
        makeNode(6001, reactor, addnodes=["30.1.0.1:5000"], maintenance_interval_s=1)
        times = []
        for _ in range(400):
            while len(times) < len(reactor.tcpClients):
                times.append(reactor.seconds())
                Remote(reactor, len(times) - 1).refuse()
            reactor.advance(1)
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertEqual(gaps[:7], [2, 4, 8, 16, 32, 60, 60])
        self.assertEqual(max(gaps), MANUAL_RETRY_MAX_S)

    def test_addnodeDoesNotTakeAnOutboundSlot(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_outbound=2, addnodes=["30.1.0.1:5000"])
        learn(node, *(Address.of(f"20.{g}.0.1", 5000) for g in range(5)))
        tick(node)
        for i in range(len(reactor.tcpClients)):
            Remote(reactor, i).accept()
        reactor.advance(node.config.maintenance_interval_s * 3)
        self.assertEqual(kinds(node), ["manual", "outbound", "outbound"])
        self.assertIn(Address.of("30.1.0.1", 5000), [p.address for p in node.peers()])

    def test_peersAreListedInConnectionOrderUntilTheyClose(self):
        reactor = MemoryReactorClock()
        hosts = ["30.1.0.1:5000", "30.2.0.1:5000", "30.3.0.1:5000"]
        node = makeNode(6001, reactor, addnodes=hosts)
        remotes = [Remote(reactor, i) for i in range(3)]
        remotes[2].accept()
        remotes[0].accept()
        self.assertEqual([p.address for p in node.peers()], [remotes[2].address, remotes[0].address])
        remotes[1].accept()
        remotes[0].lose()
        self.assertEqual([p.address for p in node.peers()], [remotes[2].address, remotes[1].address])
        self.assertIsNot(node.peers(), node.peers())

    def test_addnodeIsRedialedWhenItsConnectionDrops(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, addnodes=["30.1.0.1:5000"])
        remote = Remote(reactor, 0).accept()
        reactor.advance(30)
        self.assertEqual(len(reactor.tcpClients), 1)
        remote.lose()
        self.assertEqual(node.peers(), [])
        reactor.advance(10)
        self.assertEqual(dialed(reactor, 1), [Address.of("30.1.0.1", 5000)])

    def test_connectDialsOnlyThoseAddresses(self):
        reactor = MemoryReactorClock()
        node = makeNode(
            6001,
            reactor,
            connect=["30.1.0.1:5000", "30.2.0.1:5000"],
            seeds=["30.3.0.1:5000"],
            feeler_interval_s=1,
        )
        learn(node, *(Address.of(f"20.{g}.0.1", 5000) for g in range(5)))
        tick(node)
        Remote(reactor, 0).accept()
        Remote(reactor, 1).accept()
        reactor.advance(3600)
        self.assertEqual(
            sorted(dialed(reactor)), [Address.of("30.1.0.1", 5000), Address.of("30.2.0.1", 5000)]
        )
        self.assertEqual(kinds(node), ["manual", "manual"])


class SeednodeTests(SynchronousTestCase):
    def test_seednodeIsAskedForAddressesThenLeft(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, seednodes=["30.1.0.1:5000"], max_outbound=0)
        self.assertEqual(dialed(reactor), [Address.of("30.1.0.1", 5000)])
        remote = Remote(reactor, 0).accept()
        self.assertEqual(node.peers(), [])
        self.assertIn({"type": "getaddr"}, remote.sent())
        now = int(reactor.seconds())
        remote.send(entries(*(Address.of(f"20.{g}.0.1", 5000) for g in range(3)), seen=now))
        self.assertTrue(remote.closing)
        self.assertEqual(len(node.book), 4)  # the three and the seed node itself
        remote.lose()
        reactor.advance(3600)
        self.assertEqual(len(reactor.tcpClients), 1)

    def test_silentSeednodeIsLeftAfterItsTimeout(self):
        reactor = MemoryReactorClock()
        makeNode(6001, reactor, seednodes=["30.1.0.1:5000"], max_outbound=0)
        remote = Remote(reactor, 0).accept()
        reactor.advance(ADDR_FETCH_TIMEOUT_S)
        self.assertTrue(remote.closing)

    def test_unreachableSeednodeIsRetriedWhileNothingIsKnown(self):
        reactor = MemoryReactorClock()
        node = makeNode(
            6001, reactor, seednodes=["30.1.0.1:5000"], max_outbound=0, maintenance_interval_s=1
        )
        Remote(reactor, 0).refuse()
        reactor.advance(2)
        self.assertEqual(len(reactor.tcpClients), 2)
        learn(node, Address.of("20.1.0.1", 5000))
        Remote(reactor, 1).refuse()
        reactor.advance(3600)
        self.assertEqual(len(reactor.tcpClients), 2)

    def test_seednodesAreAskedOneAtATime(self):
        reactor = MemoryReactorClock()
        makeNode(6001, reactor, seednodes=["30.1.0.1:5000", "30.2.0.1:5000"], max_outbound=0)
        self.assertEqual(dialed(reactor), [Address.of("30.1.0.1", 5000)])
        remote = Remote(reactor, 0).accept()
        remote.send(entries(Address.of("20.1.0.1", 5000), seen=int(reactor.seconds())))
        self.assertEqual(len(reactor.tcpClients), 1)
        remote.lose()
        reactor.advance(5)
        self.assertEqual(dialed(reactor, 1), [Address.of("30.2.0.1", 5000)])


class InboundTests(SynchronousTestCase):
    def test_inboundFromOneGroupIsCapped(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_connections=48, max_outbound=8)
        self.assertEqual(node.config.inbound_group_cap, 5)
        accepted = [Inbound(node, "20.1.0.1", 40000 + i) for i in range(7)]
        self.assertEqual([i.refused for i in accepted], [False] * 5 + [True] * 2)
        self.assertFalse(Inbound(node, "20.2.0.1").refused)
        # A group in 127/8 other than ours counts like any other.
        self.assertEqual(
            [Inbound(node, "127.5.0.1", 40000 + i).refused for i in range(6)], [False] * 5 + [True]
        )

    def test_peersOnOurOwnAddressAreNotCapped(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_connections=48, max_outbound=8)
        accepted = [Inbound(node, "127.0.0.1", 40000 + i) for i in range(40)]
        self.assertFalse(any(i.refused for i in accepted))
        self.assertEqual(len(node.peers()), 40)

    def test_closedInboundFreesItsGroupSlot(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_connections=16, max_outbound=8, max_inbound_per_group=2)
        first, second = Inbound(node, "20.1.0.1", 1), Inbound(node, "20.1.0.2", 2)
        self.assertTrue(Inbound(node, "20.1.0.3", 3).refused)
        first.wire.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(Inbound(node, "20.1.0.3", 3).refused)
        del second

    def test_fullNodeEvictsFromTheMostRepresentedGroup(self):
        """
        With every slot taken by peers old and new from many groups, a
        newcomer evicts the youngest peer of the group holding the most.
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_connections=32, max_outbound=0, max_inbound_per_group=8)
        peers = []
        for i in range(24):  # one each from 24 groups, older
            peers.append(Inbound(node, f"20.{i}.0.1", 40000 + i))
            reactor.advance(1)
        for i in range(8):  # eight from one group, younger
            peers.append(Inbound(node, "30.1.0.1", 41000 + i))
            reactor.advance(0.1)
        self.assertFalse(any(p.transport.disconnecting for p in peers))
        self.assertEqual(len(node.peers()), 32)
        newcomer = Inbound(node, "40.1.0.1")
        self.assertFalse(newcomer.refused)
        evicted = [p for p in peers if p.transport.disconnecting]
        self.assertEqual(len(evicted), 1)
        self.assertEqual(evicted[0].transport.getPeer().host, "30.1.0.1")
        self.assertEqual(evicted[0].transport.getPeer().port, 41007)

    def fullOf24(self):
        """
        A node whose 24 inbound slots hold established peers, one from each
        of 24 groups, connected a second apart: the node, and the peers.
        """
        node = makeNode(6001, MemoryReactorClock(), max_connections=24, max_outbound=0)
        peers = []
        for i in range(24):
            peers.append(Inbound(node, f"20.{i}.0.1", 40000 + i))
            node.reactor.advance(1)
        return node, peers

    def test_aConnectionInItsHandshakeIsNotEvicted(self):
        """
        Newcomers arriving faster than a handshake takes would otherwise
        evict each other, the youngest, and none would finish.
        """
        node, peers = self.fullOf24()
        newcomers = []
        for i in range(6):
            wire = node.connman.admit(IPv4Address("TCP", f"30.{i}.0.1", 1))
            wire.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", f"30.{i}.0.1", 1)))
            newcomers.append(wire)
            # The evicted peer's socket goes (on the next turn of a reactor).
            for p in peers:
                if p.transport.disconnecting and p.wire.peer in node.connman:
                    p.wire.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(any(w.transport.disconnecting for w in newcomers))
        self.assertEqual(sum(p.transport.disconnecting for p in peers), 6)

    def test_oneEvictionAtATime(self):
        """
        While the last peer evicted has not gone, newcomers are refused: a
        burst read in one turn of the reactor cannot evict a peer each.
        """
        node, peers = self.fullOf24()
        self.assertFalse(Inbound(node, "30.1.0.1").refused)
        self.assertTrue(Inbound(node, "30.2.0.1").refused)
        [evicted] = [p for p in peers if p.transport.disconnecting]
        evicted.wire.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(Inbound(node, "30.2.0.1").refused)
        self.assertEqual(sum(p.transport.disconnecting for p in peers), 2)

    def test_aConnectionSilentPastTheGraceGoesFirst(self):
        """
        Silent connections holding every slot (an attacker's) would lock
        newcomers out until the handshake timeout: one still in its
        handshake after stale_handshake_s is replaced first, the oldest.
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_connections=8, max_outbound=0, stale_handshake_s=10)
        established = [Inbound(node, "20.1.0.1", 40000)]
        silent = []
        for i in range(7):
            wire = node.connman.admit(IPv4Address("TCP", f"30.{i}.0.1", 1))
            wire.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", f"30.{i}.0.1", 1)))
            silent.append(wire)
            reactor.advance(1)
        # Full; the oldest silent one has waited 7 s, within the grace
        # (and 8 candidates: eviction protects every established one).
        self.assertTrue(Inbound(node, "40.1.0.1").refused)
        reactor.advance(3.5)  # the oldest: 10.5 s, the next: 9.5 s
        newcomer = Inbound(node, "40.1.0.1")
        self.assertFalse(newcomer.refused)
        self.assertEqual([w.transport.disconnecting for w in silent], [True] + [False] * 6)
        self.assertIn("handshake", str(silent[0].peer.close_reason))
        self.assertFalse(established[0].transport.disconnecting)
        # A discouraged host still never evicts, even a silent one.
        reactor.advance(1)
        node.bans.discourage("50.1.0.1", reactor.seconds() + 3600)
        self.assertTrue(Inbound(node, "50.1.0.1").refused)
        self.assertFalse(silent[1].transport.disconnecting)



class _Churner:
    """
    An attacker's socket in L{ChurnTests}: it connects, holds the
    connection in its handshake (silent, or with a version and never a
    verack), and reconnects C{retry_s} after the node closes it or refuses
    it (issue 16, item 2).
    """

    def __init__(self, node, host: str, port: int, sendsVersion: bool, retry_s: float = 1.0):
        self.node, self.host, self.port = node, host, port
        self.sendsVersion, self.retry_s = sendsVersion, retry_s
        self.wire = None
        self.transport = None
        self.dueAt = 0.0

    def step(self, now: float) -> None:
        if self.wire is not None and self.transport.disconnecting:
            self.wire.connectionLost(Failure(ConnectionDone()))
            self.wire = None
            self.dueAt = now + self.retry_s
        if self.wire is None and now >= self.dueAt:
            self.port += 1
            address = IPv4Address("TCP", self.host, self.port)
            wire = self.node.connman.admit(address)
            if wire is None:
                self.dueAt = now + self.retry_s
                return
            self.wire = wire
            self.transport = StringTransport(peerAddress=address)
            wire.makeConnection(self.transport)
            if self.sendsVersion:
                receive(wire, {"type": "version", "node_id": "m-" + self.host.replace(".", "-"), "port": 0})


class ChurnTests(SynchronousTestCase):
    """
    Issue 16, item 2: connections that never finish their handshake, from
    4 hosts in each of 18 /16s (up to the group cap in each), each
    reconnecting 1 s after it is closed, held every inbound slot: the
    eviction of handshakes older than stale_handshake_s freed slots, but
    the attacker's reconnects took them, and honest newcomers were refused.
    Now the young handshakes of a group that keeps reconnecting give way to
    a newcomer from a quiet one.
    """

    def attack(
        self, sendsVersion: bool, honestHost=None, busy: int = 0, **config
    ) -> tuple[int, int]:
        """
        Run the attack for a minute, then 10 honest newcomers, each from a
        host of its own (or from C{honestHost(i)}) that dials, and dials
        again after 2 and 6 s (an honest node's backoff) if refused, while
        the attack goes on; first, C{busy} connections from the first
        honest host, each closed at once.

        @return: (newcomers established within 10 s, attacker connections
            in their handshake at the end).
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, **config)
        cap = node.config.inbound_group_cap
        attackers = [
            _Churner(node, f"30.{g}.0.{k + 1}", 40000 + 1000 * k, sendsVersion)
            for g in range(18)
            for k in range(cap)
        ]

        def run(seconds: float) -> None:
            for _ in range(int(seconds * 10)):
                reactor.advance(0.1)
                for churner in attackers:
                    churner.step(reactor.seconds())

        run(60)
        self.assertEqual(len(node.connman.connections()), node.config.inbound_slots)
        for n in range(busy):
            host = honestHost(0) if honestHost else "40.0.0.1"
            wire = node.connman.admit(IPv4Address("TCP", host, 30000 + n))
            if wire is not None:
                wire.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", host, 1)))
                wire.connectionLost(Failure(ConnectionDone()))
        served = 0
        for i in range(10):
            for wait in (0, 2, 4):
                run(wait)
                host = honestHost(i) if honestHost else f"40.{i}.0.1"
                honest = Inbound(node, host, 50000 + 10 * i + wait)
                if not honest.refused:
                    break
            if not honest.refused and not honest.transport.disconnecting:
                served += honest.wire.peer.established
            run(3)
        holding = sum(
            1
            for c in attackers
            if c.wire is not None and not c.transport.disconnecting and not c.wire.peer.established
        )
        return served, holding

    def test_reconnectingSilentHandshakesDoNotLockNewcomersOut(self):
        served, holding = self.attack(False, max_connections=20)
        self.assertEqual(served, 10)
        self.assertGreater(holding, 0)  # the attack went on all along

    def test_reconnectingVersionsWithoutVerackDoNotLockNewcomersOut(self):
        served, holding = self.attack(True, max_connections=20)
        self.assertEqual(served, 10)
        self.assertGreater(holding, 0)

    def test_newcomersFromOurOwnBusyHost(self):
        """
        A local address exempt from the group cap (our own /16: many nodes
        on one host) counts as quiet however often it connects.
        """
        served, holding = self.attack(False, lambda i: "127.0.0.1", 5000, max_connections=20)
        self.assertEqual(served, 10)
        self.assertGreater(holding, 0)

    def test_atTheDefaultLimits(self):
        served, holding = self.attack(False)
        self.assertEqual(served, 10)
        self.assertGreater(holding, 0)

    def test_aNewcomerAsBusyAsTheHandshakersEvictsNoOne(self):
        """
        Newcomers from one busy source (a thousand nodes starting on one
        host) do not evict each other's handshakes, which would let none
        of them finish.
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_connections=8, max_outbound=0, max_inbound_per_group=8)
        waiting = []
        for i in range(8):
            wire = node.connman.admit(IPv4Address("TCP", "30.1.0.1", 40000 + i))
            wire.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "30.1.0.1", 1)))
            waiting.append(wire)
        for i in range(20):
            reactor.advance(0.2)
            self.assertIsNone(node.connman.admit(IPv4Address("TCP", "30.1.0.1", 41000 + i)))
        self.assertFalse(any(w.transport.disconnecting for w in waiting))
        # One quiet newcomer: the busy group's oldest handshake gives way.
        self.assertFalse(Inbound(node, "40.1.0.1").refused)
        self.assertEqual([w.transport.disconnecting for w in waiting], [True] + [False] * 7)
        self.assertIn("reconnecting", str(waiting[0].peer.close_reason))

    def test_establishedPeersAreNotChurnVictims(self):
        """
        Only connections in their handshake give way to a quiet newcomer;
        established peers of a busy group are left to Bitcoin Core's rules
        (which protect all of 8).
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_connections=8, max_outbound=0, max_inbound_per_group=8)
        peers = [Inbound(node, "30.1.0.1", 40000 + i) for i in range(8)]
        for i in range(20):
            node.connman.admit(IPv4Address("TCP", "30.1.0.1", 41000 + i))
        self.assertTrue(Inbound(node, "40.1.0.1").refused)
        self.assertFalse(any(p.transport.disconnecting for p in peers))


class BanTests(SynchronousTestCase):
    def setUp(self):
        self.datadir = os.path.join(tempDir(self), "d")
        self.reactor = MemoryReactorClock()
        self.node = makeNode(6001, self.reactor, datadir=self.datadir)

    def test_bannedHostIsRefusedAtAccept(self):
        self.assertEqual(self.node.ban("20.1.2.3"), "20.1.2.3/32")
        self.assertTrue(Inbound(self.node, "20.1.2.3").refused)
        self.assertFalse(Inbound(self.node, "20.1.2.4").refused)

    def test_bannedSubnetIsNeverDialed(self):
        self.node.ban("20.1.0.0/16")
        learn(self.node, Address.of("20.1.0.1", 5000), Address.of("20.1.9.9", 5000))
        learn(self.node, Address.of("20.2.0.1", 5000))
        self.reactor.advance(600)
        self.assertEqual(dialed(self.reactor), [Address.of("20.2.0.1", 5000)])

    def test_banDisconnectsConnectedPeers(self):
        inbound = Inbound(self.node, "20.1.2.3")
        self.node.ban("20.1.0.0/16")
        self.assertTrue(inbound.transport.disconnecting)

    def test_addressesInABannedSubnetAreNotStored(self):
        self.node.ban("20.1.0.0/16")
        inbound = Inbound(self.node, "30.1.0.1")
        self.reactor.advance(10)  # a second token (a new connection has one)
        now = int(self.reactor.seconds())
        receive(
            inbound.wire,
            entries(Address.of("20.1.0.1", 5000), Address.of("20.2.0.1", 5000), seen=now),
        )
        self.assertNotIn(Address.of("20.1.0.1", 5000), self.node.book)
        self.assertIn(Address.of("20.2.0.1", 5000), self.node.book)

    def test_bansSurviveARestartAndExpire(self):
        self.node.ban("20.1.0.0/16", 3600)
        with open(os.path.join(self.datadir, BANLIST_FILE), "rb") as f:
            self.assertIn(b"20.1.0.0/16", f.read())
        self.successResultOf(self.node.stopService())
        reactor = MemoryReactorClock()
        reactor.advance(self.reactor.seconds())
        node = makeNode(6001, reactor, datadir=self.datadir)
        self.assertTrue(node.isBanned("20.1.2.3"))
        reactor.advance(3600)
        self.assertFalse(node.isBanned("20.1.2.3"))
        self.assertFalse(Inbound(node, "20.1.2.3").refused)

    def test_unbanLiftsTheBanAndIsSaved(self):
        self.node.ban("20.1.0.0/16")
        self.assertTrue(self.node.unban("20.1.0.0/16"))
        self.assertFalse(self.node.unban("20.1.0.0/16"))
        self.successResultOf(self.node.stopService())
        node = makeNode(6001, MemoryReactorClock(), datadir=self.datadir)
        self.assertFalse(node.isBanned("20.1.2.3"))

    def test_discouragementIsNotPersisted(self):
        now = self.reactor.seconds()
        self.node.bans.discourage("20.1.2.3", now + DAY)
        self.assertTrue(self.node.isDiscouraged("20.1.2.3"))
        self.successResultOf(self.node.stopService())
        node = makeNode(6001, MemoryReactorClock(), datadir=self.datadir)
        self.assertFalse(node.isDiscouraged("20.1.2.3"))

    def test_discouragedAddressIsNotDialed(self):
        self.node.bans.discourage("20.1.0.1", self.reactor.seconds() + DAY)
        learn(self.node, Address.of("20.1.0.1", 5000))
        self.reactor.advance(600)
        self.assertEqual(dialed(self.reactor), [])

    def test_badBanIsAClearError(self):
        for target in ("nonsense", "20.1.0.0/40", "20.1.2.3:5000"):
            self.assertRaises(ValueError, self.node.ban, target)
        self.assertRaises(ValueError, self.node.ban, "20.1.2.3", 0)


class GetaddrAnswerTests(SynchronousTestCase):
    """
    A getaddr is answered with min(1000, max(23 % of the table, min(table
    size, 100))) addresses, none terrible. (The address manager may drop a
    few of the addresses learned, on bucket collisions: the formula is
    checked against the size of the table.)
    """

    def answer(self, known: int, terrible: int = 0) -> tuple[int, int]:
        """
        @return: the size of the answer, and how many non-terrible
            addresses the table held.
        """
        reactor = MemoryReactorClock()
        reactor.advance(100 * DAY)
        node = makeNode(6001, reactor)
        now = reactor.seconds()
        addresses = [Address.of(f"20.{i % 250}.{i // 250}.1", 5000) for i in range(known)]
        for i in range(0, known, 50):
            batch = addresses[i : i + 50]
            node.book.add([(a, now) for a in batch], Address.of(f"30.{i // 50}.0.1", 5000), now)
        good = len(node.book)
        self.assertGreater(good, known * 0.95)
        old = [Address.of(f"40.{i}.0.1", 5000) for i in range(terrible)]
        node.book.add([(a, now - 31 * DAY) for a in old], Address.of("30.250.0.1", 5000), now)
        inbound = Inbound(node, "50.1.0.1")
        receive(inbound.wire, {"type": "getaddr"})
        [answer] = [m for m in sent(inbound.transport) if m["type"] == "addr"]
        got = {codec._entry(e)[0] for e in answer["peers"]}
        self.assertEqual(len(got), len(answer["peers"]))
        self.assertFalse(got & set(old))
        return len(got), good

    def test_aSmallTableIsHandedOutWhole(self):
        got, size = self.answer(50)
        self.assertEqual(got, size)

    def test_aLargeTableIsSampled(self):
        got, size = self.answer(1000)
        self.assertEqual(got, size * 23 // 100)
        self.assertLess(got, 240)

    def test_atMost1000(self):
        got, size = self.answer(5000)
        self.assertGreater(size * 23 // 100, 1000)
        self.assertEqual(got, 1000)

    def test_terribleAddressesAreLeftOut(self):
        got, size = self.answer(60, terrible=20)
        self.assertEqual(got, size)


class RelayTests(SynchronousTestCase):
    def test_relayTargetsStayFixedForADay(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_connections=40)
        for i in range(10):
            Inbound(node, f"20.{i}.0.1", 40000 + i)
        peers = node.peers()
        address = Address.of("30.1.0.1", 5000)
        hourly = [
            frozenset(node.discovery.relayTargets(address, peers, h * 3600)) for h in range(24 * 10)
        ]
        self.assertEqual({len(t) for t in hourly}, {2})
        changes = [h for h in range(1, len(hourly)) if hourly[h] != hourly[h - 1]]
        self.assertTrue(changes, "the targets never change")
        self.assertTrue(all(b - a == 24 for a, b in zip(changes, changes[1:])), changes)
        # Other addresses go other ways.
        others = {
            frozenset(node.discovery.relayTargets(Address.of(f"30.{i}.0.1", 5000), peers, 0))
            for i in range(30)
        }
        self.assertGreater(len(others), 5)

    def test_theSameAddressFromAnotherPeerTakesTheSameWay(self):
        reactor = MemoryReactorClock()
        reactor.advance(1000)
        node = makeNode(6001, reactor, max_connections=40)
        inbound = [Inbound(node, f"20.{i}.0.1", 40000 + i) for i in range(8)]
        for i in inbound:
            sent(i.transport)
        address = Address.of("30.1.0.1", 5000)
        now = int(reactor.seconds())
        receive(inbound[0].wire, entries(address, seen=now))
        first = {i for i in range(8) if any(m["type"] == "addr" for m in sent(inbound[i].transport))}
        # (New to the node, but it has no outbound peer to flood it to.)
        self.assertEqual(len(first), RELAY_FANOUT)
        # Sent again by a peer that was not a target: nobody new hears it.
        other = next(i for i in range(1, 8) if i not in first)
        receive(inbound[other].wire, entries(address, seen=now))
        again = {i for i in range(8) if any(m["type"] == "addr" for m in sent(inbound[i].transport))}
        self.assertTrue(again <= first, (first, again))


class AddrAcceptanceTests(SynchronousTestCase):
    def test_loopbackAddressesAreOnlyTakenFromLoopbackPeers(self):
        reactor = MemoryReactorClock()
        reactor.advance(1000)
        node = makeNode(6001, reactor)
        now = int(reactor.seconds())
        public = Inbound(node, "20.1.0.1")
        receive(public.wire, entries(Address.of("127.0.0.1", 7001), seen=now))
        self.assertNotIn(Address.of("127.0.0.1", 7001), node.book)
        local = Inbound(node, "127.0.0.1")
        receive(local.wire, entries(Address.of("127.0.0.1", 7001), seen=now))
        self.assertIn(Address.of("127.0.0.1", 7001), node.book)

    def test_timesInTheFutureOrMissingCountAsFiveDaysOld(self):
        reactor = MemoryReactorClock()
        reactor.advance(100 * DAY)
        node = makeNode(6001, reactor)
        inbound = Inbound(node, "20.1.0.1")
        reactor.advance(10)  # a second token (a new connection has one)
        now = int(reactor.seconds())
        receive(
            inbound.wire,
            codec.addr([(Address.of("30.1.0.1", 5000), now + DAY), (Address.of("30.2.0.1", 5000), None)]),
        )
        for host in ("30.1.0.1", "30.2.0.1"):
            seen = node.book.get(Address.of(host, 5000)).last_seen
            # Five days, and the two hours' penalty of relayed addresses.
            self.assertEqual(now - seen, 5 * DAY + 2 * 3600)

    def test_unsolicitedAddrFloodIsCutByTheTokenBucket(self):
        """
        An inbound peer that floods us gets its first address in (a new
        connection's one token), then 0.1 a second; an outbound peer's
        answer to our getaddr gets 1000 more.
        """
        reactor = MemoryReactorClock()
        reactor.advance(1000)
        node = makeNode(6001, reactor)
        now = int(reactor.seconds())
        flood = [Address.of(f"30.{i % 250}.{i // 250}.1", 5000) for i in range(5000)]
        inbound = Inbound(node, "20.1.0.1")
        for i in range(0, 3000, 1000):
            receive(inbound.wire, entries(*flood[i : i + 1000], seen=now))
        first = len(node.book)
        self.assertEqual(first, 1)
        reactor.advance(100)
        self.assertFalse(inbound.transport.disconnecting)
        receive(inbound.wire, entries(*flood[3000:4000], seen=now))
        self.assertEqual(len(node.book) - first, 10)

        learn(node, Address.of("20.2.0.1", 5000))
        tick(node)
        outbound = Remote(reactor, 0).accept()
        self.assertIn({"type": "getaddr"}, outbound.sent())
        before = len(node.book)
        outbound.send(entries(*flood[4000:5000], seen=now))
        # All 1000 are taken; one source's addresses share 64 buckets of
        # the "new" table, so some land on the same slot as another.
        self.assertGreater(len(node.book) - before, 800)


class PersistenceTests(SynchronousTestCase):
    def setUp(self):
        self.datadir = os.path.join(tempDir(self), "d")
        os.makedirs(self.datadir)
        self.path = os.path.join(self.datadir, PEERS_FILE)

    def aside(self) -> list[str]:
        return [n for n in os.listdir(self.datadir) if n.startswith(PEERS_FILE + ".damaged-")]

    def test_addressManagerSurvivesARestartWithItsTables(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, datadir=self.datadir, max_outbound=0)
        learn(node, *(Address.of(f"20.{g}.0.1", 5000) for g in range(20)))
        node.book.good(Address.of("20.3.0.1", 5000), reactor.seconds())
        self.successResultOf(node.stopService())
        again = makeNode(6001, MemoryReactorClock(), datadir=self.datadir, max_outbound=0)
        self.assertEqual(len(again.book), 20)
        self.assertTrue(again.book.get(Address.of("20.3.0.1", 5000)).in_tried)
        self.assertFalse(again.book.get(Address.of("20.4.0.1", 5000)).in_tried)
        again.book.check()

    def test_aFlippedByteIsCaughtByTheChecksum(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, datadir=self.datadir, max_outbound=0)
        learn(node, Address.of("20.1.0.1", 5000))
        self.successResultOf(node.stopService())
        with open(self.path, "rb") as f:
            data = bytearray(f.read())
        at = data.index(b"20.1.0.1")
        data[at] = ord("3")  # still valid JSON, a different address
        with open(self.path, "wb") as f:
            f.write(bytes(data))
        again = makeNode(6001, MemoryReactorClock(), datadir=self.datadir, max_outbound=0)
        self.assertEqual(len(again.book), 0)
        self.assertEqual(len(self.aside()), 1)
        self.assertTrue(again.running)

    def test_aForeignFileIsSetAside(self):
        with open(self.path, "wb") as f:
            f.write(encode_document("someone-else", 1, {"entries": []}))
        node = makeNode(6001, MemoryReactorClock(), datadir=self.datadir)
        self.assertEqual(len(node.book), 0)
        self.assertEqual(len(self.aside()), 1)

    def test_aNewerVersionIsSetAside(self):
        with open(self.path, "wb") as f:
            f.write(encode_document("bitp2p-peers", 99, {"entries": []}))
        makeNode(6001, MemoryReactorClock(), datadir=self.datadir)
        self.assertEqual(len(self.aside()), 1)

    def test_aVersion1PeersFileIsImported(self):
        """
        bitp2p 0.1's peers file: its addresses go to "new", those that
        worked to "tried".
        """
        old = {
            "version": 1,
            "saved_at": 5000,
            "addresses": {
                "version": 1,
                "addresses": [
                    {"addr": "20.1.0.1:5000", "last_seen": 4000, "last_tried": 4000,
                     "last_success": 4000, "attempts": 0},
                    {"addr": "20.2.0.1:5000", "last_seen": 4000, "last_tried": 0,
                     "last_success": 0, "attempts": 0},
                ],
            },
            "discouraged": {},
        }
        with open(self.path, "w") as f:
            json.dump(old, f)
        reactor = MemoryReactorClock()
        reactor.advance(5000)
        node = makeNode(6001, reactor, datadir=self.datadir, max_outbound=0)
        self.assertTrue(node.book.get(Address.of("20.1.0.1", 5000)).in_tried)
        self.assertFalse(node.book.get(Address.of("20.2.0.1", 5000)).in_tried)
        self.assertEqual(self.aside(), [])
        # Saved again in the new format.
        node.save()
        with open(self.path, "rb") as f:
            self.assertEqual(json.loads(f.readline())["version"], 2)


class ConfigTests(SynchronousTestCase):
    def test_badPeerOptionsAreRefused(self):
        for bad in (
            dict(addnodes=["nonsense"]),
            dict(connect=["20.1.0.1:99999"]),
            dict(seednodes=["20.1.0.1"]),
            dict(max_inbound_per_group=0),
            dict(address_manager="bogus"),
            dict(feeler_interval_s=0),
        ):
            self.assertRaises(ValueError, NodeConfig, **bad)

    def test_inboundGroupCapFollowsTheInboundSlots(self):
        self.assertEqual(NodeConfig().inbound_group_cap, (125 - 8) // 8)
        self.assertEqual(NodeConfig(max_connections=20).inbound_group_cap, 4)
        self.assertEqual(NodeConfig(max_inbound_per_group=3).inbound_group_cap, 3)

    def test_simpleAddressBookStillWorks(self):
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, address_manager="simple", max_outbound=2)
        learn(node, *(Address.of(f"20.{g}.0.1", 5000) for g in range(5)))
        tick(node)
        self.assertEqual(len(reactor.tcpClients), 2)
        Remote(reactor, 0).accept()
        self.assertEqual([p.direction for p in node.peers()], [Direction.OUTBOUND])
