"""
The crawler (L{bitp2p.bitcoin.crawl}) and C{bitp2p crawl}
(L{bitp2p.ops.crawl}).

Pacing and bounds run on a L{MemoryReactorClock}; the crawls run on
loopback with the real reactor (trial TestCases, as tests/test_network.py):
a line of real regtest nodes, and scripted peers built on the codec.
"""

from __future__ import annotations

import csv
import io
import json
import os
import struct

from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from bitp2p.address import Address, address_network
from bitp2p.bitcoin import codec
from bitp2p.bitcoin.crawl import FIELDS, Crawler, crawl
from bitp2p.bitcoin.networks import network
from bitp2p.node import Node, NodeConfig
from bitp2p.ops import crawl as crawlcli

from .helpers import tempDir

REGTEST = network("regtest")
MAINNET = network("mainnet")


def loopback(port: int) -> Address:
    return Address.of("127.0.0.1", port)


class PacingTests(SynchronousTestCase):
    """
    Concurrency, rate and C{max_nodes}, on a memory reactor (nothing
    connects: attempts end when the test fails them).
    """

    seeds = [f"10.0.0.{i}:18444" for i in range(1, 11)]

    def dialed(self, reactor) -> list[tuple[str, int]]:
        return [(host, port) for host, port, *_ in reactor.tcpClients]

    def fail(self, reactor, index: int) -> None:
        host, port, factory, *_ = reactor.tcpClients[index]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))

    def test_atMostConcurrencyAttemptsAreOpen(self):
        clock = MemoryReactorClock()
        crawler = Crawler(clock, "regtest", self.seeds, concurrency=3, rate_per_s=1000)
        crawler.start()
        clock.advance(10)
        self.assertEqual(len(clock.tcpClients), 3)
        self.fail(clock, 0)
        clock.advance(1)
        self.assertEqual(len(clock.tcpClients), 4)
        self.assertEqual(crawler.progress().in_flight, 3)

    def test_newConnectionsArePacedByTheRate(self):
        clock = MemoryReactorClock()
        Crawler(clock, "regtest", self.seeds, concurrency=100, rate_per_s=2).start()
        self.assertEqual(len(clock.tcpClients), 1)
        clock.pump([0.5] * 5)
        self.assertEqual(len(clock.tcpClients), 6)
        # After a lull of more than a second, a second's worth at once.
        clock.advance(10)
        self.assertEqual(len(clock.tcpClients), 9)
        self.assertEqual(self.dialed(clock)[0], ("10.0.0.1", 18444))

    def test_maxNodesBoundsTheAddressesTried(self):
        clock = MemoryReactorClock()
        snapshots = []
        crawler = Crawler(clock, "regtest", self.seeds, max_nodes=4, rate_per_s=1000)
        crawler.start().addCallback(snapshots.append)
        clock.advance(1)
        self.assertEqual(len(clock.tcpClients), 4)
        for i in range(4):
            self.fail(clock, i)
        clock.advance(1)
        self.assertEqual(len(clock.tcpClients), 4)
        [snapshot] = snapshots
        summary = snapshot.summary()
        self.assertEqual((summary["tried"], summary["known"], summary["reachable"]), (4, 10, 0))
        self.assertEqual(summary["errors"], {"connection refused": 4})
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_seedNamesResolveToAllTheirAddressesAndOneThatDoesNotIsSkipped(self):
        class Resolver:
            def resolveHostName(self, receiver, host, port):
                from twisted.internet.address import IPv4Address, IPv6Address

                receiver.resolutionBegan(None)
                if host == "seed.example":
                    receiver.addressResolved(IPv4Address("TCP", "10.1.0.1", 0))
                    receiver.addressResolved(IPv6Address("TCP", "fd00::1", 0))
                    receiver.addressResolved(IPv4Address("TCP", "10.1.0.1", 0))
                receiver.resolutionComplete()

        clock = MemoryReactorClock()
        crawler = Crawler(
            clock,
            MAINNET,
            ["seed.example:8333", "nothing.example:8333", "10.2.0.1:8333"],
            resolver=Resolver(),
        )
        crawler.start()
        clock.advance(1)
        self.assertEqual(
            sorted(self.dialed(clock)), [("10.1.0.1", 8333), ("10.2.0.1", 8333), ("fd00::1", 8333)]
        )

    def test_theNetworksDNSSeedsAreTheDefault(self):
        seen = []

        class Resolver:
            def resolveHostName(self, receiver, host, port):
                seen.append((host, port))
                receiver.resolutionComplete()

        snapshots = []
        Crawler(MemoryReactorClock(), MAINNET, resolver=Resolver()).start().addCallback(
            snapshots.append
        )
        self.assertEqual(seen, [(host, 8333) for host in MAINNET.dns_seeds])
        [snapshot] = snapshots  # (nothing to dial: done)
        self.assertEqual(snapshot.records, [])


