"""
L{bitp2p.views}: the one read-only description of a node, its peers and its
addresses, on nodes of an in-memory network (L{bitp2p.testing.TestNetwork})
and a simulated clock: no socket, no sleep.
"""

from __future__ import annotations

import attrs
import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address
from bitp2p.peer import ConnectionType, Direction
from bitp2p.testing import DEFAULT_LATENCY_S, TestNetwork
from bitp2p.views import (
    AddressView,
    NodeView,
    PeerView,
    addressViews,
    establishedViews,
    hostPort,
    network,
    nodeStatus,
    nodeView,
    peerView,
)


def referenceStatus(node) -> dict:
    """
    C{Node.status()} as the node computed it itself before the views
    existed (from its public API): the oracle that L{nodeStatus} must match.
    """
    now = node.reactor.seconds()
    connections = node.connections()
    established = [p for p in connections if p.established]
    peers = [
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
            "bytes_in": peer.bytes_in,
            "bytes_out": peer.bytes_out,
        }
        for peer in sorted(established, key=lambda p: p.established_at or 0)
    ]
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
        for info in sorted(node.book, key=lambda i: i.address)
    ]
    return {
        "node_id": node.node_id,
        "listening": str(node.listeningAddress) if node.listeningAddress else None,
        "user_agent": node.config.user_agent,
        "uptime_s": node.uptime(),
        "outbound": sum(p.kind is ConnectionType.OUTBOUND for p in established),
        "inbound": sum(p.kind is ConnectionType.INBOUND for p in established),
        "manual": sum(p.kind is ConnectionType.MANUAL for p in established),
        "handshaking": len(connections) - len(established),
        "dialing": node.dialCount(),
        "peers": peers,
        "known": known,
        "bans": [{"subnet": s, "until": u} for s, u in node.bans.bans(now)],
        "tls": node.identity is not None,
        "gossip": dict(node.gossip.stats, seen=len(node.gossip.seen)),
    }


