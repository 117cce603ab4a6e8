"""
Endpoints and TLS between real nodes on loopback: TCP over IPv4 and IPv6,
UNIX sockets, TLS node identity and pinning, and plain and TLS nodes
refusing each other.
"""

from __future__ import annotations

import os
import stat
import tempfile

from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from bitp2p import ConnectFailed, HandshakeFailed
from bitp2p.node import NodeConfig
from bitp2p.tls import Identity, peer_node_id

from .helpers import tempDir
from .test_network import NetworkTestCase, peerIds


def logged(testCase) -> list[str]:
    """
    The text of every log event from now to the end of the test.
    """
    from twisted.logger import formatEvent

    lines: list[str] = []

    def observe(event):
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    testCase.addCleanup(globalLogPublisher.removeObserver, observe)
    return lines


def socketPath(testCase) -> str:
    # A short path: UNIX socket paths are limited to ~100 bytes.
    directory = tempfile.mkdtemp(prefix="b2p-", dir="/tmp")
    testCase.addCleanup(lambda: os.path.isdir(directory) and __import__("shutil").rmtree(directory))
    return os.path.join(directory, "node.sock")


class EndpointTests(NetworkTestCase):
    @defer.inlineCallbacks
    def test_unixSockets(self):
        path = socketPath(self)
        a = self.startNode(listen_endpoints=(f"unix:{path}",))
        self.assertIsNone(a.listeningAddress)  # nothing to advertise
        b = self.startNode()
        peer = yield b.connect(f"unix:{path}")
        self.assertEqual(peer.node_id, a.node_id)
        yield defer.ensureDeferred(self.waitFor(lambda: b.node_id in peerIds(a), "a to see b"))
        got = []
        a.registerMessage("hello", lambda p, m: got.append(m["n"]))
        b.send(a.node_id, {"type": "hello", "n": 1})
        yield defer.ensureDeferred(self.waitFor(lambda: got == [1], "the message"))

    @defer.inlineCallbacks
    def test_ipv6AndSeveralListeners(self):
        path = socketPath(self)
        a = self.startNode(listen_endpoints=("tcp6:0:interface=\\:\\:1", f"unix:{path}"))
        self.assertEqual(a.listeningAddress.host, "::1")
        self.assertEqual(len(a.connman.ports), 2)
        b = self.startNode(interface="::1")
        peer = yield b.connect("::1", a.listeningPort)
        self.assertEqual(peer.node_id, a.node_id)
        c = self.startNode()
        peer = yield c.connect(f"unix:path={path}")
        self.assertEqual(peer.node_id, a.node_id)
        yield a.stopService()
        self.assertEqual(a.connman.ports, [])
        self.assertFalse(os.path.exists(path) and _listening(path))

    @defer.inlineCallbacks
    def test_manualEndpointPeersAreKeptConnected(self):
        path = socketPath(self)
        a = self.startNode(listen_endpoints=(f"unix:{path}",))
        b = self.startNode(addnodes=(f"unix:{path}",))
        yield defer.ensureDeferred(self.waitFor(lambda: a.node_id in peerIds(b), "b to dial a"))
        self.assertEqual(b.status()["manual"], 1)

    def test_aBadEndpointFailsTheConnect(self):
        b = self.startNode()
        failure = self.failureResultOf(b.connect("nonsense"), ConnectFailed)
        self.assertIn("expected HOST:PORT or an endpoint", str(failure.value))


