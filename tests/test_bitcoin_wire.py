"""
The Bitcoin wire with real peers' behaviour: a regtest L{Node} whose
connection's far end is a Bitcoin node played byte by byte (on a
C{StringTransport}), or a scripted L{BitcoinPeer} on the in-memory network.
What is checked is what Bitcoin Core does in each case
(C{net_processing.cpp}'s C{ProcessMessage}, C{net.cpp}'s C{V1Transport}).
"""

from __future__ import annotations

import random
import struct

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address
from bitp2p.bitcoin import codec
from bitp2p.bitcoin.codec import AddrEntry
from bitp2p.bitcoin.networks import network
from bitp2p.bitcoin.wire import BitcoinFormat, BitcoinInfo
from bitp2p.peer import Direction, Peer, PeerSettings
from bitp2p.testing import TestNetwork

from .bitcoinpeer import (
    CORE_SERVICES,
    CORE_USER_AGENT,
    MAINNET,
    PEER_NONCE,
    BitcoinPeerFactory,
    message,
    parseMessages,
    rawMessage,
    versionMessage,
)
from .helpers import RecordingManager, learn, makeNode

PORT = 18444
HANDSHAKE = message("wtxidrelay") + message("sendaddrv2") + message("verack")


def ping(nonce: int) -> bytes:
    return message("ping", codec.encodeNonce(nonce))


class Logs:
    """
    Every log event while a test runs, formatted.
    """

    def __init__(self, case: SynchronousTestCase) -> None:
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        case.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def lines(self) -> list[str]:
        return [formatEvent(e) for e in self.events]

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines() if text in line]


class Conn:
    """
    One connection of a regtest node, its far end a Bitcoin node played by
    hand: C{send} feeds the node bytes, C{sent} reads back what it wrote.
    """

    def __init__(self, node, direction: Direction = Direction.INBOUND, host: str = "30.1.0.1", port: int = 40000):
        if direction is Direction.INBOUND:
            self.wire = node.connman.admit(IPv4Address("TCP", host, port))
            local, remote = IPv4Address("TCP", "127.0.0.1", PORT), IPv4Address("TCP", host, port)
        else:
            self.wire = node.connman.buildPeer(Direction.OUTBOUND, Address.of(host, PORT))
            local, remote = IPv4Address("TCP", "127.0.0.1", port), IPv4Address("TCP", host, PORT)
        self.transport = StringTransport(hostAddress=local, peerAddress=remote)
        self.wire.makeConnection(self.transport)

    @property
    def peer(self) -> Peer:
        return self.wire.peer

    def send(self, *data: bytes) -> None:
        self.wire.dataReceived(b"".join(data))

    def sent(self) -> list[tuple[str, bytes]]:
        """
        The messages the node wrote since the last call.
        """
        data = self.transport.value()
        self.transport.clear()
        return parseMessages(data)

    def commands(self) -> list[str]:
        return [command for command, _ in self.sent()]

    @property
    def closing(self) -> bool:
        return self.transport.disconnecting

    def lose(self) -> None:
        self.wire.connectionLost(Failure(ConnectionDone()))

    def handshake(self, **version) -> None:
        """
        Complete the handshake as Bitcoin Core 27 does.
        """
        self.send(versionMessage(**version))
        self.send(HANDSHAKE)
        self.sent()


class NodeCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.node = makeNode(PORT, network="regtest")
        self.addCleanup(self.node.stopService)
        self.logs = Logs(self)

    def inbound(self, host: str = "30.1.0.1", port: int = 40000) -> Conn:
        return Conn(self.node, Direction.INBOUND, host, port)

    def outbound(self, host: str = "30.2.0.1", port: int = 40001) -> Conn:
        return Conn(self.node, Direction.OUTBOUND, host, port)

    def assertServing(self, host: str = "30.9.0.1") -> None:
        """
        The node still takes a new peer, and answers its ping.
        """
        other = self.inbound(host)
        other.handshake()
        other.send(ping(99))
        self.assertIn(("pong", codec.encodeNonce(99)), other.sent())
        self.assertFalse(other.closing)

    def assertNoViolation(self) -> None:
        self.assertEqual(self.logs.matching("Protocol violation"), [])