# -- scripted peers -----------------------------------------------------------------


def addrV2Payload(entries: list[tuple[int, bytes, int]]) -> bytes:
    """
    An addrv2 of raw BIP 155 entries C{(network id, bytes, port)}.
    """
    out = codec.compactSize(len(entries))
    for net, raw, port in entries:
        out += struct.pack("<I", 1700000000) + codec.compactSize(1) + bytes((net,))
        out += codec.compactSize(len(raw)) + raw + struct.pack(">H", port)
    return out


class ScriptedPeer(Protocol):
    """
    A Bitcoin peer playing a script (see L{ScriptedFactory}); it records
    the commands it received.
    """

    def connectionMade(self):
        f = self.factory
        self.received = []
        self.buffer = b""
        self.answered = False
        f.peers.append(self)
        if f.script == "close":
            self.transport.loseConnection()
        elif f.script == "wrongmagic":
            self.transport.write(codec.frame(MAINNET.magic, "version", self.version()))
        elif f.versionFirst:
            self.send("version", self.version())

    def connectionLost(self, reason):
        delayed = getattr(self, "delayed", None)
        if delayed is not None and delayed.active():
            delayed.cancel()

    def version(self) -> bytes:
        f = self.factory
        return codec.encodeVersion(
            nonce=7,
            timestamp=1700000000,
            services=f.services,
            user_agent=f.userAgent,
            start_height=f.height,
            relay=True,
            version=f.peerVersion,
        )

    def send(self, command, payload=b""):
        self.transport.write(codec.frame(REGTEST.magic, command, payload))

    def dataReceived(self, data):
        self.buffer += data
        while len(self.buffer) >= 24:
            command, length, _ = codec.parseHeader(self.buffer, REGTEST.magic)
            if len(self.buffer) < 24 + length:
                return
            payload, self.buffer = self.buffer[24 : 24 + length], self.buffer[24 + length :]
            self.received.append(command)
            self.handle(command, payload)

    def handle(self, command, payload):
        f = self.factory
        if f.script == "silent":
            return
        if command == "version":
            if not f.versionFirst:
                self.send("version", self.version())
            self.send("verack")
        elif command == "verack":
            if f.script == "mute":
                return
            # Core's chatter after the handshake, all to be ignored.
            self.send("sendcmpct", b"\x00" + struct.pack("<Q", 2))
            self.send("getheaders", struct.pack("<I", 70016) + b"\x00" + bytes(32))
            self.send("inv", codec.compactSize(1) + struct.pack("<I", 1) + bytes(32))
            self.send("feefilter", struct.pack("<q", 1000))
            # Its announcement of itself, alone, before any answer.
            self.send("addr", codec.encodeAddr([codec.AddrEntry(f.own, 1700000000, 9)]))
        elif command == "ping":
            self.send("pong", payload)
        elif command == "getaddr" and not self.answered and f.script != "mute":
            self.answered = True
            command = "addrv2" if f.addrv2 else "addr"
            if f.answerDelay:
                # (As Core's addr timer may hold the answer back.)
                self.delayed = reactor.callLater(f.answerDelay, self.send, command, f.answer)
            else:
                self.send(command, f.answer)