def _listening(path: str) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class TLSTests(NetworkTestCase):
    @defer.inlineCallbacks
    def test_tlsNodesProveTheirIds(self):
        a = self.startNode(tls=True)
        b = self.startNode(tls=True)
        self.assertEqual(len(a.node_id), 64)
        self.assertEqual(a.node_id, a.identity.node_id)
        peer = yield b.connect("127.0.0.1", a.listeningPort)
        self.assertEqual(peer.node_id, a.node_id)
        self.assertEqual(peer_node_id(peer.wire.transport), a.node_id)
        yield defer.ensureDeferred(self.waitFor(lambda: b.node_id in peerIds(a), "a to see b"))
        inbound = a.findPeer(b.node_id)
        self.assertEqual(peer_node_id(inbound.wire.transport), b.node_id)
        # Messages flow through TLS.
        got = []
        a.registerMessage("hello", lambda p, m: got.append(m["n"]))
        b.send(a.node_id, {"type": "hello", "n": 7})
        yield defer.ensureDeferred(self.waitFor(lambda: got == [7], "the message"))
        # The dialed address is pinned to a's id.
        self.assertEqual(b.pins.get(f"127.0.0.1:{a.listeningPort}"), a.node_id)

    @defer.inlineCallbacks
    def test_aPeerClaimingAnotherIdIsRefused(self):
        a = self.startNode(tls=True)
        liar = self.startNode(tls=True)
        liar.node_id = a.node_id[::-1]  # not the hash of its key
        events = logged(self)
        yield self.assertFailure(liar.connect("127.0.0.1", a.listeningPort), HandshakeFailed)
        yield defer.ensureDeferred(
            self.waitFor(lambda: any("but its certificate is of" in e for e in events), "refusal")
        )
        self.assertEqual(a.peers(), [])

    @defer.inlineCallbacks
    def test_aChangedKeyAtAPinnedAddressIsRefused(self):
        a = self.startNode(tls=True)
        port = a.listeningPort
        b = self.startNode(tls=True, datadir=tempDir(self))
        yield b.connect("127.0.0.1", port)
        yield a.stopService()
        yield defer.ensureDeferred(self.waitFor(lambda: not b.connections(), "b to see a go"))
        impostor = self.startNode(tls=True, listen_endpoints=(f"tcp:{port}:interface=127.0.0.1",))
        self.assertNotEqual(impostor.node_id, a.node_id)
        failure = yield self.assertFailure(b.connect("127.0.0.1", port), HandshakeFailed)
        self.assertIn("is pinned to", str(failure))
        # The pin outlives a restart.
        yield b.stopService()
        again = self.startNode(tls=True, datadir=b.config.datadir)
        self.assertEqual(again.node_id, b.node_id)
        self.assertEqual(again.pins.get(f"127.0.0.1:{port}"), a.node_id)
        yield self.assertFailure(again.connect("127.0.0.1", port), HandshakeFailed)

    @defer.inlineCallbacks
    def test_theKeyIsKeptPrivateInTheDataDirectory(self):
        directory = tempDir(self)
        a = self.startNode(tls=True, datadir=directory)
        mode = stat.S_IMODE(os.stat(os.path.join(directory, "node.key")).st_mode)
        self.assertEqual(mode, 0o600)
        node_id = a.node_id
        yield a.stopService()
        self.assertEqual(self.startNode(tls=True, datadir=directory).node_id, node_id)

    @defer.inlineCallbacks
    def test_plainAndTLSNodesRefuseEachOtherClearly(self):
        events = logged(self)
        secure = self.startNode(tls=True)
        plain = self.startNode()
        yield self.assertFailure(plain.connect("127.0.0.1", secure.listeningPort), HandshakeFailed)
        yield defer.ensureDeferred(
            self.waitFor(lambda: any("Refusing plain-text connection" in e for e in events), "tls side")
        )
        yield self.assertFailure(secure.connect("127.0.0.1", plain.listeningPort), HandshakeFailed)
        yield defer.ensureDeferred(
            self.waitFor(
                lambda: any("it speaks TLS, and this node runs without --tls" in e for e in events)
                and any("is it a node without --tls?" in e for e in events),
                "both sides to say why",
            )
        )
        self.assertEqual(secure.peers() + plain.peers(), [])


class ConfigTests(SynchronousTestCase):
    def test_tlsTakesTheIdFromTheKey(self):
        self.assertRaises(ValueError, NodeConfig, tls=True, node_id="mine")

    def test_listenEndpointsAreChecked(self):
        error = self.assertRaises(ValueError, NodeConfig, listen_endpoints=("bogus:1",))
        self.assertIn("unknown endpoint kind", str(error))
        self.assertRaises(ValueError, NodeConfig, addnodes=("tcp:5000",))

    def test_identityIdIsTheKeyHash(self):
        import hashlib

        from cryptography.hazmat.primitives import serialization

        identity = Identity.generate()
        der = identity.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.assertEqual(identity.node_id, hashlib.sha256(der).hexdigest())


class LaterListenTests(SynchronousTestCase):
    """
    An endpoint that listens later (an onion service takes a while) is
    waited for in the background, and given up when the node stops first.
    """

    def setUp(self):
        from twisted.internet.testing import MemoryReactorClock

        from bitp2p import endpoints

        self.pending = []

        class LaterEndpoint:
            def listen(endpoint, factory):
                d = defer.Deferred()
                self.pending.append((d, factory))
                return d

        self.patch(endpoints, "serverFromString", lambda reactor, description: LaterEndpoint())
        self.reactor = MemoryReactorClock()

    def makeNode(self):
        from bitp2p.node import Node

        return Node(NodeConfig(listen_endpoints=("tcp:7000",), seeds=()), reactor=self.reactor)

    def test_aLaterListenCountsWhenItComes(self):
        from twisted.internet.address import IPv4Address

        node = self.makeNode()
        node.startService()
        self.assertIsNone(node.listeningAddress)
        d, factory = self.pending[0]

        class Port:
            def getHost(self):
                return IPv4Address("TCP", "10.1.2.3", 7000)

            def stopListening(self):
                self.stopped = True

        port = Port()
        d.callback(port)
        self.assertEqual(str(node.listeningAddress), "10.1.2.3:7000")
        node.stopService()
        self.assertTrue(port.stopped)

    def test_stoppingFirstGivesTheListenUp(self):
        node = self.makeNode()
        node.startService()
        d, _ = self.pending[0]
        events = logged(self)
        node.stopService()
        self.assertTrue(d.called)  # cancelled
        self.assertEqual(node.connman.pendingListens, 0)
        self.assertIsNone(node.listeningAddress)
        self.assertFalse([e for e in events if "Cannot listen" in e])

    def test_aLaterFailureIsLogged(self):
        events = logged(self)
        node = self.makeNode()
        node.startService()
        d, _ = self.pending[0]
        d.errback(OSError("the Tor controller went away"))
        self.assertIn("Cannot listen on tcp:7000: the Tor controller went away", events)
        node.stopService()