# -- the handshake ------------------------------------------------------------------


class HandshakeTests(NodeCase):
    def test_inboundAsCore(self):
        """
        A Core node dials us: its version; we answer with our version, then
        (it is at 70016) wtxidrelay and sendaddrv2, then verack, as Core
        does; its wtxidrelay, sendaddrv2 and verack complete the handshake.
        What its version says beyond bitp2p's fields is the peer's info.
        """
        conn = self.inbound()
        conn.send(versionMessage(nonce=PEER_NONCE, start_height=840_000))
        self.assertEqual(conn.commands(), ["version", "wtxidrelay", "sendaddrv2", "verack"])
        self.assertFalse(conn.peer.established)
        conn.send(HANDSHAKE)
        self.assertTrue(conn.peer.established)
        self.assertTrue(conn.wire.sendAddrV2)
        self.assertTrue(conn.wire.wtxidRelay)
        peer = conn.peer
        self.assertEqual(peer.protocol, 70016)
        self.assertEqual(peer.user_agent, CORE_USER_AGENT)
        self.assertEqual(peer.node_id, f"{PEER_NONCE:016x}")
        self.assertEqual(peer.info, BitcoinInfo(CORE_SERVICES, 840_000, True, PEER_NONCE))
        self.assertEqual(peer.info.service_names, ["NETWORK", "WITNESS", "NETWORK_LIMITED"])

    def test_userAgentIsSanitizedAsCore(self):
        """
        Core keeps SanitizeString(strSubVer): letters, digits and
        C{" .,;-_/:?@()"}; a peer's escape sequences and newlines never
        reach a log line or a console.
        """
        conn = self.inbound()
        conn.send(versionMessage(user_agent="/Satoshi:27.0.0(x; y)/\x1b[2J\n\u00e9vil/"), HANDSHAKE)
        self.assertTrue(conn.peer.established)
        self.assertEqual(conn.peer.user_agent, "/Satoshi:27.0.0(x; y)/2Jvil/")

    def test_ourVersion(self):
        """
        Our version as a dialer: protocol 70016, a nonce of its own (one
        per connection, as Core: never our node id, never another
        connection's), the address we dialed as its addr_recv, zeros for our
        own IP with our listening port, our user agent.
        """
        conn = self.outbound()
        [(command, payload)] = conn.sent()
        self.assertEqual(command, "version")
        ours = codec.parseVersion(payload)
        self.assertEqual(ours.version, codec.PROTOCOL_VERSION)
        self.assertNotEqual(f"{ours.nonce:016x}", self.node.node_id)
        [(_, other)] = self.outbound("30.3.0.1", PORT).sent()
        self.assertNotEqual(codec.parseVersion(other).nonce, ours.nonce)
        self.assertEqual(ours.addr_recv, Address.of("30.2.0.1", PORT))
        self.assertIsNone(ours.addr_from)
        self.assertEqual(ours.from_port, PORT)
        self.assertTrue(ours.user_agent.startswith("/bitp2p:"))

    def test_dialedPeerSpeaksFirst(self):
        """
        We dialed, but the peer sends its version (and, not waiting for
        ours, its verack) before reading ours: the handshake completes, and
        we send only our verack (our version went first, once).
        """
        conn = self.outbound()
        conn.transport.clear()
        conn.send(versionMessage(), HANDSHAKE)
        self.assertTrue(conn.peer.established)
        commands = conn.commands()
        self.assertEqual(commands[:3], ["wtxidrelay", "sendaddrv2", "verack"])
        self.assertNotIn("version", commands)

    def test_peerAt70015GetsNoNegotiation(self):
        """
        A peer at 70015 (pre-BIP 155/339, as Core 0.20): we send it neither
        wtxidrelay nor sendaddrv2 (Core sends them from 70016 on), and it
        gets plain addr.
        """
        learn(self.node, Address.of("93.184.216.34", 8333), Address.of("2a00:1450:4001::1", 8333))
        conn = self.inbound()
        conn.send(versionMessage(version=70015))
        self.assertEqual(conn.commands(), ["version", "verack"])
        conn.send(message("verack"))
        self.assertTrue(conn.peer.established)
        self.assertFalse(conn.wire.sendAddrV2)
        conn.sent()
        conn.send(message("getaddr"))
        sent = conn.sent()
        self.assertEqual([c for c, _ in sent], ["addr"])
        entries, skipped = codec.parseAddr(sent[0][1])
        self.assertEqual(skipped, 0)
        self.assertEqual(
            {e.address for e in entries},
            {Address.of("93.184.216.34", 8333), Address.of("2a00:1450:4001::1", 8333)},
        )

    def test_wtxidrelayFromAnOlderPeerIsIgnored(self):
        """
        Core: "ignoring wtxidrelay due to old common version".
        """
        conn = self.inbound()
        conn.send(versionMessage(version=70015), message("wtxidrelay"), message("verack"))
        self.assertTrue(conn.peer.established)
        self.assertFalse(conn.wire.wtxidRelay)
        self.assertFalse(conn.closing)

    def test_peerAt70016WithSendaddrv2GetsAddrv2(self):
        learn(self.node, Address.of("93.184.216.34", 8333))
        conn = self.inbound()
        conn.handshake()
        conn.send(message("getaddr"))
        sent = conn.sent()
        self.assertEqual([c for c, _ in sent], ["addrv2"])
        entries, _ = codec.parseAddrV2(sent[0][1])
        self.assertIn(Address.of("93.184.216.34", 8333), {e.address for e in entries})

    def test_peerAt70016WithoutSendaddrv2GetsAddr(self):
        learn(self.node, Address.of("93.184.216.34", 8333))
        conn = self.inbound()
        conn.send(versionMessage(), message("wtxidrelay"), message("verack"))
        self.assertTrue(conn.peer.established)
        conn.sent()
        conn.send(message("getaddr"))
        self.assertEqual(conn.commands(), ["addr"])

    def test_obsoleteProtocolIsRefused(self):
        """
        Below 31800 (Core's MIN_PEER_PROTO_VERSION): closed, with a line
        saying why; 31800 itself is served.
        """
        conn = self.outbound()
        conn.send(versionMessage(version=31799))
        self.assertTrue(conn.closing)
        self.assertFalse(conn.peer.established)
        self.assertTrue(self.logs.matching("obsolete protocol version 31799"), self.logs.lines())
        conn.lose()
        old = self.inbound("30.3.0.1")
        old.send(versionMessage(version=31800, nonce=5), message("verack"))
        self.assertTrue(old.peer.established)
        self.assertServing()

    def test_ownNonceIsASelfConnection(self):
        """
        Our own version nonce comes back (we dialed ourselves): both ends
        close, as Core's "connected to self ... disconnecting".
        """
        out = self.outbound("30.5.0.1", 40005)
        [(_, payload)] = out.sent()
        back = self.inbound("127.0.0.1", 40005)
        back.send(message("version", payload))
        self.assertTrue(back.closing)
        self.assertFalse(back.peer.established)
        self.assertEqual(back.peer.node_id, self.node.node_id)
        back.lose()
        self.assertServing()
        # Once that connection is gone, its nonce is anyone's again.
        out.lose()
        again = self.inbound("127.0.0.1", 40006)
        again.send(message("version", payload))
        self.assertFalse(again.closing)
        self.assertEqual(again.peer.node_id, f"{codec.parseVersion(payload).nonce:016x}")



