"""
Adversarial peers against a live node on loopback.

Every case starts a victim L{Node} on 127.0.0.1 with small limits
(C{max_message_bytes} = 16384, short timeouts, no automatic outbound
connections) and an honest second node connected to it before the attack.
Attackers are raw TCP clients driven through Twisted, each from its own
loopback source address (127.0.0.2 and up; Linux routes all of 127/8 to
C{lo}), so that charging the attacker's host never touches the honest peer
at 127.0.0.1. After every attack the victim must still be listening and
accept a fresh honest node, and must still serve the honest peer: it stays
in C{victim.peers()}, a ping round trip completes, and an application
message crosses both ways.

Malformed input (one test per line; each line is sent once as the very
first thing on a connection and once, on another connection from another
host, after a valid handshake):

==========================================  ==========================================
What is sent                                What the node must do
==========================================  ==========================================
invalid JSON; invalid UTF-8; NUL bytes      violation: close, count it against the host
JSON that is a list, number, string, null   violation
an object without C{type}, or with a        violation
number, a list or null as C{type}
C{version} with node_id 5, port "8333",     violation
port 70000, port -1, a 300-char user_agent
C{addr} whose C{peers} is a string;         violation
C{addr} with 1001 entries
C{ping} with nonce "1", -1, 2^64, 1.5,      violation
true, none, or a 5000-digit integer
arrays nested 8000 deep                     violation (not a JSON object)
a string holding a lone surrogate escape    violation (not Unicode)
(C{"\\udc00"}), in an unknown type
a line of max_message_bytes + 1             violation (too long)
a second C{version}                         violation
a line of exactly max_message_bytes, of an  ignored: the connection stays, a handshake
unknown type; an unknown type; blank lines  (first) or a ping (after) still works
C{getaddr}, C{addr}, C{ping}, C{pong}, or   violation (first only: before the
a second C{verack}, before the handshake    handshake; fine after it)
==========================================  ==========================================

Other attacks (one test each):

==========================================  ==========================================
What is done                                What the node must do
==========================================  ==========================================
5 violations from one host                  that host is discouraged, 127.0.0.1 is not
a line that never ends, 512 bytes every     closed as a violation once it passes
50 ms                                       max_message_bytes
a valid version, one byte every 0.1 s       closed by the handshake timeout (1 s), not
                                            a violation
5000 pings in one write                     all answered; no violation
50 C{addr} of 10 fresh addresses each       the per-peer token bucket holds: the book
(addr_bucket_tokens = 20)                   grows by at most 20
20 connections one after the other, each    each connection's bucket starts at 1
one C{addr} of 250 fresh addresses, then    token: the book grows by at most 20
closed
200 C{getaddr} in two bursts                only the first is answered
500 silent connections in a burst, 250      live connections never exceed
from a local host and 250 from another      max_connections (16); the other /16
/16                                         never holds more than its cap (4)
a peer that never reads while the node      dropped with "not reading"; the honest
broadcasts 12 KB messages                   peer gets every message
a version with the victim's own node_id     closed as a self-connection
a version with the honest peer's node_id    the newer connection is closed as a
                                            duplicate; the honest one is kept
==========================================  ==========================================

(An attacker claiming some other node's id without TLS is not a case:
without C{--tls} a node id is just a name.)
"""

from __future__ import annotations

import itertools
import json

from twisted.internet import defer, reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol

from bitp2p.errors import (
    DuplicateConnection,
    HandshakeTimeout,
    ProtocolViolation,
    SelfConnection,
)
from bitp2p.peer import PeerState

from .test_network import NetworkTestCase, peerIds

LIMIT = 16384  # the victim's max_message_bytes

VICTIM = dict(
    max_message_bytes=LIMIT,
    max_outbound=0,
    handshake_timeout_s=5.0,
    inactivity_timeout_s=10.0,
)

_sources = itertools.count(2)


def newSource() -> str:
    """
    A loopback address not used before in this process: 127.0.0.2 and up.
    """
    n = next(_sources)
    return f"127.0.{n // 250}.{n % 250 + 2}"


def line(message: object) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def version(node_id: str = "mallory", port: int = 0) -> bytes:
    return line({"type": "version", "node_id": node_id, "port": port})