class ScriptedFactory(Factory):
    protocol = ScriptedPeer

    def __init__(
        self,
        script="answer",
        peerVersion=70016,
        versionFirst=False,
        addrv2=False,
        services=9,
        userAgent="/Satoshi:27.0.0/",
        height=100,
        answerDelay=0.0,
    ):
        self.script = script
        self.peerVersion = peerVersion
        self.versionFirst = versionFirst
        self.addrv2 = addrv2
        self.services = services
        self.userAgent = userAgent
        self.height = height
        self.answerDelay = answerDelay
        self.answer = codec.compactSize(0)
        self.own: Address | None = None
        self.peers: list[ScriptedPeer] = []


class ScriptedPeerTests(TestCase):
    timeout = 30

    def listen(self, factory) -> Address:
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        factory.own = loopback(port.getHost().port)
        return factory.own

    async def closedPort(self) -> Address:
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        address = loopback(port.getHost().port)
        await port.stopListening()
        return address

    def makeFactory(self, **kwargs) -> ScriptedFactory:
        return ScriptedFactory(**kwargs)

    @defer.inlineCallbacks
    def test_eachKindOfPeerIsRecordedAndTheCrawlGoesOn(self):
        # It announces itself at once, but its answer comes later than
        # the quiet period: the announcement makes the crawler wait on.
        old = self.makeFactory(
            peerVersion=70015,
            versionFirst=True,
            userAgent="/Satoshi:0.20.1/",
            height=700000,
            answerDelay=0.4,
        )
        modern = self.makeFactory(addrv2=True, services=1 | 8 | 1024)
        closing = self.makeFactory(script="close")
        wrongMagic = self.makeFactory(script="wrongmagic")
        silent = self.makeFactory(script="silent")
        mute = self.makeFactory(script="mute")
        A = self.listen(old)
        B = self.listen(modern)
        C = self.listen(closing)
        D = self.listen(wrongMagic)
        F = self.listen(silent)
        G = self.listen(mute)
        E = yield defer.ensureDeferred(self.closedPort())
        # The 70015 peer answers with plain addr, only routable entries
        # (loopback counts: bitp2p's is_routable), once.
        old.answer = codec.encodeAddr(
            [codec.AddrEntry(x, 1700000000, 1) for x in (B, C, D, E, F, G)]
        )
        onion = bytes(range(32))
        i2p = bytes(range(32, 64))
        modern.answer = addrV2Payload(
            [(4, onion, 9050), (5, i2p, 0), (1, bytes([127, 0, 0, 1]), A.port)]
        )
        snapshot = yield crawl(
            reactor,
            "regtest",
            [str(A)],
            timeout_s=0.5,
            rate_per_s=1000,
            addr_wait_s=5,
            quiet_s=0.2,
        )
        records = {r.address: r for r in snapshot.records}

        a = records[A]
        self.assertTrue(a.reachable)
        self.assertIsNone(a.error)
        self.assertEqual(
            (a.version, a.services, a.user_agent, a.start_height, a.relay),
            (70015, 9, "/Satoshi:0.20.1/", 700000, True),
        )
        self.assertEqual(a.service_names, ["NETWORK", "WITNESS"])
        self.assertIsNotNone(a.handshake_s)
        self.assertIsNotNone(a.ping_s)
        self.assertEqual(a.addresses, 7)  # itself, then its answer of six
        # No BIP 155 / 339 negotiation with a 70015 peer; one getaddr.
        self.assertEqual(old.peers[0].received, ["version", "verack", "ping", "getaddr"])

        b = records[B]
        self.assertTrue(b.reachable)
        self.assertEqual(b.service_names, ["NETWORK", "WITNESS", "NETWORK_LIMITED"])
        self.assertEqual(
            modern.peers[0].received,
            ["version", "wtxidrelay", "sendaddrv2", "verack", "ping", "getaddr"],
        )
        self.assertEqual(records[C].error, "closed before its version")
        self.assertTrue(records[D].error.startswith("wrong network magic f9beb4d9"), records[D].error)
        self.assertEqual(records[E].error, "connection refused")
        self.assertEqual(records[F].error, "handshake timeout (no version)")
        for x in (C, D, E, F):
            self.assertTrue(records[x].tried)
            self.assertFalse(records[x].reachable)
        # A peer that gives no address at all is left after the quiet
        # period, answered but with nothing learned.
        g = records[G]
        self.assertTrue(g.reachable)
        self.assertIsNone(g.error)
        self.assertEqual(g.addresses, 0)
        self.assertIsNotNone(g.ping_s)
        self.assertLess(snapshot.ended - snapshot.started, 2.0)

        # What the codec makes of B's onion and i2p entries is known, not
        # dialed (the stub codec of this branch skips them).
        entries, _ = codec.parseAddrV2(modern.answer)
        for entry in entries:
            network = address_network(entry.address)
            self.assertEqual(records[entry.address].network, network)
            self.assertEqual(records[entry.address].tried, network in ("ipv4", "ipv6"))
        summary = snapshot.summary()
        self.assertEqual((summary["reachable"], summary["tried"]), (3, 7))
        self.assertEqual(summary["by_version"], {70016: 2, 70015: 1})
        self.assertEqual(len(old.peers) + len(modern.peers), 2)  # each dialed once
        self.assertFalse(snapshot.stopped)

    @defer.inlineCallbacks
    def test_stopEndsTheCrawlWithWhatItHas(self):
        silent = self.makeFactory(script="silent")
        address = self.listen(silent)
        crawler = Crawler(reactor, "regtest", [str(address)], timeout_s=60)
        done = crawler.start()
        yield task.deferLater(reactor, 0.1)
        self.assertEqual(len(silent.peers), 1)
        self.assertEqual(crawler.stop(), done)
        snapshot = yield done
        self.assertTrue(snapshot.stopped)
        [record] = snapshot.records
        self.assertEqual(record.error, "stopped")
        self.assertEqual(crawler.progress().in_flight, 0)


