"""
A node on a Bitcoin network: its configuration (C{NodeConfig(network=...)},
C{--network}), networks of regtest nodes forming and discovering each other
on the in-memory network and on loopback, Bitcoin Core's getaddr rule, and
what the operator sees of a Bitcoin peer (status, console, getpeerinfo,
metrics).
"""

from __future__ import annotations

from prometheus_client import generate_latest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from bitp2p.bitcoin.codec import MIN_PEER_PROTO_VERSION, PROTOCOL_VERSION
from bitp2p.bitcoin.wire import BitcoinFormat, BitcoinInfo
from bitp2p.config import NodeConfig
from bitp2p.constants import (
    BITCOIN_INACTIVITY_TIMEOUT_S,
    BITCOIN_PING_INTERVAL_S,
    BITCOIN_PING_TIMEOUT_S,
    DEFAULT_PORT,
    PING_INTERVAL_S,
)
from bitp2p.node import Node
from bitp2p.ops.console import Commands
from bitp2p.ops.metrics import registryFor
from bitp2p.ops.tap import Options, UsageFailure
from bitp2p.testing import TestNetwork
from bitp2p.views import nodeStatus
from bitp2p.wire import JSONLines


class ConfigTests(SynchronousTestCase):
    def test_defaultIsBitp2p(self):
        config = NodeConfig()
        self.assertEqual(config.network, "bitp2p")
        self.assertIsNone(config.bitcoin)
        self.assertEqual((config.port, config.ping_interval_s), (DEFAULT_PORT, PING_INTERVAL_S))

    def test_networkDefaults(self):
        """
        A Bitcoin network sets the port, the seeds and Core's timers;
        whatever is given explicitly stays.
        """
        for name, port in (
            ("mainnet", 8333), ("testnet4", 48333), ("testnet3", 18333),
            ("signet", 38333), ("regtest", 18444),
        ):
            config = NodeConfig(network=name)
            self.assertEqual(config.port, port, name)
            self.assertEqual(config.bitcoin.name, name)
            self.assertEqual(
                (config.ping_interval_s, config.ping_timeout_s, config.inactivity_timeout_s),
                (BITCOIN_PING_INTERVAL_S, BITCOIN_PING_TIMEOUT_S, BITCOIN_INACTIVITY_TIMEOUT_S),
            )
            self.assertEqual(
                config.seed_list(), [(seed, port) for seed in config.bitcoin.dns_seeds]
            )
        self.assertTrue(NodeConfig(network="mainnet").seed_list())
        self.assertEqual(NodeConfig(network="regtest").seed_list(), [])
        config = NodeConfig(network="regtest", port=0, ping_interval_s=5.0, seeds=("1.2.3.4:5",))
        self.assertEqual((config.port, config.ping_interval_s), (0, 5.0))
        self.assertEqual(config.seed_list(), [("1.2.3.4", 5)])

    def test_badNetwork(self):
        with self.assertRaises(ValueError) as e:
            NodeConfig(network="testnet")
        self.assertIn("network must be bitp2p or one of mainnet", str(e.exception))

    def test_tlsIsBitp2psOwn(self):
        with self.assertRaises(ValueError):
            NodeConfig(network="signet", tls=True)

    def test_nodeSpeaksBitcoin(self):
        reactor = MemoryReactorClock()
        node = Node(NodeConfig(network="regtest", port=0, seeds=()), reactor=reactor)
        self.assertIsInstance(node.wireFormat, BitcoinFormat)
        self.assertEqual(node.wireFormat.network.magic, bytes.fromhex("fabfb5da"))
        # The node id is the version nonce: 16 hex digits, new at each start.
        self.assertEqual(len(node.node_id), 16)
        int(node.node_id, 16)
        other = Node(NodeConfig(network="regtest", port=0, seeds=()), reactor=reactor)
        self.assertNotEqual(node.node_id, other.node_id)
        plain = Node(NodeConfig(port=0, seeds=()), reactor=reactor)
        self.assertIsInstance(plain.wireFormat, JSONLines)

    def test_applicationTypes(self):
        """
        On a Bitcoin network the application may handle any command the
        node does not understand itself (inv included: there is no gossip),
        but not the ones it does; and it cannot broadcast.
        """
        node = Node(NodeConfig(network="regtest", port=0, seeds=()), reactor=MemoryReactorClock())
        node.registerMessage("inv", lambda peer, message: None)
        node.registerMessage("headers", lambda peer, message: None)
        for reserved in ("version", "verack", "addr", "addrv2", "getaddr", "ping", "sendaddrv2"):
            with self.assertRaises(ValueError):
                node.registerMessage(reserved, lambda peer, message: None)
        with self.assertRaises(ValueError) as e:
            node.broadcast({"type": "headers", "payload": b""})
        self.assertIn("gossip", str(e.exception))
        with self.assertRaises(ValueError):
            node.messages.outgoing({"type": "headers", "text": "not bytes", "payload": "x"})