VERACK = line({"type": "verack"})


def padded(kind: str, size: int) -> bytes:
    """
    A line (delimiter excluded) of exactly C{size} bytes: a message of
    type C{kind} with a padding field.
    """
    head = b'{"type":"%s","pad":"' % kind.encode()
    return head + b"x" * (size - len(head) - 2) + b'"}'


class Raw(Protocol):
    """
    An attacker: writes what the test says, records what arrives.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.lines: list[bytes] = []
        self.closed = False
        self._lost: list[Deferred] = []

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        *done, self.buffer = self.buffer.split(b"\n")
        self.lines.extend(done)

    def messages(self) -> list[dict]:
        return [json.loads(each) for each in self.lines if each]

    def connectionLost(self, reason) -> None:
        self.closed = True
        waiting, self._lost = self._lost, []
        for d in waiting:
            d.callback(None)

    def send(self, data: bytes) -> None:
        self.transport.write(data)

    def whenLost(self) -> Deferred:
        if self.closed:
            return defer.succeed(None)
        d: Deferred = Deferred()
        self._lost.append(d)
        return d

    def abort(self) -> Deferred:
        if not self.closed:
            self.transport.abortConnection()
        return self.whenLost()


def victimSide(victim, raw: Raw):
    """
    The victim's L{Peer} of C{raw}'s connection, or L{None}.
    """
    here = raw.transport.getHost()
    for peer in victim.connections():
        if peer.wire.transport is None:
            continue
        there = peer.wire.getPeer()
        if (there.host, there.port) == (here.host, here.port):
            return peer
    return None


class AdversarialTestCase(NetworkTestCase):
    timeout = 60

    async def setUpVictim(self, **config):
        """
        A victim node, and an honest node connected to it and established
        on both sides; each records the C{chat} messages it gets.
        """
        for key, value in VICTIM.items():
            config.setdefault(key, value)
        victim = self.startNode(**config)
        honest = self.startNode(max_outbound=0)
        victim.chats, honest.chats = [], []
        victim.registerMessage("chat", lambda peer, m: victim.chats.append(m["n"]))
        honest.registerMessage("chat", lambda peer, m: honest.chats.append(m["n"]))
        await honest.connect("127.0.0.1", victim.listeningPort)
        await self.waitFor(lambda: honest.node_id in peerIds(victim), "victim to list honest", 10)
        self.chatCount = itertools.count()
        return victim, honest

    async def connectRaw(self, victim, source: str | None = None) -> Raw:
        endpoint = TCP4ClientEndpoint(
            reactor,
            "127.0.0.1",
            victim.listeningPort,
            timeout=10,
            bindAddress=(source or newSource(), 0),
        )
        raw = await endpoint.connect(Factory.forProtocol(Raw))
        self.addCleanup(raw.abort)
        return raw

    async def accepted(self, victim, raw: Raw):
        """
        The victim's side of C{raw}, once the victim has accepted it.
        """
        await self.waitFor(lambda: victimSide(victim, raw) is not None, "the accept", 5)
        return victimSide(victim, raw)

    async def established(self, victim, raw: Raw, node_id: str = "mallory"):
        """
        Complete a valid handshake on C{raw}; the victim's side of it.
        """
        raw.send(version(node_id) + VERACK)
        await self.waitFor(
            lambda: (p := victimSide(victim, raw)) is not None and p.established,
            "the attacker's handshake",
            5,
        )
        return victimSide(victim, raw)

    async def assertLost(self, raw: Raw, what: str, seconds: float = 5.0) -> None:
        await self.waitFor(lambda: raw.closed, what, seconds)

    async def assertServing(self, victim, honest) -> None:
        """
        The victim is up and serves the honest peer: it lists it, a ping
        round trip completes, a message crosses each way, and a fresh node
        can connect.
        """
        self.assertTrue(victim.running)
        self.assertIn(honest.node_id, peerIds(victim))
        self.assertIn(victim.node_id, peerIds(honest))
        peer = victim.findPeer(honest.node_id)
        await self.waitFor(lambda: peer.ping_sent_at is None, "no ping outstanding", 5)
        victim.pingAll()
        self.assertIsNotNone(peer.ping_sent_at)
        await self.waitFor(
            lambda: peer.ping_sent_at is None or peer.close_reason is not None,
            "the honest peer's pong",
            5,
        )
        self.assertIsNone(peer.close_reason)
        self.assertIsNotNone(peer.rtt_s)
        n = next(self.chatCount)
        victim.sendAll({"type": "chat", "n": n})
        honest.sendAll({"type": "chat", "n": n})
        await self.waitFor(
            lambda: n in victim.chats and n in honest.chats, "a chat message both ways", 5
        )
        fresh = self.startNode(max_outbound=0)
        other = await fresh.connect("127.0.0.1", victim.listeningPort)
        self.assertEqual(other.node_id, victim.node_id)
        await fresh.stopService()
        self.assertIn(honest.node_id, peerIds(victim))


# -- malformed input -------------------------------------------------------

# (name, the bytes sent, outcome): outcome is "violation" either way,
# "tolerated" either way, or "early" (a violation before the handshake only).
MALFORMED = [
    ("invalidJson", b'{"type":"ping",nonce:1}\n', "violation"),
    ("invalidUtf8", b'{"type":"\xff\xfe"}\n', "violation"),
    ("nulBytes", b"\x00\x00\x00\x00\n", "violation"),
    ("nulAfterObject", b'{"type":"ping","nonce":1}\x00\n', "violation"),
    ("jsonList", b"[1,2,3]\n", "violation"),
    ("jsonNumber", b"42\n", "violation"),
    ("jsonString", b'"version"\n', "violation"),
    ("jsonNull", b"null\n", "violation"),
    ("missingType", line({"nonce": 1}), "violation"),
    ("numberType", line({"type": 7}), "violation"),
    ("nullType", line({"type": None}), "violation"),
    ("listType", line({"type": ["ping"]}), "violation"),
    ("versionNodeIdNumber", line({"type": "version", "node_id": 5, "port": 0}), "violation"),
    ("versionPortString", line({"type": "version", "node_id": "m", "port": "8333"}), "violation"),
    ("versionPortTooBig", line({"type": "version", "node_id": "m", "port": 70000}), "violation"),
    ("versionPortNegative", line({"type": "version", "node_id": "m", "port": -1}), "violation"),
    (
        "versionUserAgentTooLong",
        line({"type": "version", "node_id": "m", "port": 0, "user_agent": "u" * 300}),
        "violation",
    ),
    ("addrPeersString", line({"type": "addr", "peers": "1.2.3.4:5"}), "violation"),
    ("addr1001Entries", line({"type": "addr", "peers": ["1.1.1.1:1"] * 1001}), "violation"),
    ("pingNonceString", line({"type": "ping", "nonce": "1"}), "violation"),
    ("pingNonceNegative", line({"type": "ping", "nonce": -1}), "violation"),
    ("pingNonce2To64", line({"type": "ping", "nonce": 2**64}), "violation"),
    ("pingNonceFloat", line({"type": "ping", "nonce": 1.5}), "violation"),
    ("pingNonceBool", line({"type": "ping", "nonce": True}), "violation"),
    ("pingNoNonce", line({"type": "ping"}), "violation"),
    ("pingNonce5000Digits", b'{"type":"ping","nonce":' + b"9" * 5000 + b"}\n", "violation"),
    ("deeplyNestedArrays", b"[" * 8000 + b"]" * 8000 + b"\n", "violation"),
    ("loneSurrogate", b'{"type":"hello","name":"\\udc00"}\n', "violation"),
    ("overLimit", padded("junk", LIMIT + 1) + b"\n", "violation"),
    ("secondVersion", version("mallory"), "violation"),
    ("justUnderLimit", padded("junk", LIMIT) + b"\n", "tolerated"),
    ("unknownType", line({"type": "hello", "x": [1, {"y": None}]}), "tolerated"),
    ("blankLines", b"\n\r\n\n", "tolerated"),
    ("getaddrEarly", line({"type": "getaddr"}), "early"),
    ("addrEarly", line({"type": "addr", "peers": ["1.2.3.4:5"]}), "early"),
    ("pingEarly", line({"type": "ping", "nonce": 1}), "early"),
    ("pongEarly", line({"type": "pong", "nonce": 1}), "early"),
    ("secondVerackEarly", VERACK + VERACK, "early"),
]


class MalformedInputTests(AdversarialTestCase):
    """
    One test per line of L{MALFORMED}, generated below.
    """

    async def sendFirst(self, victim, payload: bytes, outcome: str) -> None:
        source = newSource()
        raw = await self.connectRaw(victim, source)
        side = await self.accepted(victim, raw)
        before = victim.counters["violations"]
        if payload == version():
            payload = version() + payload  # a second version needs a first one
        raw.send(payload)
        if outcome == "tolerated":
            raw.send(version() + VERACK)
            await self.waitFor(lambda: side.established, "the handshake after it", 5)
            self.assertFalse(raw.closed)
            self.assertEqual(victim.counters["violations"], before)
            await raw.abort()
            return
        await self.assertLost(raw, "the attacker to be closed")
        self.assertIsInstance(side.close_reason, ProtocolViolation)
        self.assertEqual(victim.counters["violations"], before + 1)
        self.assertEqual(victim.misbehavior.violations(source), 1)

    async def sendAfterHandshake(self, victim, payload: bytes, outcome: str) -> None:
        source = newSource()
        raw = await self.connectRaw(victim, source)
        side = await self.established(victim, raw)
        before = victim.counters["violations"]
        raw.send(payload)
        if outcome in ("tolerated", "early"):
            raw.send(line({"type": "ping", "nonce": 4242}))
            await self.waitFor(
                lambda: {"type": "pong", "nonce": 4242} in raw.messages() or raw.closed,
                "the pong after it",
                5,
            )
            self.assertFalse(raw.closed, side.close_reason)
            self.assertEqual(victim.counters["violations"], before)
            self.assertIn("mallory", peerIds(victim))
            await raw.abort()
            return
        await self.assertLost(raw, "the attacker to be closed")
        self.assertIsInstance(side.close_reason, ProtocolViolation)
        self.assertEqual(victim.counters["violations"], before + 1)
        self.assertEqual(victim.misbehavior.violations(source), 1)

    async def malformed(self, payload: bytes, outcome: str) -> None:
        victim, honest = await self.setUpVictim()
        await self.sendFirst(victim, payload, outcome)
        await self.sendAfterHandshake(victim, payload, outcome)
        await self.assertServing(victim, honest)
        self.assertEqual(victim.misbehavior.violations("127.0.0.1"), 0)
        self.assertFalse(victim.isDiscouraged("127.0.0.1"))


def _malformedTest(payload: bytes, outcome: str):
    async def test(self):
        await self.malformed(payload, outcome)

    return test


for _name, _payload, _outcome in MALFORMED:
    _test = _malformedTest(_payload, _outcome)
    _test.__name__ = f"test_{_name}"
    _test.__doc__ = f"{_name}: {_outcome}"
    setattr(MalformedInputTests, _test.__name__, _test)
del _name, _payload, _outcome, _test


class ProtocolAbuseTests(AdversarialTestCase):
    async def test_fiveViolationsFromOneHostDiscourageIt(self):
        victim, honest = await self.setUpVictim()
        source = newSource()
        for i in range(5):
            raw = await self.connectRaw(victim, source)
            raw.send(b"not json\n")
            await self.assertLost(raw, f"violation {i + 1} to close the connection")
        self.assertEqual(victim.counters["violations"], 5)
        self.assertTrue(victim.isDiscouraged(source))
        self.assertFalse(victim.isDiscouraged("127.0.0.1"))
        self.assertEqual(victim.misbehavior.violations(source), 0)  # reset once discouraged
        await self.assertServing(victim, honest)

    async def test_lineThatNeverEndsIsClosedAtTheLimit(self):
        victim, honest = await self.setUpVictim(max_message_bytes=4096)
        raw = await self.connectRaw(victim)
        side = await self.established(victim, raw)
        raw.send(b'{"type":"junk","pad":"')
        sent = 0
        while not raw.closed and sent < 3 * 4096:
            raw.send(b"x" * 512)
            sent += 512
            await task.deferLater(reactor, 0.05)
        await self.assertLost(raw, "the endless line to be cut")
        self.assertLessEqual(sent, 4096 + 2 * 512)
        self.assertIsInstance(side.close_reason, ProtocolViolation)
        self.assertIn("longer than 4096", str(side.close_reason))
        self.assertEqual(victim.counters["violations"], 1)
        self.assertLessEqual(side.wire.bufferedBytes, 4096)
        await self.assertServing(victim, honest)

    async def test_versionDribbledByteByByteHitsTheHandshakeTimeout(self):
        victim, honest = await self.setUpVictim(handshake_timeout_s=1.0)
        raw = await self.connectRaw(victim)
        side = await self.accepted(victim, raw)
        data = version() + VERACK
        started = reactor.seconds()
        for i in range(len(data)):
            if raw.closed:
                break
            raw.send(data[i : i + 1])
            await task.deferLater(reactor, 0.1)
        await self.assertLost(raw, "the handshake timeout")
        self.assertLess(reactor.seconds() - started, 3.0)
        self.assertIsInstance(side.close_reason, HandshakeTimeout)
        self.assertNotEqual(side.state, PeerState.ESTABLISHED)
        self.assertIsNone(side.established_at)
        self.assertEqual(victim.counters["violations"], 0)
        await self.assertServing(victim, honest)


class FloodTests(AdversarialTestCase):
    async def test_pingFloodIsAnswered(self):
        victim, honest = await self.setUpVictim()
        raw = await self.connectRaw(victim)
        side = await self.established(victim, raw)
        raw.send(b"".join(line({"type": "ping", "nonce": i}) for i in range(5000)))

        def pongs():
            return [m["nonce"] for m in raw.messages() if m["type"] == "pong"]

        await self.waitFor(lambda: len(pongs()) >= 5000 or raw.closed, "5000 pongs", 15)
        self.assertFalse(raw.closed, side.close_reason)
        self.assertEqual(pongs(), list(range(5000)))
        self.assertEqual(victim.counters["violations"], 0)
        self.assertLessEqual(len(side.recv_per_type), 64)
        await self.assertServing(victim, honest)

    async def test_addrFloodIsHeldByTheTokenBucket(self):
        bucket = 20
        victim, honest = await self.setUpVictim(addr_bucket_tokens=bucket, addr_rate_per_s=0.1)
        raw = await self.connectRaw(victim)
        side = await self.established(victim, raw)
        await task.deferLater(reactor, 0.2)  # let the handshake's addresses settle
        known = len(victim.book)
        now = int(reactor.seconds())
        # Fresh addresses, one /16 each, so that the book would take them all.
        flood = b"".join(
            line(
                {
                    "type": "addr",
                    "peers": [
                        {"addr": f"{1 + (m * 10 + i) // 200}.{(m * 10 + i) % 200}.0.1:8333", "time": now}
                        for i in range(10)
                    ],
                }
            )
            for m in range(50)
        )
        raw.send(flood + line({"type": "ping", "nonce": 77}))
        await self.waitFor(
            lambda: {"type": "pong", "nonce": 77} in raw.messages() or raw.closed,
            "the flood to be handled",
            5,
        )
        self.assertFalse(raw.closed, side.close_reason)
        grown = len(victim.book) - known
        self.assertGreater(grown, 0)
        self.assertLessEqual(grown, bucket)
        self.assertEqual(victim.counters["violations"], 0)
        await self.assertServing(victim, honest)
        self.assertLessEqual(len(victim.book) - known, bucket)

    async def test_reconnectingBuysOneAddressPerConnection(self):
        # Issue 16, item 5: each connection sends one addr of fresh entries
        # and closes, again and again. A new connection's bucket holds one
        # token (Bitcoin Core's), so the book grows by at most one address
        # per connection (it was ten).
        connections, entries = 20, 250
        victim, honest = await self.setUpVictim(max_message_bytes=1 << 20, addr_rate_per_s=0.1)
        await task.deferLater(reactor, 0.2)  # let the handshake's addresses settle
        known = len(victim.book)
        now = int(reactor.seconds())
        for n in range(connections):
            raw = await self.connectRaw(victim)
            side = await self.established(victim, raw, f"mallory{n}")
            fresh = [
                {"addr": f"{1 + n}.{i}.0.1:8333", "time": now} for i in range(entries)
            ]
            raw.send(line({"type": "addr", "peers": fresh}) + line({"type": "ping", "nonce": n}))
            await self.waitFor(
                lambda: {"type": "pong", "nonce": n} in raw.messages() or raw.closed,
                "the addr to be handled",
                5,
            )
            self.assertFalse(raw.closed, side.close_reason)
            await raw.abort()
        grown = len(victim.book) - known
        self.assertGreater(grown, 0)
        self.assertLessEqual(grown, connections)
        self.assertEqual(victim.counters["violations"], 0)
        await self.assertServing(victim, honest)

    async def test_onlyTheFirstGetaddrIsAnswered(self):
        victim, honest = await self.setUpVictim()
        raw = await self.connectRaw(victim)
        side = await self.established(victim, raw)
        own = str(victim.listeningAddress)

        def answers():
            found = 0
            for m in raw.messages():
                if m["type"] != "addr":
                    continue
                entries = [e["addr"] if isinstance(e, dict) else e for e in m["peers"]]
                if entries != [own]:  # not the node advertising itself
                    found += 1
            return found

        for nonce in (1, 2):
            raw.send(line({"type": "getaddr"}) * 100 + line({"type": "ping", "nonce": nonce}))
            await self.waitFor(
                lambda: {"type": "pong", "nonce": nonce} in raw.messages() or raw.closed,
                "the getaddrs to be handled",
                5,
            )
        self.assertFalse(raw.closed, side.close_reason)
        self.assertEqual(answers(), 1)
        self.assertEqual(side.recv_per_type["getaddr"][0], 200)
        self.assertEqual(victim.counters["violations"], 0)
        await self.assertServing(victim, honest)

    async def test_connectionBurstKeepsTheLimits(self):
        victim, honest = await self.setUpVictim(max_connections=16, max_inbound_per_group=4)
        local, foreign = "127.0.0.200", "127.77.0.1"
        seen = {"connections": 0, "foreign": 0, "accepts": 0}
        accept = victim.connman.admit

        def watched(addr):
            wire = accept(addr)
            seen["accepts"] += 1
            seen["connections"] = max(seen["connections"], len(victim.connman))
            seen["foreign"] = max(seen["foreign"], victim.connman.inboundFrom("127.77.0.0/16"))
            return wire

        victim.connman.admit = watched
        self.addCleanup(delattr, victim.connman, "admit")
        attempts = []
        for i in range(500):
            endpoint = TCP4ClientEndpoint(
                reactor,
                "127.0.0.1",
                victim.listeningPort,
                timeout=10,
                bindAddress=(local if i % 2 else foreign, 0),
            )
            attempts.append(endpoint.connect(Factory.forProtocol(Raw)))
        results = await defer.DeferredList(attempts, consumeErrors=True)
        raws = [raw for ok, raw in results if ok]
        for raw in raws:
            self.addCleanup(raw.abort)
        await self.waitFor(lambda: seen["accepts"] >= len(raws), "the victim to accept", 15)
        self.assertGreater(len(raws), 0)
        self.assertTrue(victim.running)
        # One over at most: a peer evicted to make room is dropped at once,
        # its socket gone on the next turn of the reactor, and no other is
        # evicted until then.
        self.assertLessEqual(seen["connections"], 17)
        self.assertLessEqual(seen["foreign"], 4)
        self.assertLessEqual(len(victim.connman), 16)
        # Those refused were closed at once: what stays is within the limits.
        await self.waitFor(
            lambda: sum(not raw.closed for raw in raws) <= 15, "refused ones to be closed", 10
        )
        self.assertIn(honest.node_id, peerIds(victim))
        for raw in raws:
            raw.abort()
        await self.waitFor(lambda: len(victim.connman) == 1, "the burst to be gone", 10)
        self.assertEqual(victim.connman.inboundFrom("127.77.0.0/16"), 0)
        await self.assertServing(victim, honest)


class SlowPeerTests(AdversarialTestCase):
    async def test_peerThatNeverReadsIsDropped(self):
        import socket

        victim, honest = await self.setUpVictim(max_send_buffer_bytes=64 * 1024)
        raw = await self.connectRaw(victim)
        side = await self.established(victim, raw)
        raw.transport.pauseProducing()  # never read again
        raw.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        side.wire.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        news = []
        honest.registerMessage("news", lambda peer, m: news.append(m["n"]))
        toHonest = victim.findPeer(honest.node_id)
        sent = 0
        for n in range(500):  # at most 6 MB
            if side.close_reason is not None:
                break
            await toHonest.whenDrained()
            victim.sendAll({"type": "news", "n": n, "text": "x" * 12_000})
            sent += 1
            await task.deferLater(reactor, 0.01)
        # (The attacker, not reading, would not notice the reset: the
        # victim's side of the connection is what is checked.)
        await self.waitFor(lambda: side.state is PeerState.CLOSED, "the sluggard to be dropped", 5)
        self.assertNotIn(side, victim.connman)
        self.assertIn("not reading", str(side.close_reason))
        self.assertLessEqual(side.wire._writtenWhilePaused, 64 * 1024 + 13_000)
        await self.waitFor(lambda: len(news) == sent, "the honest peer to get every message", 10)
        self.assertEqual(news, list(range(sent)))
        self.assertEqual(victim.counters["violations"], 0)
        await self.assertServing(victim, honest)


class IdentityTests(AdversarialTestCase):
    async def test_victimsOwnIdIsASelfConnection(self):
        victim, honest = await self.setUpVictim()
        raw = await self.connectRaw(victim)
        side = await self.accepted(victim, raw)
        raw.send(version(victim.node_id, port=4444) + VERACK)
        await self.assertLost(raw, "the self-connection to be closed")
        self.assertIsInstance(side.close_reason, SelfConnection)
        self.assertIsNone(side.established_at)
        self.assertEqual(peerIds(victim), {honest.node_id})
        await self.assertServing(victim, honest)

    async def test_honestPeersIdFromTheSameHostIsADuplicate(self):
        victim, honest = await self.setUpVictim()
        original = victim.findPeer(honest.node_id)
        raw = await self.connectRaw(victim, source="127.0.0.1")
        side = await self.accepted(victim, raw)
        raw.send(version(honest.node_id, port=4444) + VERACK)
        await self.assertLost(raw, "the duplicate to be closed")
        self.assertIsInstance(side.close_reason, DuplicateConnection)
        self.assertIs(victim.findPeer(honest.node_id), original)
        self.assertIsNone(original.close_reason)
        self.assertEqual(peerIds(victim), {honest.node_id})
        await self.assertServing(victim, honest)

    async def test_honestPeersIdFromAnotherHostIsKeptApart(self):
        """
        Without TLS a node id is a claim (PROTOCOL.md, Handshake): claimed
        from another host it is another peer, let in beside the honest one,
        which keeps its connection and its place.
        """
        victim, honest = await self.setUpVictim()
        original = victim.findPeer(honest.node_id)
        raw = await self.connectRaw(victim)
        side = await self.accepted(victim, raw)
        raw.send(version(honest.node_id, port=4444) + VERACK)
        await self.waitFor(lambda: side.established, "the claimant to be let in", 5)
        self.assertFalse(raw.closed)
        self.assertIs(victim.findPeer(honest.node_id), original)
        self.assertIsNone(original.close_reason)
        await self.assertServing(victim, honest)

    async def test_aSquatterDoesNotLockTheRealNodeOut(self):
        """
        Issue 16, item 3: while the real node is away, another host connects
        with its id and stays; the real node comes back and is let in (it
        used to be refused as a "duplicate" for as long as the squatter
        stayed).
        """
        victim, honest = await self.setUpVictim()
        await honest.disconnect(victim.node_id)
        await self.waitFor(lambda: honest.node_id not in peerIds(victim), "honest to be gone", 5)
        raw = await self.connectRaw(victim)
        side = await self.accepted(victim, raw)
        raw.send(version(honest.node_id, port=4444) + VERACK)
        await self.waitFor(lambda: side.established, "the squatter to be let in", 5)
        back = await honest.connect("127.0.0.1", victim.listeningPort)
        self.assertEqual(back.node_id, victim.node_id)
        await self.waitFor(
            lambda: sum(p.node_id == honest.node_id for p in victim.peers()) == 2,
            "the real node beside the squatter",
            5,
        )
        raw.abort()
        await self.waitFor(lambda: side.close_reason is not None, "the squatter to go", 5)
        await self.assertServing(victim, honest)