# -- what comes when ------------------------------------------------------------------


class OrderTests(NodeCase):
    def test_messagesBeforeVersionAreIgnored(self):
        """
        Core: "non-version message before version handshake": ignored, the
        connection kept (verack included), nothing answered; one debug line
        for them all.
        """
        conn = self.inbound()
        conn.send(
            message("verack"),
            ping(1),
            message("getaddr"),
            message("inv", b"\x00"),
            message("sendaddrv2"),
            *[message("headers", b"\x00")] * 50,
        )
        self.assertFalse(conn.closing)
        self.assertEqual(conn.sent(), [])
        self.assertEqual(len(self.logs.matching("before version handshake")), 1, self.logs.lines())
        self.assertFalse(conn.wire.sendAddrV2)
        conn.handshake()
        self.assertTrue(conn.peer.established)
        self.assertNoViolation()

    def test_messagesBetweenVersionAndVerackAreIgnored(self):
        """
        Core: "Unsupported message prior to verack": all but verack,
        sendaddrv2, wtxidrelay (and sendtxrcncl) are ignored, the
        connection kept: no pong, no addr.
        """
        learn(self.node, Address.of("93.184.216.34", 8333))
        conn = self.inbound()
        conn.send(versionMessage())
        conn.sent()
        conn.send(ping(1), message("getaddr"), message("sendcmpct", b"\x00" + bytes(8)), message("sendtxrcncl", bytes(12)))
        self.assertEqual(conn.sent(), [])
        self.assertFalse(conn.closing)
        self.assertTrue(self.logs.matching("prior to verack"))
        conn.send(HANDSHAKE)
        self.assertTrue(conn.peer.established)
        self.assertNoViolation()

    def test_secondVersionIsIgnored(self):
        """
        Core: "redundant version message": ignored, before and after the
        peer's verack.
        """
        conn = self.inbound()
        conn.send(versionMessage())
        conn.send(versionMessage(nonce=2))
        conn.send(HANDSHAKE)
        conn.send(versionMessage(nonce=3))
        self.assertTrue(conn.peer.established)
        self.assertFalse(conn.closing)
        self.assertEqual(conn.peer.node_id, f"{PEER_NONCE:016x}")
        self.assertEqual([c for c, _ in conn.sent()].count("version"), 1)
        self.assertTrue(self.logs.matching("redundant version"))
        self.assertNoViolation()

    def test_secondVerackIsIgnored(self):
        conn = self.inbound()
        conn.handshake()
        conn.send(message("verack"), ping(3))
        self.assertFalse(conn.closing)
        self.assertIn(("pong", codec.encodeNonce(3)), conn.sent())

    def test_sendaddrv2AfterVerackIsAViolation(self):
        for command in ("sendaddrv2", "wtxidrelay"):
            conn = self.inbound(port=41000 + len(command))
            conn.handshake()
            conn.send(message(command))
            self.assertTrue(conn.closing, command)
            self.assertTrue(self.logs.matching(f"{command} received after verack"), command)
            conn.lose()
        self.assertServing()

    def test_whatCorePeersSendAfterVerackIsIgnoredNotAViolation(self):
        """
        Right after its verack, Core sends sendcmpct, ping, getheaders,
        feefilter (and inv, sendheaders later): none is bitp2p's, none is a
        violation; the connection is served.
        """
        conn = self.outbound()
        conn.sent()
        conn.send(versionMessage(), HANDSHAKE)
        conn.send(
            message("sendcmpct", b"\x00" + struct.pack("<Q", 2)),
            ping(11),
            message("getheaders", struct.pack("<I", 70016) + b"\x01" + bytes(32) + bytes(32)),
            message("feefilter", struct.pack("<q", 1000)),
            message("inv", b"\x01" + struct.pack("<I", 1) + bytes(32)),
            message("sendheaders"),
        )
        self.assertFalse(conn.closing)
        self.assertTrue(conn.peer.established)
        self.assertIn(("pong", codec.encodeNonce(11)), conn.sent())
        self.assertNoViolation()
        self.assertEqual(conn.peer.recv_per_type["feefilter"][0], 1)