class OptionsTests(SynchronousTestCase):
    def parse(self, *argv):
        options = Options()
        options.parseOptions(list(argv))
        return options.config

    def test_network(self):
        config = self.parse("--network", "regtest")
        self.assertEqual((config.network, config.port), ("regtest", 18444))
        self.assertEqual(config.ping_interval_s, BITCOIN_PING_INTERVAL_S)
        config = self.parse("--network", "signet", "--ping-interval", "7")
        self.assertEqual((config.port, config.ping_interval_s), (38333, 7.0))
        self.assertEqual(self.parse().network, "bitp2p")

    def test_portAnywhere(self):
        """
        The PORT argument may come first, last, or between options.
        """
        for argv in (
            ("18500", "--network", "regtest", "--no-seeds"),
            ("--network", "regtest", "18500", "--no-seeds"),
            ("--network", "regtest", "--no-seeds", "18500"),
            ("--seed", "127.0.0.1:5", "18500", "--network", "regtest"),
        ):
            config = self.parse(*argv)
            self.assertEqual((config.port, config.network), (18500, "regtest"), argv)

    def test_badNetworkIsOneLine(self):
        with self.assertRaises(UsageFailure) as e:
            self.parse("--network", "bitcoin")
        message = str(e.exception)
        self.assertNotIn("\n", message)
        self.assertIn("regtest", message)
        with self.assertRaises(UsageFailure):
            self.parse("--network", "regtest", "--tls")