# -- real bitp2p nodes -----------------------------------------------------------------


class RegtestNetworkTests(TestCase):
    timeout = 60

    async def line(self, count: int) -> list[Node]:
        """
        C{count} regtest nodes on loopback, each dialing the next one.
        """
        nodes = []
        for _ in range(count):
            node = Node(NodeConfig(network="regtest", port=0, interface="127.0.0.1", seeds=()))
            node.startService()
            self.addCleanup(lambda n=node: n.stopService() if n.running else None)
            nodes.append(node)
        for a, b in zip(nodes, nodes[1:]):
            await a.connect("127.0.0.1", b.listeningAddress.port)
        # Each knows the next one (it dialed it): the crawler, starting
        # from the first, must walk the answers to find the others.
        for _ in range(200):
            if all(b.listeningAddress in a.book for a, b in zip(nodes, nodes[1:])):
                break
            await task.deferLater(reactor, 0.05)
        return nodes

    @defer.inlineCallbacks
    def test_aLineOfFiftyTwoNodesIsFoundWholeFromOneSeed(self):
        nodes = yield defer.ensureDeferred(self.line(52))
        snapshot = yield crawl(
            reactor, "regtest", [str(nodes[0].listeningAddress)], timeout_s=5, rate_per_s=1000
        )
        expected = {n.listeningAddress for n in nodes}
        self.assertEqual({r.address for r in snapshot.records}, expected)
        for record in snapshot.records:
            self.assertTrue(record.reachable, record)
            self.assertIsNone(record.error)
            self.assertEqual(record.version, codec.PROTOCOL_VERSION)
            self.assertEqual(record.user_agent[:8], "/bitp2p:")
            self.assertEqual((record.services, record.relay), (0, False))
            self.assertGreater(record.addresses, 0)
            self.assertIsNotNone(record.ping_s)
            self.assertIsNotNone(record.handshake_s)
        summary = snapshot.summary()
        self.assertEqual((summary["reachable"], summary["tried"], summary["known"]), (52, 52, 52))
        self.assertEqual(summary["by_network"], {"ipv4": 52})
        yield defer.gatherResults([n.stopService() for n in nodes])
        for node in nodes:
            self.assertFalse(node.running)