# -- framing ------------------------------------------------------------------------


def bitcoinPeer(direction: Direction = Direction.INBOUND):
    """
    A L{Peer} on a L{BitcoinWire} (regtest) on a C{StringTransport}, with a
    recording manager: C{(peer, wire, transport, manager)}.
    """
    manager = RecordingManager()
    clock = Clock()
    manager.clock = clock
    peer = Peer(manager, clock, direction, PeerSettings(), rng=random.Random(7))
    wire = BitcoinFormat(network("regtest"), rng=random.Random(8)).buildProtocol(peer)
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", PORT),
        peerAddress=IPv4Address("TCP", "30.1.0.1", 40000),
    )
    wire.makeConnection(transport)
    return peer, wire, transport, manager


# Everything a Core peer sends over a connection it dialed, in order.
SESSION = (
    versionMessage()
    + HANDSHAKE
    + message("sendcmpct", b"\x00" + struct.pack("<Q", 2))
    + ping(0x1111)
    + message("getaddr")
    + message("feefilter", struct.pack("<q", 1000))
    + message("addr", codec.encodeAddr([AddrEntry(Address.of("93.184.216.34", 8333), 1_700_000_000, 9)]))
    + message("ping", b"")
    + ping(0x2222)
)


class FramingTests(SynchronousTestCase):
    def transcript(self, chunks) -> tuple[list, list]:
        """
        What the peer's manager saw and what was written, for C{SESSION}
        fed in C{chunks}.
        """
        peer, wire, transport, manager = bitcoinPeer()
        for chunk in chunks:
            wire.dataReceived(chunk)
        self.assertFalse(transport.disconnecting)
        events = [e if e[0] != "established" else ("established",) for e in manager.events]
        return events, parseMessages(transport.value())

    def test_oneChunk(self):
        events, sent = self.transcript([SESSION])
        self.assertEqual(
            [c for c, _ in sent],
            # (addrv2: our own address, advertised once established.)
            ["version", "wtxidrelay", "sendaddrv2", "verack", "addrv2", "pong", "pong"],
        )
        self.assertEqual(
            [p for c, p in sent if c == "pong"], [codec.encodeNonce(0x1111), codec.encodeNonce(0x2222)]
        )
        self.assertIn(("addresses", [(Address.of("93.184.216.34", 8333), 1_700_000_000)], True), events)

    def test_everyByteAlone(self):
        self.assertEqual(self.transcript([SESSION[i : i + 1] for i in range(len(SESSION))]), self.transcript([SESSION]))

    def test_splitAtEveryBoundary(self):
        whole = self.transcript([SESSION])
        for k in range(1, len(SESSION)):
            self.assertEqual(self.transcript([SESSION[:k], SESSION[k:]]), whole, k)

    def test_wrongMagicCloses(self):
        peer, wire, transport, manager = bitcoinPeer()
        wire.dataReceived(versionMessage(magic=MAINNET))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(manager.kinds(), ["violation"])
        self.assertIn("magic", manager.events[0][1])

    def test_wrongMagicAfterTheHandshakeCloses(self):
        peer, wire, transport, manager = bitcoinPeer()
        wire.dataReceived(versionMessage() + HANDSHAKE)
        wire.dataReceived(message("ping", codec.encodeNonce(1), MAINNET) + ping(2))
        self.assertTrue(transport.disconnecting)
        self.assertNotIn(b"pong", transport.value())

    def test_oversizedLengthCloses(self):
        """
        A header announcing 4,000,001 bytes closes at once (Core: "Header
        error: Size too large"), without waiting for the payload; 4,000,000
        is waited for.
        """
        peer, wire, transport, manager = bitcoinPeer()
        wire.dataReceived(versionMessage() + HANDSHAKE)
        wire.dataReceived(rawMessage(b"block", length=4_000_000)[:24])
        self.assertFalse(transport.disconnecting)
        peer, wire, transport, manager = bitcoinPeer()
        wire.dataReceived(versionMessage() + HANDSHAKE)
        wire.dataReceived(rawMessage(b"block", length=4_000_001)[:24])
        self.assertTrue(transport.disconnecting)
        self.assertIn("4000001", manager.events[-1][1])

    def test_wholeLargestMessageIsRead(self):
        peer, wire, transport, manager = bitcoinPeer()
        wire.dataReceived(versionMessage() + HANDSHAKE)
        wire.dataReceived(message("block", bytes(4_000_000)) + ping(5))
        self.assertFalse(transport.disconnecting)
        self.assertIn(("pong", codec.encodeNonce(5)), parseMessages(transport.value())[-1:])

    def test_malformedCommandCloses(self):
        """
        A malformed header closes the connection, as issue 17 asks (Core
        itself drops such a message, "Header error: Invalid message type",
        and keeps the peer: docs/bitcoin.rst says so); what came before it
        is handled, nothing after it.
        """
        for raw in (b"pi\0ng", b"pi\x07ng", b"\xffping", b""):
            peer, wire, transport, manager = bitcoinPeer()
            wire.dataReceived(versionMessage() + HANDSHAKE)
            transport.clear()
            wire.dataReceived(ping(1) + rawMessage(raw, codec.encodeNonce(2)) + ping(3))
            self.assertTrue(transport.disconnecting, raw)
            self.assertEqual(parseMessages(transport.value()), [("pong", codec.encodeNonce(1))], raw)
            self.assertEqual(manager.kinds()[-1:], ["violation"], raw)
            self.assertIn("malformed command", manager.events[-1][1])

    def test_badChecksumDropsThatMessageOnly(self):
        peer, wire, transport, manager = bitcoinPeer()
        wire.dataReceived(versionMessage() + HANDSHAKE)
        transport.clear()
        wire.dataReceived(rawMessage(b"ping", codec.encodeNonce(1), checksum=b"\0\0\0\0") + ping(2))
        self.assertFalse(transport.disconnecting)
        self.assertEqual(parseMessages(transport.value()), [("pong", codec.encodeNonce(2))])
        self.assertEqual(wire.badChecksums, 1)

    def test_badChecksumOnTheVersionDropsIt(self):
        """
        A version with a wrong checksum is dropped: the peer has still sent
        no version, and its next one is taken.
        """
        peer, wire, transport, manager = bitcoinPeer()
        bad = bytearray(versionMessage(nonce=1))
        bad[20] ^= 0xFF
        wire.dataReceived(bytes(bad) + versionMessage(nonce=2) + message("verack"))
        self.assertTrue(peer.established)
        self.assertEqual(peer.node_id, f"{2:016x}")

    def test_pingGetsItsNonceBack(self):
        peer, wire, transport, manager = bitcoinPeer()
        wire.dataReceived(versionMessage() + HANDSHAKE)
        transport.clear()
        for nonce in (0, 1, 2**64 - 1):
            wire.dataReceived(ping(nonce))
        self.assertEqual(
            parseMessages(transport.value()),
            [("pong", codec.encodeNonce(n)) for n in (0, 1, 2**64 - 1)],
        )

    def test_emptyPingGetsNoPong(self):
        """
        A ping without a nonce (before BIP 31) wants no pong; neither does a
        short one.
        """
        peer, wire, transport, manager = bitcoinPeer()
        wire.dataReceived(versionMessage() + HANDSHAKE)
        transport.clear()
        wire.dataReceived(message("ping") + message("ping", b"\x01\x02"))
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)

    def test_ourPingAndTheirPong(self):
        peer, wire, transport, manager = bitcoinPeer(Direction.OUTBOUND)
        wire.dataReceived(versionMessage() + HANDSHAKE)
        transport.clear()
        peer.ping()
        [(command, payload)] = parseMessages(transport.value())
        self.assertEqual(command, "ping")
        wire.dataReceived(message("pong", payload))
        self.assertIsNotNone(peer.rtt_s)

    def test_messagesWhileReadingIsPausedWaitForResume(self):
        """
        Our send buffer to the peer is full: what it sends meanwhile is
        kept, and handled in order once the buffer drains.
        """
        peer, wire, transport, manager = bitcoinPeer()
        wire.dataReceived(versionMessage() + HANDSHAKE)
        transport.clear()
        wire.pauseProducing()
        wire.dataReceived(ping(1) + ping(2))
        self.assertEqual(transport.value(), b"")
        wire.resumeProducing()
        self.assertEqual(
            parseMessages(transport.value()), [("pong", codec.encodeNonce(1)), ("pong", codec.encodeNonce(2))]
        )

    def test_addrOfMoreThanAThousandEntriesCloses(self):
        peer, wire, transport, manager = bitcoinPeer()
        wire.dataReceived(versionMessage() + HANDSHAKE)
        entry = codec.encodeAddr([AddrEntry(Address.of("93.184.216.34", 8333), 1, 1)])[1:]
        wire.dataReceived(message("addr", codec.compactSize(1001) + entry * 1001))
        self.assertTrue(transport.disconnecting)
        self.assertIn("1001 entries", manager.events[-1][1])