class RegtestNetworkTests(SynchronousTestCase):
    def test_formAndDiscover(self):
        """
        Ten regtest nodes linked in a line learn of each other through
        addrv2 and fill their connections, as on bitp2p's own network.
        """
        with TestNetwork(seed=3) as net:
            nodes = net.addNodes(10, network="regtest", port=18444, seeds=())
            net.start()
            net.linkLine()
            self.assertTrue(
                net.runUntil(lambda: all(len(n.book) >= 9 for n in nodes), timeout=3600)
            )
            peer = nodes[0].peers()[0]
            self.assertEqual(peer.protocol, PROTOCOL_VERSION)
            self.assertIsInstance(peer.info, BitcoinInfo)
            self.assertEqual((peer.info.services, peer.info.relay), (0, False))
            # Both are at 70016 and sent sendaddrv2: addresses went as addrv2.
            self.assertIn("addrv2", peer.recv_per_type)
            self.assertNotIn("addr", peer.recv_per_type)
            self.assertIn("sendaddrv2", peer.send_per_type)
            self.assertIn("wtxidrelay", peer.send_per_type)

    def getaddrOnOutbound(self, network: str) -> tuple[int, int]:
        """
        a dials b; b sends getaddr to a on that connection (a's outbound
        one). The addresses messages a sent b before and after.
        """
        kind = "addr" if network == "bitp2p" else "addrv2"
        with TestNetwork(seed=4) as net:
            a, b, c = net.addNodes(3, network=network, seeds=())
            net.start()
            net.connect(a, c)
            ab = net.connect(a, b)
            net.advance(5)
            ba = next(p for p in b.peers() if p.remote_address == ab.local_address)
            before = ab.send_per_type.get(kind, [0, 0])[0]
            ba.send({"type": "getaddr"})
            net.advance(5)
            self.assertEqual(ab.recv_per_type["getaddr"][0], 1)
            return before, ab.send_per_type.get(kind, [0, 0])[0]

    def test_getaddrOnlyFromInbound(self):
        """
        As Bitcoin Core, and as protocol 1.1 asks of bitp2p's own network, a
        node answers getaddr only on connections the peer opened: one from
        its outbound peer is ignored, on either network.
        """
        for network in ("regtest", "bitp2p"):
            before, after = self.getaddrOnOutbound(network)
            self.assertEqual(after, before, network)

    def test_operatorViews(self):
        """
        The connection's log line, status, the console's peers and the
        metrics say what a Bitcoin peer is: services, protocol, start
        height, relay, network.
        """
        with TestNetwork(seed=5) as net, capturedLogs() as events:
            a, b = net.addNodes(2, network="regtest", port=18444, seeds=())
            net.start()
            net.connect(a, b)
            lines = [formatEvent(e) for e in events if e.get("log_format", "").startswith("Connected to")]
            self.assertTrue(lines)
            self.assertRegex(
                lines[0], r"Connected to [0-9a-f]{16} at \S+ \(\w+, /bitp2p:[^/]+/, protocol 70016, no services, height 0\)"
            )
            status = nodeStatus(a)["peers"][0]
            self.assertEqual(
                {k: status[k] for k in ("protocol", "services", "service_names", "start_height", "relay", "network")},
                {
                    "protocol": 70016, "services": 0, "service_names": [],
                    "start_height": 0, "relay": False, "network": "ipv4",
                },
            )
            output: list[str] = []
            commands = Commands(a, output.append, lambda: None)
            commands.execute("peers")
            self.assertIn("SERVICES", output[0])
            self.assertIn("HEIGHT", output[0])
            self.assertRegex(output[1], r"ipv4\s+out\s+70016\s+/bitp2p:[^ ]+/\s+none\s+0\s+no")
            output.clear()
            commands.execute("status")
            self.assertIn("network    regtest", output)
            text = generate_latest(registryFor(a)).decode()
            self.assertIn('bitp2p_peers_by_network{network="ipv4"} 1.0', text)
            self.assertRegex(
                text,
                r'bitp2p_bitcoin_peer_info\{network="ipv4",peer="[0-9a-f]{16}",relay="false",'
                r'services="NONE",subver="/bitp2p:[^"]+/",version="70016"\} 1.0',
            )

    def test_obsoletePeerRefused(self):
        """
        A peer whose version is below protocol 31800 is refused, as Bitcoin
        Core refuses it; 31800 itself is fine.
        """
        with TestNetwork(seed=6) as net:
            a, b = net.addNodes(2, network="regtest", port=18444, seeds=())
            net.start()
            peer = net.connect(a, b)
            peer.protocol = MIN_PEER_PROTO_VERSION - 1
            refusal = a.handshake.checkVersion(peer)
            self.assertIn("obsolete protocol version 31799", str(refusal))
            peer.protocol = MIN_PEER_PROTO_VERSION
            # (Then the connection manager judges its id: already connected.)
            self.assertNotIn("obsolete", str(a.handshake.checkVersion(peer)))


class LoopbackTests(TestCase):
    """
    Real sockets: regtest nodes on 127.0.0.1 form a network.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_threeNodesOnLoopback(self):
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        nodes = [
            Node(NodeConfig(network="regtest", port=0, interface="127.0.0.1", seeds=()), reactor=reactor)
            for _ in range(3)
        ]
        for node in nodes:
            node.startService()
            self.addCleanup(node.stopService)
        a, b, c = nodes
        yield a.connect(str(b.listeningAddress))
        yield c.connect(str(b.listeningAddress))
        for _ in range(100):
            if all(len(n.book) >= 2 for n in nodes):
                break
            yield deferLater(reactor, 0.1, lambda: None)
        self.assertEqual([len(n.book) >= 2 for n in nodes], [True] * 3)
        peer = b.peers()[0]
        self.assertEqual(peer.protocol, PROTOCOL_VERSION)
        self.assertEqual(peer.info.services, 0)