class CommandLineTests(TestCase):
    timeout = 30

    def test_badOptionsAreOneLineAndStatus2(self):
        for argv in (
            ["--rate", "0"],
            ["--concurrency", "x"],
            ["--out", "snapshot.txt"],
            ["--network", "moon"],
            ["--seed", "nope"],
            ["--bogus"],
        ):
            out, err = io.StringIO(), io.StringIO()
            self.assertEqual(crawlcli.main(argv, stdout=out, stderr=err), 2, argv)
            self.assertEqual(err.getvalue().count("\n"), 1, err.getvalue())
            self.assertTrue(err.getvalue().startswith("bitp2p crawl: "))
            self.assertEqual(out.getvalue(), "")

    def test_mainDispatchesCrawl(self):
        import bitp2p.__main__ as entry

        called = []
        self.patch(crawlcli, "main", lambda argv: called.append(argv) or 2)
        self.assertEqual(entry.main(["crawl", "--rate", "0"]), 2)
        self.assertEqual(called, [["--rate", "0"]])

    async def node(self) -> Node:
        node = Node(NodeConfig(network="regtest", port=0, interface="127.0.0.1", seeds=()))
        node.startService()
        self.addCleanup(lambda: node.stopService() if node.running else None)
        return node

    def run_(self, *argv):
        options = crawlcli.Options()
        options.parseOptions(list(argv))
        out, err = io.StringIO(), io.StringIO()
        return crawlcli.CrawlRun(options, reactor, out, err), out, err

    @defer.inlineCallbacks
    def test_outputIsWrittenAsJSONOrCSVByItsExtension(self):
        a = yield defer.ensureDeferred(self.node())
        b = yield defer.ensureDeferred(self.node())
        yield b.connect("127.0.0.1", a.listeningAddress.port)
        yield b.connect("127.0.0.1", a.listeningAddress.port)
        directory = tempDir(self)
        for name in ("snapshot.json", "snapshot.csv"):
            path = os.path.join(directory, name)
            run, out, err = self.run_(
                "--network", "regtest", "--seed", str(b.listeningAddress), "--out", path
            )
            snapshot = yield run.start()
            self.assertEqual(snapshot.summary()["reachable"], 2)
            self.assertIn("Crawled regtest", out.getvalue())
            self.assertIn("2 reachable of 2 tried", out.getvalue())
            self.assertIn("/bitp2p:", out.getvalue())
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if name.endswith(".json"):
                document = json.loads(text)
                self.assertEqual(document["summary"]["reachable"], 2)
                self.assertEqual(
                    {n["address"] for n in document["nodes"]},
                    {str(a.listeningAddress), str(b.listeningAddress)},
                )
            else:
                rows = list(csv.DictReader(io.StringIO(text)))
                self.assertEqual(tuple(rows[0]), FIELDS)
                self.assertEqual({r["reachable"] for r in rows}, {"True"})
                self.assertEqual(len(rows), 2)

    @defer.inlineCallbacks
    def test_interruptStillWritesTheOutputAndTheSummary(self):
        silent = ScriptedFactory(script="silent")
        port = reactor.listenTCP(0, silent, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        path = os.path.join(tempDir(self), "partial.json")
        run, out, err = self.run_(
            "--network", "regtest", "--seed", f"127.0.0.1:{port.getHost().port}",
            "--timeout", "60", "--out", path,
        )
        run.start()
        yield task.deferLater(reactor, 0.1)
        snapshot = yield run.interrupt()
        self.assertTrue(snapshot.stopped)
        self.assertIn("Stopped regtest", out.getvalue())
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        self.assertEqual(document["nodes"][0]["error"], "stopped")
        self.assertTrue(document["summary"]["stopped"])
