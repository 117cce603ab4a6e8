"""
L{bitp2p.testing}: real nodes on an in-memory network and a simulated clock.

The same module holds a trial C{TestCase} and plain pytest functions, as
application authors may write either: everything runs synchronously on the
simulated clock, so neither needs a running reactor.
"""

from __future__ import annotations

import pytest
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from bitp2p.address import Address
from bitp2p.testing import DEFAULT_LATENCY_S, LinkError, MemoryNetwork, TestNetwork


def peerIds(node) -> set[str]:
    return {peer.node_id for peer in node.peers()}


def knownFraction(net: TestNetwork, node) -> float:
    """
    The share of the other nodes of C{net} whose address C{node} knows.
    """
    others = {Address.of(net.ipOf(n), n.config.port) for n in net.nodes if n is not node}
    known = {info.address for info in node.book}
    return len(others & known) / len(others)


class GlobalReactorUntouched:
    """
    Records the global reactor's timers and file descriptors, to check that
    nothing was added to them.
    """

    def __init__(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.before = self.snapshot()

    def snapshot(self):
        r = self.reactor
        return set(r.getDelayedCalls()), set(r.getReaders()), set(r.getWriters())

    def added(self):
        return [now - then for now, then in zip(self.snapshot(), self.before)]


class TestNetworkTests(TestCase):
    """
    Under trial (and pytest, which runs trial TestCases too).
    """

    def makeNetwork(self, **kwargs) -> TestNetwork:
        net = TestNetwork(**kwargs)
        self.addCleanup(net.stop)
        return net

    def test_handshake(self):
        """
        Two nodes connect and exchange version and verack: each lists the
        other, by node id, as an established peer, after four one-way
        trips (dial, version, version and verack, verack) on the
        simulated clock; no socket or timer of the global reactor is used.
        """
        untouched = GlobalReactorUntouched()
        net = self.makeNetwork(seed=1)
        a, b = net.addNodes(2)
        self.assertEqual((a.node_id, b.node_id), ("n0", "n1"))
        self.assertEqual((net.addressOf(a), net.addressOf(b)), ("10.0.0.1:5000", "10.1.0.1:5000"))
        net.start()
        peer = net.connect(a, b)
        self.assertEqual(peer.node_id, "n1")
        self.assertEqual(peer.user_agent, b.config.user_agent)
        self.assertEqual(peerIds(a), {"n1"})
        self.assertEqual(peerIds(b), {"n0"})
        self.assertEqual([p["node_id"] for p in b.status()["peers"]], ["n0"])
        self.assertAlmostEqual(net.network.now, 4 * DEFAULT_LATENCY_S)
        # version, version, verack, verack, and the getaddr the dialer sends.
        self.assertGreaterEqual(net.messagesSent, 4)
        self.assertGreater(net.bytesSent, 0)
        self.assertEqual(untouched.added(), [set(), set(), set()])

    def test_ring(self):
        """
        C{linkRing} connects 20 nodes in a ring: each has exactly its two
        neighbours, and the graph is connected.
        """
        net = self.makeNetwork(seed=2)
        nodes = net.addNodes(20)
        net.start()
        self.assertFalse(net.isConnected())
        net.linkRing()
        self.assertTrue(net.isConnected())
        for i, node in enumerate(nodes):
            self.assertEqual(peerIds(node), {f"n{(i - 1) % 20}", f"n{(i + 1) % 20}"})

    def test_disconnect(self):
        """
        C{disconnect} cuts the link between two machines: both nodes see
        their peer go (their observers are told why) and
        nothing is left open between them; the link still works, and the
        dialer's connection manager dials again.
        """
        net = self.makeNetwork(seed=3)
        a, b = net.addNodes(2)
        gone = []
        a.observe(disconnected=lambda peer, reason: gone.append(("n0", peer.node_id, reason)))
        b.observe(disconnected=lambda peer, reason: gone.append(("n1", peer.node_id, reason)))
        net.start()
        net.connect(a, b)
        self.assertEqual(net.disconnect(a, b), 1)
        self.assertEqual(sorted(who for who, _, _ in gone), ["n0", "n1"])
        self.assertEqual({(who, them) for who, them, _ in gone}, {("n0", "n1"), ("n1", "n0")})
        for _, _, reason in gone:
            self.assertIn("the link was cut", str(reason))
        self.assertEqual((a.peers(), b.peers()), ([], []))
        self.assertEqual(net.network.connections(), [])
        self.assertTrue(net.runUntil(lambda: peerIds(a) == {"n1"}, timeout=60))

    def test_stop(self):
        """
        C{stop} stops every node and runs the clock until every connection
        is closed: no timer is left on the clock.
        """
        net = TestNetwork(seed=4)
        nodes = net.addNodes(12)
        net.start()
        net.linkRandom(degree=3)
        net.advance(120)
        self.assertTrue(net.network.getDelayedCalls())
        self.assertTrue(net.network.connections())
        net.stop()
        self.assertEqual(net.network.getDelayedCalls(), [])
        self.assertEqual(net.network.connections(), [])
        self.assertFalse(any(node.running for node in nodes))


def test_discovery_from_one_seed():
    """
    30 nodes, all but the first seeded with the first's address only, and
    knowing no other: within 2 simulated minutes every one knows at least
    80 % of the other addresses, and they form one connected network.
    """
    untouched = GlobalReactorUntouched()
    net = TestNetwork(seed=5)
    first = net.addNode()
    net.addNodes(29, seeds=(net.addressOf(first),))
    assert all(knownFraction(net, node) == 0 for node in net.nodes)
    net.start()
    try:
        assert net.runUntil(
            lambda: all(knownFraction(net, node) >= 0.8 for node in net.nodes),
            timeout=120,
            step=5,
        ), [round(knownFraction(net, node), 2) for node in net.nodes]
        assert net.isConnected()
        assert all(len(node.peers()) >= 1 for node in net.nodes)
    finally:
        net.stop()
    assert untouched.added() == [set(), set(), set()]


def test_keepalive():
    """
    Pings keep an established connection up over two simulated hours
    (the inactivity timeout is 10 minutes): the same peer, answered pings,
    round trips of twice the latency.
    """
    net = TestNetwork(seed=6)
    a, b = net.addNodes(2)
    net.start()
    try:
        peer = net.connect(a, b)
        since = peer.established_at
        net.advance(2 * 3600)
        assert a.peers() == [peer]
        assert peer.established_at == since
        assert peerIds(b) == {"n0"}
        assert peer.rtt_s == pytest.approx(2 * DEFAULT_LATENCY_S)
        # A ping every 30 s each way, and its pong.
        assert peer.messages_out >= 2 * 3600 / a.config.ping_interval_s
    finally:
        net.stop()
    assert net.network.getDelayedCalls() == []


def test_latency():
    """
    The latency is the network's, or a link's own.
    """
    net = TestNetwork(latency=0.5)
    a, b, c = net.addNodes(3)
    net.network.setLatency(net.ipOf(a), net.ipOf(c), 0.01)
    net.start()
    net.connect(a, b)
    assert net.network.now == pytest.approx(2.0)
    started = net.network.now
    net.connect(a, c)
    assert net.network.now - started == pytest.approx(0.1)  # runUntil's step
    net.advance(60)
    assert a.findPeer("n1").rtt_s == pytest.approx(1.0)
    assert a.findPeer("n2").rtt_s == pytest.approx(0.02)
    net.stop()


def test_partition_and_host_down():
    """
    Across a partition a dial times out; once healed it works. A host that
    is down refuses connections.
    """
    net = TestNetwork(seed=7)
    a, b, c = net.addNodes(3)
    network = net.network
    net.start()
    net.connect(a, b)
    assert network.partition(net.ipOf(a), net.ipOf(b)) == 1
    network.advance(0)
    assert a.peers() == [] and b.peers() == []
    with pytest.raises(LinkError, match="timeout"):
        net.connect(a, b)
    network.heal(net.ipOf(a), net.ipOf(b))
    assert net.connect(a, b).node_id == "n1"
    network.hostDown(net.ipOf(c))
    assert not network.host(net.ipOf(c)).up
    with pytest.raises(LinkError, match="refused"):
        net.connect(a, c)
    network.hostUp(net.ipOf(c))
    assert net.connect(a, c).node_id == "n2"
    net.stop()


def test_counters_and_determinism():
    """
    The bytes each host sent add up to the network's total; the same seed
    gives the same run, message for message.
    """

    def run() -> tuple:
        net = TestNetwork(seed=8)
        nodes = net.addNodes(10)
        net.start()
        net.linkRandom(degree=2)
        net.advance(120)
        hosts = [net.network.host(net.ipOf(node)) for node in nodes]
        assert sum(h.bytesSent for h in hosts) == net.bytesSent > 0
        assert sum(h.messagesSent for h in hosts) == net.messagesSent > 0
        figures = (net.messagesSent, net.bytesSent, [sorted(peerIds(n)) for n in nodes])
        net.stop()
        return figures

    assert run() == run()


def test_name_resolution():
    """
    Host names added to the network resolve, for seeds and for dialing.
    """
    net = TestNetwork(seed=9)
    a = net.addNode()
    net.network.addName("seed.example", net.ipOf(a))
    b = net.addNode(seeds=("seed.example:5000",))
    c = net.addNode()
    net.start()
    assert net.runUntil(lambda: "n0" in peerIds(b), timeout=30)
    with pytest.raises(LinkError):
        net.connect(c, net.addNode())  # not started
    results = []
    c.connect("seed.example", 5000).addBoth(results.append)
    assert net.runUntil(lambda: results, timeout=30)
    assert results[0].node_id == "n0"
    net.stop()


def test_interfaces():
    """
    The network and its hosts provide the reactor interfaces endpoints and
    nodes look for; connections provide C{ITCPTransport}.
    """
    network = MemoryNetwork()
    host = network.host("10.0.0.1")
    assert network.host("10.0.0.1") is host
    for interface in (IReactorTime, IReactorTCP, IReactorPluggableNameResolver):
        assert verifyObject(interface, host)
    for interface in (IReactorTime, IReactorTCP):
        assert verifyObject(interface, network)
    port = host.listenTCP(0, Factory())
    assert verifyObject(IListeningPort, port)
    assert port.getHost().host == "10.0.0.1"
    net = TestNetwork()
    a, b = net.addNodes(2)
    net.start()
    assert verifyObject(ITCPTransport, net.connect(a, b).wire.transport)
    net.stop()


def test_partitionSplitsGroupsUntilHealed():
    """
    A network split in two halves: each half stays connected within, no
    link crosses, and after healing the halves can be joined again.
    """
    net = TestNetwork(seed=3)
    nodes = net.addNodes(6, max_outbound=0)
    left, right = nodes[:3], nodes[3:]
    net.start()
    net.linkRing(nodes)
    assert net.partition(left, right) == 2  # the ring crosses twice
    assert not net.isConnected()
    for node in left:
        assert all(p.node_id in {n.node_id for n in left} for p in node.peers())
    with pytest.raises(LinkError):
        net.connect(left[0], right[0], timeout=30)
    net.heal(left, right)
    net.connect(left[0], right[0])
    assert net.isConnected()
    net.stop()


def test_memoryKnowsNoNodes():
    """
    The simulated clock and network (L{bitp2p.testing.memory}) import
    nothing of bitp2p: a reactor knows nothing of nodes.
    """
    import ast

    import bitp2p.testing.memory

    with open(bitp2p.testing.memory.__file__, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    imported = set()
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Import):
            imported.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            imported.add(statement.module or "")
    assert not {name for name in imported if name.split(".")[0] == "bitp2p"}, imported