class ViewsTests(SynchronousTestCase):
    def makeNetwork(self, **kwargs) -> TestNetwork:
        net = TestNetwork(**kwargs)
        self.addCleanup(net.stop)
        return net

    def busyNetwork(self, address_manager: str = "addrman") -> TestNetwork:
        """
        Four nodes in a line, which have pinged and gossiped addresses for
        a while, and a ban on the first.
        """
        net = self.makeNetwork(seed=11)
        net.addNodes(4, address_manager=address_manager, max_outbound=0)
        net.start()
        net.linkLine()
        net.advance(95)
        net.nodes[0].ban("192.0.2.0/24", 3600)
        return net

    def test_nodeStatusIsNodeStatus(self):
        """
        L{nodeStatus} answers what C{Node.status()} does, key for key, in
        the same order, for nodes with peers in both directions, pings,
        known addresses and bans, with either address book.
        """
        for manager in ("addrman", "simple"):
            net = self.busyNetwork(manager)
            for node in net.nodes:
                status = referenceStatus(node)
                self.assertTrue(status["peers"])
                self.assertEqual(nodeStatus(node), status)
                self.assertEqual(list(nodeStatus(node)), list(status))
            net.stop()

    def test_nodeStatusWhileConnecting(self):
        """
        L{nodeStatus} counts connections being dialed and those still in
        their handshake as C{Node.status()} does.
        """
        net = self.makeNetwork(seed=12)
        a, b = net.addNodes(2, max_outbound=0)
        net.start()
        connected = a.connect(net.addressOf(b))
        self.assertEqual(a.dialCount(), 1)
        self.assertEqual(nodeStatus(a), referenceStatus(a))
        self.assertEqual(nodeStatus(a)["dialing"], 1)
        net.advance(DEFAULT_LATENCY_S * 1.5, step=DEFAULT_LATENCY_S / 10)
        self.assertEqual(nodeStatus(a)["handshaking"], 1)
        self.assertEqual(nodeStatus(a), referenceStatus(a))
        self.assertEqual(nodeStatus(b), referenceStatus(b))
        net.advance(1)
        self.assertEqual(self.successResultOf(connected).node_id, "n1")

    def test_nodeStatusStopped(self):
        """
        A node not started has no uptime and no peers, as C{status()} says.
        """
        net = self.makeNetwork(seed=13)
        node = net.addNode()
        self.assertEqual(nodeStatus(node), referenceStatus(node))
        self.assertEqual(node.status(), nodeStatus(node))
        self.assertEqual(nodeStatus(node)["uptime_s"], 0.0)

    def test_peerView(self):
        """
        A L{PeerView} copies a peer's public facts: who, which way, its
        traffic per type, its round trips, both ends of the connection.
        """
        net = self.makeNetwork(seed=14)
        a, b = net.addNodes(2, max_outbound=0)
        net.start()
        peer = net.connect(a, b)
        net.advance(a.config.ping_interval_s + 1)
        view = peerView(peer)
        self.assertIsInstance(view, PeerView)
        self.assertEqual(view.node_id, "n1")
        self.assertEqual(view.address, Address.of(net.ipOf(b), 5000))
        self.assertEqual(view.remote, f"{net.ipOf(b)}:5000")
        self.assertIs(view.direction, Direction.OUTBOUND)
        self.assertFalse(view.inbound)
        self.assertIs(view.kind, ConnectionType.MANUAL)
        self.assertTrue(view.established)
        self.assertEqual(view.user_agent, b.config.user_agent)
        self.assertEqual(view.protocol, peer.protocol)
        self.assertEqual(view.rtt_s, pytest.approx(2 * DEFAULT_LATENCY_S))
        self.assertEqual(view.min_rtt_s, view.rtt_s)
        self.assertEqual((view.messages_in, view.messages_out), (peer.messages_in, peer.messages_out))
        self.assertEqual((view.bytes_in, view.bytes_out), (peer.bytes_in, peer.bytes_out))
        self.assertGreater(view.bytes_in, 0)
        self.assertEqual(view.network, "ipv4")
        self.assertEqual(view.local, hostPort(peer.local_address))
        self.assertEqual(view.recv_per_type["pong"][0], 1)
        self.assertEqual(
            sum(count for count, _ in view.recv_per_type.values()), view.messages_in
        )
        self.assertEqual(list(view.send_per_type), sorted(view.send_per_type))

    def test_peerViewIsACopy(self):
        """
        A view does not change with its peer, and cannot be changed.
        """
        net = self.makeNetwork(seed=15)
        a, b = net.addNodes(2, max_outbound=0)
        net.start()
        peer = net.connect(a, b)
        view = peerView(peer)
        before = (view.messages_out, dict(view.send_per_type))
        net.advance(2 * a.config.ping_interval_s)
        self.assertGreater(peer.messages_out, before[0])
        self.assertEqual((view.messages_out, dict(view.send_per_type)), before)
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, view, "rtt_s", 1.0)
        with self.assertRaises(TypeError):
            view.send_per_type["ping"] = (0, 0)

    def test_pingWait(self):
        """
        While a ping waits for its pong, L{PeerView.ping_sent_at} says when
        it left and L{PeerView.pingWait} how long it has waited; otherwise
        both are L{None}.
        """
        net = self.makeNetwork(seed=16, latency=1.0)
        a, b = net.addNodes(2, max_outbound=0)
        net.start()
        peer = net.connect(a, b)
        self.assertIsNone(peerView(peer).ping_sent_at)
        self.assertIsNone(peerView(peer).pingWait(a.reactor.seconds()))
        peer.ping()
        sent = a.reactor.seconds()
        net.advance(0.5, step=0.5)
        view = peerView(peer)
        self.assertEqual(view.ping_sent_at, sent)
        self.assertEqual(view.pingWait(a.reactor.seconds()), 0.5)
        self.assertEqual(view.pingWait(sent - 1), 0.0)
        net.advance(2)
        self.assertIsNone(peerView(peer).ping_sent_at)

    def test_establishedViewsOrder(self):
        """
        L{establishedViews} lists every established connection, oldest
        handshake first; the views of the other end say inbound.
        """
        net = self.makeNetwork(seed=17)
        a, b, c = net.addNodes(3, max_outbound=0)
        net.start()
        net.connect(a, b)
        net.advance(5)
        net.connect(c, a)
        views = establishedViews(a)
        self.assertEqual([v.node_id for v in views], ["n1", "n2"])
        self.assertEqual([v.direction for v in views], [Direction.OUTBOUND, Direction.INBOUND])
        self.assertEqual([v.kind for v in views], [ConnectionType.MANUAL, ConnectionType.INBOUND])
        self.assertLess(views[0].established_at, views[1].established_at)

    def test_addressViews(self):
        """
        L{addressViews} lists the known addresses in address order, each
        with its table and its source (for the address manager).
        """
        net = self.busyNetwork()
        node = net.nodes[0]
        views = addressViews(node)
        self.assertEqual(len(views), len(node.book))
        self.assertEqual([v.address for v in views], sorted(i.address for i in node.book))
        for view in views:
            self.assertIsInstance(view, AddressView)
            self.assertEqual(view.table, "tried" if view.in_tried else "new")
            self.assertIsInstance(view.source, Address)
            info = node.book.get(view.address)
            self.assertEqual(
                (view.last_seen, view.attempts, view.failures),
                (info.last_seen, info.attempts, info.failures),
            )

    def test_addressViewsSimpleBook(self):
        """
        The simple address book keeps no sources: L{AddressView.source} is
        L{None}.
        """
        net = self.busyNetwork("simple")
        views = addressViews(net.nodes[1])
        self.assertTrue(views)
        self.assertEqual({v.source for v in views}, {None})

    def test_nodeView(self):
        """
        A L{NodeView} counts peers by kind and by direction, the address
        tables (without listing them), bans, gossip and the node's counters.
        """
        net = self.busyNetwork()
        middle = net.nodes[1]
        view = nodeView(middle)
        self.assertIsInstance(view, NodeView)
        self.assertEqual(view.node_id, "n1")
        self.assertEqual(view.listening, Address.of(net.ipOf(middle), 5000))
        self.assertTrue(view.running)
        self.assertEqual(view.uptime_s, middle.uptime())
        self.assertEqual(view.now, middle.reactor.seconds())
        self.assertFalse(view.tls)
        self.assertEqual((view.peers, view.peers_inbound), (2, 1))
        self.assertEqual((view.manual, view.inbound, view.outbound), (1, 1, 0))
        self.assertEqual((view.handshaking, view.dialing), (0, 0))
        self.assertEqual(view.known_new, middle.book.size_new)
        self.assertEqual(view.known_tried, middle.book.size_tried)
        self.assertEqual(view.known, len(middle.book))
        self.assertEqual(view.gossip["seen"], len(middle.gossip.seen))
        self.assertEqual(dict(view.counters), middle.counters)
        self.assertEqual(view.bans, ())
        self.assertEqual(nodeView(net.nodes[0]).bans[0][0], "192.0.2.0/24")


