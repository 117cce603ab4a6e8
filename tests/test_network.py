"""
Real nodes on loopback sockets, in this process, with shortened intervals:
the original design's results and more.

These are trial TestCases run by the real reactor; they run under trial and
under pytest. Every wait is bounded.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from bitp2p.address import Address, network_group
from bitp2p.node import Node, NodeConfig
from bitp2p.peer import ConnectionType

from .helpers import tempDir

# Intervals shortened so that discovery plays out in seconds, not minutes.
FAST = dict(
    maintenance_interval_s=0.1,
    advertise_interval_s=0.5,
    addr_rate_per_s=1000.0,
    seed_fallback_s=2.0,
)


class NetworkTestCase(TestCase):
    timeout = 90

    def startNode(self, **config) -> Node:
        for key, value in FAST.items():
            config.setdefault(key, value)
        config.setdefault("seeds", ())
        config.setdefault("interface", "127.0.0.1")
        node = Node(NodeConfig(port=0, **config))
        node.startService()
        self.addCleanup(self.stopNode, node)
        return node

    def stopNode(self, node: Node):
        if node.running:
            return node.stopService()

    async def waitFor(self, predicate, what: str, seconds: float = 30.0) -> None:
        """
        Poll C{predicate} every 50 ms until it holds; fail after C{seconds}.
        """
        for _ in range(int(seconds / 0.05)):
            if predicate():
                return
            await task.deferLater(reactor, 0.05)
        self.fail(f"timed out after {seconds} s waiting for {what}")


def peerIds(node: Node) -> set[str]:
    return {peer.node_id for peer in node.peers()}


def knows(node: Node, others) -> bool:
    return all(o.listeningAddress in node.book for o in others if o is not node)


def graphConnected(nodes) -> bool:
    byId = {n.node_id: n for n in nodes}
    seen = {nodes[0].node_id}
    todo = [nodes[0]]
    while todo:
        for nid in peerIds(todo.pop()):
            if nid in byId and nid not in seen:
                seen.add(nid)
                todo.append(byId[nid])
    return len(seen) == len(nodes)


class OriginalDesignTests(NetworkTestCase):
    @defer.inlineCallbacks
    def test_twoNodesConnectAndEachListsTheOther(self):
        a = self.startNode()
        b = self.startNode()
        peer = yield b.connect("127.0.0.1", a.listeningAddress.port)
        self.assertEqual(peer.node_id, a.node_id)
        yield defer.ensureDeferred(
            self.waitFor(lambda: peerIds(a) == {b.node_id}, "a to list b")
        )
        [seenByA] = a.status()["peers"]
        [seenByB] = b.status()["peers"]
        self.assertEqual(seenByA["node_id"], b.node_id)
        self.assertEqual(seenByA["direction"], "inbound")
        self.assertEqual(seenByA["address"], str(b.listeningAddress))
        self.assertEqual(seenByB["node_id"], a.node_id)
        self.assertEqual(seenByB["direction"], "outbound")
        self.assertEqual(seenByB["address"], str(a.listeningAddress))

    @defer.inlineCallbacks
    def test_fourNodesBecomeAFullMeshThroughDiscovery(self):
        a, b, c, d = nodes = [self.startNode() for _ in range(4)]
        for dialer, target in ((a, b), (b, c), (b, d), (c, d)):
            yield dialer.connect("127.0.0.1", target.listeningAddress.port)
        yield defer.ensureDeferred(
            self.waitFor(
                lambda: all(len(n.peers()) == 3 for n in nodes), "a full mesh of four"
            )
        )
        for n in nodes:
            self.assertEqual(peerIds(n), {o.node_id for o in nodes if o is not n})
            self.assertTrue(knows(n, nodes))

    @defer.inlineCallbacks
    def test_tenNodesFromOneSeedAllConnectAndKnowEachOther(self):
        seed = self.startNode()
        seedAddress = str(seed.listeningAddress)
        nodes = [seed] + [self.startNode(seeds=[seedAddress]) for _ in range(10)]
        yield defer.ensureDeferred(
            self.waitFor(
                lambda: all(knows(n, nodes) for n in nodes) and graphConnected(nodes),
                "eleven nodes to know each other and form one connected graph",
                seconds=60,
            )
        )
        for n in nodes:
            self.assertGreaterEqual(len(n.peers()), 3, n.status()["peers"])


class PersistenceTests(NetworkTestCase):
    @defer.inlineCallbacks
    def test_restartedNodeKeepsItsIdAndReconnectsWithoutSeeds(self):
        a = self.startNode()
        datadir = os.path.join(tempDir(self), "d")
        b = self.startNode(datadir=datadir)
        yield b.connect("127.0.0.1", a.listeningAddress.port)
        yield b.stopService()
        yield defer.ensureDeferred(self.waitFor(lambda: not a.peers(), "a to see b leave"))
        again = self.startNode(datadir=datadir, seeds=())
        self.assertEqual(again.node_id, b.node_id)
        self.assertIn(a.listeningAddress, again.book)
        yield defer.ensureDeferred(
            self.waitFor(lambda: peerIds(again) == {a.node_id}, "the restarted node to redial a")
        )
        self.assertEqual(peerIds(a), {b.node_id})


class RobustnessTests(NetworkTestCase):
    @defer.inlineCallbacks
    def test_misbehavingPeerIsDroppedAndOthersAreStillServed(self):
        a = self.startNode()
        b = self.startNode()
        yield b.connect("127.0.0.1", a.listeningAddress.port)
        from twisted.internet.endpoints import TCP4ClientEndpoint
        from twisted.internet.protocol import Protocol, Factory

        lost = defer.Deferred()

        class Garbage(Protocol):
            def connectionMade(self):
                self.transport.write(b"\xff\xfe not json\n")

            def connectionLost(self, reason):
                lost.callback(None)

        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", a.listeningAddress.port)
        yield endpoint.connect(Factory.forProtocol(Garbage))
        yield lost
        self.assertEqual(peerIds(a), {b.node_id})
        c = self.startNode()
        peer = yield c.connect("127.0.0.1", a.listeningAddress.port)
        self.assertEqual(peer.node_id, a.node_id)
        self.assertEqual(Address.of("127.0.0.1", a.listeningAddress.port), a.listeningAddress)

    @defer.inlineCallbacks
    def test_peerThatNeverReadsIsThrottledThenDroppedWhileOthersAreServed(self):
        """
        A client floods pings and never reads the pongs. Once the node's send
        buffer for it fills, the node stops reading from it (the flood backs
        up into the client's own socket); the node's further writes to it
        pass the send-buffer limit and it is dropped. Another peer is served
        throughout.
        """
        import socket

        a = self.startNode(max_send_buffer_bytes=64 * 1024)
        b = self.startNode()
        yield b.connect("127.0.0.1", a.listeningAddress.port)
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", a.listeningAddress.port))
        yield task.deferLater(reactor, 0.05)
        sock.sendall(
            b'{"type":"version","node_id":"sluggard","port":0}\n{"type":"verack"}\n'
        )
        yield defer.ensureDeferred(
            self.waitFor(lambda: "sluggard" in peerIds(a), "the handshake")
        )
        slow = a.findPeer("sluggard")
        # Small kernel buffers on both sides (no autotuning), so that the
        # flood backs up within a few hundred kilobytes.
        slow.wire.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        slow.wire.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        block = b"".join(b'{"type":"ping","nonce":%d}\n' % i for i in range(2000))
        stuck = 0
        unsent = memoryview(block)
        for _ in range(1000):  # at most ~10 s
            sentNow = 0
            try:
                while True:
                    count = sock.send(unsent)  # may take part of a line
                    sentNow += count
                    unsent = unsent[count:] if count < len(unsent) else memoryview(block)
            except BlockingIOError:
                pass
            # Stuck: the node is paused and the client could send nothing
            # for 20 rounds running.
            stuck = stuck + 1 if slow.wire.sendPaused and not sentNow else 0
            if stuck == 20:
                break
            yield task.deferLater(reactor, 0.01)
        self.assertEqual(stuck, 20, "the flood never backed up")
        handled = slow.messages_in
        yield task.deferLater(reactor, 0.2)
        self.assertEqual(slow.messages_in, handled, "the node kept reading a peer that does not read")
        # Meanwhile the honest peer is served.
        self.assertIn(b.node_id, peerIds(a))
        yield b.findPeer(a.node_id[:8]).whenEstablished()
        a.sendAll({"type": "news", "text": "x" * 40_000})
        a.sendAll({"type": "news", "text": "x" * 40_000})
        yield defer.ensureDeferred(
            self.waitFor(lambda: "sluggard" not in peerIds(a), "the sluggard to be dropped")
        )
        self.assertIn("not reading", str(slow.close_reason))
        self.assertIn(b.node_id, peerIds(a))


class LoopbackAddressTests(NetworkTestCase):
    @defer.inlineCallbacks
    def test_nodesOnTheirOwnLoopbackAddressesSeeEachOthersRealAddress(self):
        """
        Nodes listening on 127.0.2.1 and 127.0.3.1 dial from those addresses,
        so each sees the other's connection come from where it listens.
        """
        a = self.startNode(interface="127.0.2.1")
        b = self.startNode(interface="127.0.3.1")
        peer = yield b.connect("127.0.2.1", a.listeningAddress.port)
        self.assertEqual(peer.wire.getHost().host, "127.0.3.1")
        yield defer.ensureDeferred(self.waitFor(lambda: b.node_id in peerIds(a), "a to see b"))
        [seenByA] = a.status()["peers"]
        self.assertEqual(seenByA["remote"].split(":")[0], "127.0.3.1")
        self.assertEqual(seenByA["address"], str(b.listeningAddress))
        self.assertEqual(a.findPeer(b.node_id).address.host, "127.0.3.1")

    @defer.inlineCallbacks
    def test_networkGroupsOnLoopbackShapeOutboundConnections(self):
        """
        Nine nodes: a seed on 127.1.0.1, three more in its /16 (127.1.0.2-4),
        and five alone in 127.2/16 ... 127.6/16. Everyone learns everyone.
        No node holds two automatic outbound connections into one group
        other than its own; nodes of 127.1/16 do connect to several of their
        neighbours there (their own group is exempt), while a node of
        127.2/16 has at most one outbound connection into 127.1/16. Nine
        nodes end as a full mesh: whoever a node may not dial, dials it.
        """
        seed = self.startNode(interface="127.1.0.1")
        seeds = [str(seed.listeningAddress)]
        hosts = ["127.1.0.2", "127.1.0.3", "127.1.0.4"] + [f"127.{g}.0.1" for g in range(2, 7)]
        nodes = [seed] + [self.startNode(interface=h, seeds=seeds) for h in hosts]

        def outboundGroups(node):
            return [
                network_group(p.dialed)
                for p in node.peers()
                if p.kind is ConnectionType.OUTBOUND and p.dialed is not None
            ]

        def settled():
            return (
                all(knows(n, nodes) for n in nodes)
                and graphConnected(nodes)
                and all(len(n.peers()) == len(nodes) - 1 for n in nodes)
            )

        yield defer.ensureDeferred(
            self.waitFor(settled, "nine nodes on six /16s to know each other", seconds=60)
        )
        for node in nodes:
            own = network_group(node.listeningAddress)
            groups = [g for g in outboundGroups(node) if g != own]
            self.assertEqual(len(groups), len(set(groups)), (node, outboundGroups(node)))
        crowd = [n for n in nodes if n.listeningAddress.host.startswith("127.1.")]
        self.assertTrue(
            any(outboundGroups(n).count("127.1.0.0/16") >= 2 for n in crowd),
            [outboundGroups(n) for n in crowd],
        )


class ApplicationTests(NetworkTestCase):
    @defer.inlineCallbacks
    def test_twoNodesOnPortZeroRunInOneApplication(self):
        from twisted.application import service

        application = service.Application("two")
        nodes = [
            Node(NodeConfig(port=0, interface="127.0.0.1", seeds=(), **FAST)) for _ in range(2)
        ]
        for node in nodes:
            node.setServiceParent(application)
        collection = service.IServiceCollection(application)
        self.assertEqual([collection.getServiceNamed(n.name) for n in nodes], nodes)
        self.assertNotEqual(nodes[0].name, nodes[1].name)
        top = service.IService(application)
        top.startService()
        self.addCleanup(lambda: top.stopService() if top.running else None)
        a, b = nodes
        self.assertNotEqual(a.listeningAddress.port, b.listeningAddress.port)
        peer = yield b.connect("127.0.0.1", a.listeningAddress.port)
        self.assertEqual(peer.node_id, a.node_id)
        yield top.stopService()
        self.assertEqual([n.running for n in nodes], [False, False])
        self.assertEqual([len(n.peers()) for n in nodes], [0, 0])