# -- the peer that leaves -------------------------------------------------------------


class ClosingPeerTests(NodeCase):
    def test_closedAfterOurVersion(self):
        """
        A Core node that dialed us closes once it has read our version (it
        wants services we do not offer, as Core does to outbound peers
        without NODE_NETWORK): an info line says so, and the node serves on.
        """
        conn = self.inbound()
        conn.send(versionMessage())
        conn.sent()
        conn.lose()
        [line] = self.logs.matching("closed the connection after our version")
        self.assertIn("services bitp2p does not offer (bitp2p offers none)", line)
        [event] = [e for e in self.logs.events if "closed the connection after our version" in formatEvent(e)]
        self.assertEqual(event["log_level"].name, "info")
        self.assertServing()

    def test_closedBeforeItsVersion(self):
        conn = self.outbound()
        conn.lose()
        self.assertEqual(len(self.logs.matching("closed the connection before sending its version")), 1)
        self.assertServing()


# -- application messages ------------------------------------------------------------


class ApplicationTests(NodeCase):
    def test_registeredCommandReachesItsHandler(self):
        received = []
        self.node.registerMessage("headers", lambda peer, m: received.append((peer, m)))
        conn = self.inbound()
        conn.handshake()
        conn.send(message("headers", b"\x01" + bytes(81)), message("inv", b"\x00"))
        self.assertEqual(received, [(conn.peer, {"type": "headers", "payload": b"\x01" + bytes(81)})])

    def test_registeredCommandBeforeVerackIsIgnored(self):
        received = []
        self.node.registerMessage("headers", lambda peer, m: received.append(m))
        conn = self.inbound()
        conn.send(message("headers", b"\x00"), versionMessage(), message("headers", b"\x00"))
        self.assertEqual(received, [])

    def test_sendWritesTheRawMessage(self):
        conn = self.inbound()
        conn.handshake()
        payload = struct.pack("<I", 70016) + b"\x01" + bytes(64)
        self.node.send(conn.peer, {"type": "getheaders", "payload": payload})
        self.assertEqual(conn.transport.value(), message("getheaders", payload))
        self.assertEqual(conn.peer.send_per_type["getheaders"][:2], [1, 24 + len(payload)])

    def test_sendAllFramesOnce(self):
        a, b = self.inbound("30.1.0.1"), self.inbound("30.7.0.1")
        a.handshake()
        b.handshake()
        self.assertEqual(self.node.sendAll({"type": "mempool", "payload": b""}), 2)
        self.assertEqual(a.transport.value(), message("mempool"))
        self.assertEqual(b.transport.value(), message("mempool"))
        self.assertEqual(b.peer.send_per_type["mempool"][:2], [1, 24])

    def test_protocolCommandsCannotBeRegisteredOrSent(self):
        for command in ("version", "verack", "addr", "addrv2", "ping", "pong", "getaddr", "sendaddrv2", "wtxidrelay"):
            with self.assertRaises(ValueError, msg=command):
                self.node.registerMessage(command, lambda peer, m: None)
        conn = self.inbound()
        conn.handshake()
        with self.assertRaises(ValueError):
            self.node.send(conn.peer, {"type": "addr", "payload": b"\x00"})

    def test_messageWithoutBytesPayloadIsRefused(self):
        conn = self.inbound()
        conn.handshake()
        for bad in (
            {"type": "chat", "text": "hi"},  # a field that has no Bitcoin form
            {"type": "chat", "payload": "hi"},
            {"type": "this-is-too-long", "payload": b""},
            {"type": "caf\u00e9", "payload": b""},
        ):
            with self.assertRaises(ValueError, msg=bad):
                self.node.send(conn.peer, bad)
        self.assertEqual(conn.transport.value(), b"")
        self.node.send(conn.peer, {"type": "mempool"})
        self.assertEqual(conn.transport.value(), message("mempool"))

    def test_broadcastIsRefused(self):
        with self.assertRaises(ValueError):
            self.node.broadcast({"type": "headers", "payload": b""})