def test_hostPort():
    """
    L{hostPort} writes Twisted addresses as the control API shows them.
    """
    assert hostPort(IPv4Address("TCP", "127.0.0.1", 5)) == "127.0.0.1:5"
    assert hostPort(IPv6Address("TCP", "::1", 5)) == "[::1]:5"
    assert hostPort(UNIXAddress(b"/tmp/s.sock")) == "unix:/tmp/s.sock"
    assert hostPort(UNIXAddress(None)) == "unix"
    assert hostPort(None) is None


def test_network():
    """
    L{network} names the network of a Twisted address.
    """
    assert network(IPv4Address("TCP", "10.0.0.1", 5)) == "ipv4"
    assert network(IPv6Address("TCP", "::ffff:10.0.0.1", 5)) == "ipv4"
    assert network(IPv6Address("TCP", "2001:db8::1", 5)) == "ipv6"
    assert network(IPv4Address("TCP", "abc.onion", 5)) == "onion"
    assert network(UNIXAddress(b"/s")) == "unix"
    assert network(IPv4Address("TCP", "example.com", 5)) == "other"
    assert network(None) == "other"


class LocalAddressesTests(SynchronousTestCase):
    def test_boundToOneHost(self):
        """
        A node bound to one host listens and advertises there.
        """
        with TestNetwork(seed=2) as net:
            a = net.addNode()
            net.start()
            self.assertEqual(nodeView(a).local_addresses, (a.listeningAddress,))

    def test_boundToEveryInterface(self):
        """
        A node listening on 0.0.0.0 reports the addresses it advertised to
        its peers (the local end of each connection), never 0.0.0.0; none
        before it has any; and getnetworkinfo's localaddresses says the
        same.
        """
        from twisted.internet.testing import MemoryReactorClock

        from bitp2p.ops.control.rpc import ControlAPI

        from .helpers import Inbound, makeNode

        node = makeNode(6001, MemoryReactorClock(), interface="0.0.0.0")
        self.assertEqual(str(node.listeningAddress), "0.0.0.0:6001")
        self.assertEqual(nodeView(node).local_addresses, ())
        self.assertEqual(ControlAPI(node, None).rpc_getnetworkinfo()["localaddresses"], [])
        self.assertFalse(Inbound(node, "20.1.0.1").refused)  # its local end: 127.0.0.1
        self.assertEqual(nodeView(node).local_addresses, (Address.of("127.0.0.1", 6001),))
        self.assertEqual(
            ControlAPI(node, None).rpc_getnetworkinfo()["localaddresses"],
            [{"address": "127.0.0.1", "port": 6001, "score": 1}],
        )