# -- on the in-memory network -------------------------------------------------------


class NetworkTests(SynchronousTestCase):
    def test_addrAnswerReachesTheAddressManager(self):
        """
        A regtest node dials a Core peer (played by a script), sends it
        getaddr after the handshake; its addrv2 answer (IPv4 and IPv6)
        reaches the address manager.
        """
        answer = [
            AddrEntry(Address.of("93.184.216.34", 8333), 0, CORE_SERVICES),
            AddrEntry(Address.of("2a00:1450:4001::1", 8333), 0, CORE_SERVICES),
            AddrEntry(Address.of("151.101.1.69", 18444), 0, 1),
        ]

        def onMessage(fake, command, payload):
            if command == "getaddr":
                now = int(net.network.seconds())
                fake.send("addrv2", codec.encodeAddrV2([e._replace(time=now) for e in answer]))

        with TestNetwork(seed=3) as net:
            factory = BitcoinPeerFactory(onMessage=onMessage)
            net.network.host("10.9.0.1").listenTCP(PORT, factory, interface="10.9.0.1")
            node = net.addNode(network="regtest", port=PORT, connect=("10.9.0.1:18444",))
            net.start()
            self.assertTrue(net.runUntil(lambda: all(e.address in node.book for e in answer), 60))
            [fake] = factory.peers
            self.assertEqual(fake.commands()[:2], ["version", "wtxidrelay"])
            self.assertIn("getaddr", fake.commands())
            [peer] = node.peers()
            self.assertEqual(peer.info.services, CORE_SERVICES)

    def test_plainAddrFromAnOlderPeer(self):
        answer = [AddrEntry(Address.of("93.184.216.34", 8333), 0, 1)]

        def onMessage(fake, command, payload):
            if command == "getaddr":
                fake.send("addr", codec.encodeAddr([e._replace(time=int(net.network.seconds())) for e in answer]))

        with TestNetwork(seed=4) as net:
            factory = BitcoinPeerFactory(version=70015, onMessage=onMessage)
            net.network.host("10.9.0.1").listenTCP(PORT, factory, interface="10.9.0.1")
            node = net.addNode(network="regtest", port=PORT, connect=("10.9.0.1:18444",))
            net.start()
            self.assertTrue(net.runUntil(lambda: answer[0].address in node.book, 60))
            [fake] = factory.peers
            self.assertNotIn("wtxidrelay", fake.commands())
            self.assertNotIn("sendaddrv2", fake.commands())

    def test_peerSpeakingFirstOnTheNetwork(self):
        with TestNetwork(seed=5) as net:
            factory = BitcoinPeerFactory(speakFirst=True)
            net.network.host("10.9.0.1").listenTCP(PORT, factory, interface="10.9.0.1")
            node = net.addNode(network="regtest", port=PORT, connect=("10.9.0.1:18444",))
            net.start()
            self.assertTrue(net.runUntil(lambda: len(node.peers()) == 1, 60))
            [fake] = factory.peers
            self.assertEqual(fake.commands().count("version"), 1)

    def test_peerClosingAfterOurVersionOnTheNetwork(self):
        """
        A Core node we dial closes on our version: logged, the node redials
        later and keeps serving the other peer.
        """
        logs = Logs(self)
        with TestNetwork(seed=6) as net:
            closing = BitcoinPeerFactory(closeAfterVersion=True)
            good = BitcoinPeerFactory(nonce=77)
            net.network.host("10.9.0.1").listenTCP(PORT, closing, interface="10.9.0.1")
            net.network.host("10.8.0.1").listenTCP(PORT, good, interface="10.8.0.1")
            node = net.addNode(network="regtest", port=PORT, connect=("10.9.0.1:18444", "10.8.0.1:18444"))
            net.start()
            self.assertTrue(net.runUntil(lambda: len(node.peers()) == 1 and closing.peers, 60))
            net.advance(5)
            self.assertTrue(logs.matching("closed the connection before sending its version"), logs.lines())
            [peer] = node.peers()
            self.assertEqual(peer.node_id, f"{77:016x}")
