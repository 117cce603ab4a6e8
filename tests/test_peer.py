"""
The per-connection protocol: framing, handshake, discovery messages and
keep-alive, on a StringTransport and a task.Clock. No sockets, no sleeping.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address
from bitp2p.errors import HandshakeFailed, HandshakeTimeout, PeerLost
from bitp2p.peer import CLOSE_GRACE_S, Direction, PeerSettings, PeerState

from .helpers import establish, lose, makePeer, receive, sent, version


class FramingTests(SynchronousTestCase):
    def test_messagesSplitAcrossChunksAreReassembled(self):
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        data = json.dumps(version()).encode() + b"\n"
        for i in range(len(data)):
            wire.dataReceived(data[i : i + 1])
        self.assertEqual(manager.kinds(), ["checkVersion"])
        self.assertEqual(peer.state, PeerState.GOT_VERSION)

    def test_severalMessagesInOneChunk(self):
        peer, wire, transport, manager, clock = makePeer()
        receive(wire, version(), {"type": "verack"}, {"type": "ping", "nonce": 1})
        self.assertTrue(peer.established)
        self.assertIn({"type": "pong", "nonce": 1}, sent(transport))

    def test_carriageReturnBeforeNewlineIsTolerated(self):
        peer, wire, transport, manager, clock = makePeer()
        wire.dataReceived(json.dumps(version()).encode() + b"\r\n" + b'{"type":"verack"}\r\n')
        self.assertTrue(peer.established)

    def test_emptyLinesAreIgnored(self):
        peer, wire, transport, manager, clock = makePeer()
        wire.dataReceived(b"\n\r\n\n" + json.dumps(version()).encode() + b"\n\n")
        self.assertEqual(peer.state, PeerState.GOT_VERSION)
        self.assertFalse(transport.disconnecting)

    def test_lineLongerThanMaximumIsViolation(self):
        peer, wire, transport, manager, clock = makePeer(maxLength=100)
        wire.dataReceived(b'{"type":"x","pad":"' + b"a" * 100 + b'"}\n')
        self.assertTrue(transport.disconnecting)
        self.assertEqual(manager.kinds(), ["violation"])

    def test_lineOfExactlyMaximumIsAccepted(self):
        line = json.dumps(version(pad="")).encode()
        peer, wire, transport, manager, clock = makePeer(maxLength=len(line))
        wire.dataReceived(line + b"\n")
        self.assertFalse(transport.disconnecting)
        self.assertEqual(peer.state, PeerState.GOT_VERSION)

    def test_unterminatedOversizedBufferIsViolation(self):
        peer, wire, transport, manager, clock = makePeer(maxLength=100)
        wire.dataReceived(b"a" * 60)
        self.assertFalse(transport.disconnecting)
        wire.dataReceived(b"a" * 60)
        self.assertTrue(transport.disconnecting)

    def test_invalidJSONIsViolation(self):
        peer, wire, transport, manager, clock = makePeer()
        wire.dataReceived(b"{not json\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(manager.kinds(), ["violation"])

    def test_nothingIsProcessedAfterAViolation(self):
        peer, wire, transport, manager, clock = makePeer()
        wire.dataReceived(b"[1]\n" + json.dumps(version()).encode() + b"\n")
        self.assertEqual(manager.kinds(), ["violation"])
        self.assertIsNone(peer.node_id)
        wire.dataReceived(json.dumps(version()).encode() + b"\n")
        self.assertEqual(manager.kinds(), ["violation"])

    def test_messagesBeforeAViolationInOneChunkAreHandled(self):
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        wire.dataReceived(json.dumps(version()).encode() + b"\n[1]\n")
        self.assertEqual(manager.kinds(), ["checkVersion", "violation"])
        self.assertEqual(peer.state, PeerState.GOT_VERSION)
        self.assertTrue(transport.disconnecting)

    def test_messagesBeforeAnOversizedLineInOneChunkAreHandled(self):
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND, maxLength=100)
        wire.dataReceived(
            json.dumps(version()).encode() + b"\n" + b"a" * 101 + b"\n" + b'{"type":"verack"}\n'
        )
        self.assertEqual(manager.kinds(), ["checkVersion", "violation"])
        self.assertIn("longer than 100 bytes", manager.events[-1][1])
        self.assertEqual(peer.state, PeerState.GOT_VERSION)

    def test_carriageReturnsOnlyBeforeNewlinesAreStripped(self):
        peer, wire, transport, manager, clock = establish()
        wire.dataReceived(b'{"type":"chat","t":"a\\r"}\r\n{"type":"chat","t":"b"}\n')
        self.assertEqual(
            manager.events[-2:],
            [("application", {"type": "chat", "t": "a\r"}), ("application", {"type": "chat", "t": "b"})],
        )

    def test_nothingIsHandledAfterTheConnectionStartsClosing(self):
        peer, wire, transport, manager, clock = establish()
        before = len(manager.events)
        wire.dataReceived(
            b'{"type":"chat","n":1}\n{"type":"ping","nonce":-1}\n{"type":"chat","n":2}\n'
        )
        self.assertEqual(
            [e[0] for e in manager.events[before:]], ["application", "violation"]
        )
        wire.dataReceived(b'{"type":"chat","n":3}\n')
        self.assertEqual(len(manager.events), before + 2)

    def test_bytesAreCounted(self):
        peer, wire, transport, manager, clock = makePeer()
        out = len(transport.value())
        data = json.dumps(version()).encode() + b"\n"
        wire.dataReceived(data)
        self.assertEqual(wire.bytesIn, len(data))
        self.assertEqual(wire.bytesOut, len(transport.value()))
        self.assertGreater(wire.bytesOut, out)
        self.assertEqual(peer.messages_in, 1)
        self.assertEqual(peer.messages_out, 2)  # version, verack


class HandshakeTests(SynchronousTestCase):
    def test_dialerSendsVersionAtOnce(self):
        peer, wire, transport, manager, clock = makePeer(Direction.OUTBOUND)
        [message] = sent(transport)
        self.assertEqual(message["type"], "version")
        self.assertEqual(message["node_id"], "us")
        self.assertEqual(message["port"], 5000)

    def test_acceptorWaitsForVersionThenSendsVersionAndVerack(self):
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        self.assertEqual(sent(transport), [])
        receive(wire, version())
        self.assertEqual([m["type"] for m in sent(transport)], ["version", "verack"])

    def test_dialerAnswersVersionWithVerack(self):
        peer, wire, transport, manager, clock = makePeer(Direction.OUTBOUND)
        transport.clear()
        receive(wire, version())
        self.assertEqual(sent(transport), [{"type": "verack"}])
        self.assertEqual(peer.state, PeerState.GOT_VERSION)

    def test_establishedAfterVersionAndVerack(self):
        for direction in Direction:
            peer, wire, transport, manager, clock = makePeer(direction)
            receive(wire, version(user_agent="/x:1/"))
            self.assertFalse(peer.established)
            receive(wire, {"type": "verack"})
            self.assertTrue(peer.established)
            self.assertEqual(peer.node_id, "them")
            self.assertEqual(peer.listen_port, 6000)
            self.assertEqual(peer.user_agent, "/x:1/")
            self.assertEqual(manager.kinds(), ["checkVersion", "established"])

    def test_verackBeforeVersionIsAccepted(self):
        peer, wire, transport, manager, clock = makePeer(Direction.OUTBOUND)
        receive(wire, {"type": "verack"})
        self.assertEqual(peer.state, PeerState.GOT_VERACK)
        receive(wire, version())
        self.assertTrue(peer.established)

    def test_whenEstablishedFiresWithThePeer(self):
        peer, wire, transport, manager, clock = makePeer()
        d = peer.whenEstablished()
        self.assertNoResult(d)
        receive(wire, version(), {"type": "verack"})
        self.assertIs(self.successResultOf(d), peer)
        self.assertIs(self.successResultOf(peer.whenEstablished()), peer)

    def test_whenEstablishedFailsWhenClosedFirst(self):
        peer, wire, transport, manager, clock = makePeer()
        d = peer.whenEstablished()
        lose(wire)
        self.failureResultOf(d, HandshakeFailed)
        self.failureResultOf(peer.whenEstablished(), HandshakeFailed)

    def test_otherMessageBeforeHandshakeIsViolation(self):
        for message in (
            {"type": "ping", "nonce": 1},
            {"type": "getaddr"},
            {"type": "addr", "peers": []},
            {"type": "pong", "nonce": 1},
        ):
            peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
            receive(wire, message)
            self.assertTrue(transport.disconnecting, message)
            self.assertEqual(manager.kinds(), ["violation"], message)

    def test_unknownTypeBeforeHandshakeIsIgnored(self):
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        receive(wire, {"type": "sendfeature", "x": 1}, version(), {"type": "verack"})
        self.assertFalse(transport.disconnecting)
        self.assertTrue(peer.established)
        self.assertNotIn("application", manager.kinds())

    def test_messageAfterVersionButBeforeVerackIsViolation(self):
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        receive(wire, version(), {"type": "getaddr"})
        self.assertTrue(transport.disconnecting)

    def test_secondVersionIsViolation(self):
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        receive(wire, version(), version())
        self.assertTrue(transport.disconnecting)
        self.assertIn("second version", manager.events[-1][1])

    def test_secondVersionAfterHandshakeIsViolation(self):
        peer, wire, transport, manager, clock = establish()
        receive(wire, version())
        self.assertTrue(transport.disconnecting)
        self.assertEqual(manager.kinds(), ["violation"])

    def test_verackAfterHandshakeIsIgnored(self):
        peer, wire, transport, manager, clock = establish()
        receive(wire, {"type": "verack"})
        self.assertFalse(transport.disconnecting)

    def test_refusedVersionClosesWithoutVerack(self):
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        manager.refusal = HandshakeFailed("no thanks")
        receive(wire, version())
        self.assertEqual(sent(transport), [])
        self.assertTrue(transport.disconnecting)
        d = peer.whenEstablished()
        lose(wire)
        self.assertEqual(str(self.failureResultOf(d).value), "no thanks")

    def test_handshakeTimeout(self):
        settings = PeerSettings(handshake_timeout_s=60)
        peer, wire, transport, manager, clock = makePeer(settings=settings)
        d = peer.whenEstablished()
        clock.advance(59.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        lose(wire)
        self.failureResultOf(d, HandshakeTimeout)

    def test_handshakeTimerStopsOnceEstablished(self):
        peer, wire, transport, manager, clock = makePeer()
        receive(wire, version(), {"type": "verack"})
        clock.advance(61)
        self.assertFalse(transport.disconnecting)

    def test_dialerAsksForAddressesAndBothAdvertise(self):
        peer, wire, transport, manager, clock = makePeer(Direction.OUTBOUND)
        transport.clear()
        clock.advance(10)
        receive(wire, version(), {"type": "verack"})
        messages = sent(transport)
        self.assertEqual(
            messages,
            [
                {"type": "verack"},
                {"type": "getaddr"},
                {"type": "addr", "peers": [{"addr": "127.0.0.1:5000", "time": 10}]},
            ],
        )
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        receive(wire, version(), {"type": "verack"})
        types = [m["type"] for m in sent(transport)]
        self.assertEqual(types, ["version", "verack", "addr"])

    def test_noTimerOutlivesTheConnection(self):
        peer, wire, transport, manager, clock = establish()
        peer.ping()
        lose(wire)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(peer.state, PeerState.CLOSED)
        self.assertIsInstance(manager.events[-1][1], PeerLost)


class DiscoveryTests(SynchronousTestCase):
    def test_getaddrIsAnsweredOnce(self):
        peer, wire, transport, manager, clock = establish(Direction.INBOUND)
        manager.known = [(Address.of("10.1.2.3", 5000), 7)]
        receive(wire, {"type": "getaddr"})
        self.assertEqual(
            sent(transport), [{"type": "addr", "peers": [{"addr": "10.1.2.3:5000", "time": 7}]}]
        )
        receive(wire, {"type": "getaddr"})
        self.assertEqual(sent(transport), [])
        self.assertFalse(transport.disconnecting)
        self.assertEqual(manager.kinds(), ["addressesFor"])
        self.assertEqual(manager.events[0][1], 1000)

    def test_addrWithMoreThan1000EntriesIsViolation(self):
        peer, wire, transport, manager, clock = establish()
        receive(wire, {"type": "addr", "peers": ["10.0.0.1:1"] * 1001})
        self.assertTrue(transport.disconnecting)
        self.assertEqual(manager.kinds(), ["violation"])

    def test_answerToGetaddrIsNotRelayedAndFitsTheBonusTokens(self):
        # Sending getaddr adds 1000 tokens to the peer's bucket (Bitcoin
        # Core), so a full answer gets through, then the limit holds again.
        peer, wire, transport, manager, clock = makePeer(Direction.OUTBOUND)
        receive(wire, version(), {"type": "verack"})
        manager.events.clear()
        peers = [f"10.0.{i // 250}.{i % 250 + 1}:5000" for i in range(1000)]
        receive(wire, {"type": "addr", "peers": peers})
        [(kind, entries, relay), answer] = manager.events
        self.assertEqual((kind, len(entries), relay, answer), ("addresses", 1000, False, ("answer",)))
        manager.events.clear()
        receive(wire, {"type": "addr", "peers": peers})
        [(kind, entries, relay)] = manager.events
        self.assertEqual(len(entries), 10)  # the 10 tokens a connection starts with

    def test_inboundPeerGetsNoBonus(self):
        peer, wire, transport, manager, clock = establish(Direction.INBOUND)
        peers = [f"10.0.{i // 250}.{i % 250 + 1}:5000" for i in range(1000)]
        receive(wire, {"type": "addr", "peers": peers})
        [(kind, entries, relay)] = manager.events
        self.assertEqual(len(entries), 10)

    def test_smallUnsolicitedAddrIsRelayable(self):
        peer, wire, transport, manager, clock = establish()
        receive(wire, {"type": "addr", "peers": ["10.0.0.1:5000"]})  # getaddr answer
        receive(wire, {"type": "addr", "peers": ["10.0.0.2:5000", "10.0.0.3:5000"]})
        self.assertEqual([e[2] for e in manager.events if e[0] == "addresses"], [False, True])

    def test_largeUnsolicitedAddrIsNotRelayed(self):
        peer, wire, transport, manager, clock = establish(
            settings=PeerSettings(addr_rate_per_s=1000)
        )
        receive(wire, {"type": "addr", "peers": []})  # the getaddr answer
        clock.advance(100)
        manager.events.clear()
        receive(wire, {"type": "addr", "peers": [f"10.0.0.{i}:5000" for i in range(1, 12)]})
        [(kind, entries, relay)] = manager.events
        self.assertEqual(len(entries), 11)
        self.assertFalse(relay)

    def test_addressesFromOnePeerAreRateLimited(self):
        settings = PeerSettings(addr_rate_per_s=0.1, addr_bucket_tokens=1000)
        peer, wire, transport, manager, clock = establish(Direction.INBOUND, settings=settings)
        flood = {"type": "addr", "peers": [f"10.0.0.{i}:5000" for i in range(1, 11)]}
        receive(wire, flood, flood)
        self.assertEqual([len(e[1]) for e in manager.events], [10])
        clock.advance(50)  # 5 tokens
        receive(wire, flood)
        self.assertEqual([len(e[1]) for e in manager.events], [10, 5])
        self.assertFalse(transport.disconnecting)

    def test_rateLimitBucketIsCapped(self):
        settings = PeerSettings(addr_rate_per_s=1, addr_bucket_tokens=20, inactivity_timeout_s=1e6)
        peer, wire, transport, manager, clock = establish(Direction.INBOUND, settings=settings)
        clock.advance(10_000)
        many = {"type": "addr", "peers": [f"10.0.{i}.1:5000" for i in range(100)]}
        receive(wire, many)
        self.assertEqual(len(manager.events[0][1]), 20)

    def test_malformedEntriesAreDroppedNotFatal(self):
        peer, wire, transport, manager, clock = establish()
        receive(
            wire,
            {"type": "addr", "peers": ["nonsense", "0.0.0.0:5000", "10.0.0.1:0", "10.0.0.9:5000"]},
        )
        self.assertFalse(transport.disconnecting)
        [(kind, entries, relay), _] = manager.events
        self.assertEqual(entries, [(Address.of("10.0.0.9", 5000), None)])


class KeepAliveTests(SynchronousTestCase):
    def test_pingIsAnsweredWithSameNonce(self):
        peer, wire, transport, manager, clock = establish()
        receive(wire, {"type": "ping", "nonce": 2**64 - 1, "node_id": "them"})
        self.assertEqual(sent(transport), [{"type": "pong", "nonce": 2**64 - 1}])

    def test_pongGivesRoundTripTime(self):
        peer, wire, transport, manager, clock = establish()
        peer.ping()
        [ping] = sent(transport)
        self.assertEqual(ping["type"], "ping")
        self.assertTrue(0 <= ping["nonce"] < 2**64)
        clock.advance(0.25)
        receive(wire, {"type": "pong", "nonce": ping["nonce"]})
        self.assertEqual(peer.rtt_s, 0.25)
        self.assertEqual(clock.getDelayedCalls()[0].func, peer._checkIdle)
        self.assertEqual(len(clock.getDelayedCalls()), 1)

    def test_noSecondPingWhileOneIsOutstanding(self):
        peer, wire, transport, manager, clock = establish()
        peer.ping()
        peer.ping()
        self.assertEqual(len(sent(transport)), 1)

    def test_pongWithWrongNonceIsIgnored(self):
        peer, wire, transport, manager, clock = establish()
        peer.ping()
        [ping] = sent(transport)
        receive(wire, {"type": "pong", "nonce": (ping["nonce"] + 1) % 2**64})
        self.assertIsNone(peer.rtt_s)
        self.assertFalse(transport.disconnecting)

    def test_pingTimeout(self):
        settings = PeerSettings(ping_timeout_s=90, inactivity_timeout_s=1000)
        peer, wire, transport, manager, clock = establish(settings=settings)
        peer.ping()
        clock.advance(89)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertIn("no pong", str(peer.close_reason))

    def test_inactivityTimeout(self):
        settings = PeerSettings(inactivity_timeout_s=600)
        peer, wire, transport, manager, clock = establish(settings=settings)
        clock.advance(500)
        receive(wire, {"type": "unknown-but-harmless"})
        clock.advance(599)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertIn("nothing received", str(peer.close_reason))

    def test_inactivityTimeoutAppliesDuringHandshakeToo(self):
        settings = PeerSettings(handshake_timeout_s=10_000, inactivity_timeout_s=600)
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND, settings=settings)
        clock.advance(600)
        self.assertTrue(transport.disconnecting)

    def test_closeDropsTheConnectionIfFlushingStalls(self):
        peer, wire, transport, manager, clock = establish()
        peer.close(PeerLost("bye"))
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        clock.advance(CLOSE_GRACE_S)
        self.assertTrue(transport.disconnected)


class ApplicationMessageTests(SynchronousTestCase):
    def test_unknownTypeAfterHandshakeGoesToTheManager(self):
        peer, wire, transport, manager, clock = establish()
        receive(wire, {"type": "chat", "text": "hello", "extra": [1, 2]})
        self.assertEqual(
            manager.events, [("application", {"type": "chat", "text": "hello", "extra": [1, 2]})]
        )
        self.assertFalse(transport.disconnecting)

    def test_unknownFieldsOfKnownTypesAreIgnored(self):
        peer, wire, transport, manager, clock = establish()
        receive(wire, {"type": "ping", "nonce": 5, "future": {"x": 1}})
        self.assertEqual(sent(transport), [{"type": "pong", "nonce": 5}])


class SendBufferTests(SynchronousTestCase):
    """
    Twisted buffers writes without limit; the wire bounds what a peer that
    does not read can make us hold.
    """

    def test_wireIsTheTransportsStreamingProducer(self):
        peer, wire, transport, manager, clock = makePeer()
        self.assertIs(transport.producer, wire)
        self.assertTrue(transport.streaming)

    def test_fullSendBufferPausesReadingUntilItDrains(self):
        peer, wire, transport, manager, clock = establish()
        wire.pauseProducing()  # what the transport does when its buffer fills
        self.assertTrue(wire.sendPaused)
        self.assertEqual(transport.producerState, "paused")
        wire.resumeProducing()
        self.assertFalse(wire.sendPaused)
        self.assertEqual(transport.producerState, "producing")
        self.assertFalse(transport.disconnecting)

    def test_whenDrainedWaitsForTheBufferToDrain(self):
        peer, wire, transport, manager, clock = establish()
        self.assertIsNone(self.successResultOf(peer.whenDrained()))
        wire.pauseProducing()
        self.assertTrue(peer.sendPaused)
        d = peer.whenDrained()
        self.assertNoResult(d)
        wire.resumeProducing()
        self.assertIsNone(self.successResultOf(d))
        wire.pauseProducing()
        d = peer.whenDrained()
        lose(wire)
        self.failureResultOf(d, PeerLost)
        self.failureResultOf(peer.whenDrained(), PeerLost)

    def test_beforeTheHandshakeAPauseDoesNotStopReading(self):
        # A TLS layer pauses its producer until its own handshake is done:
        # stopping reading then would stop that handshake.
        peer, wire, transport, manager, clock = makePeer()
        wire.pauseProducing()
        self.assertTrue(wire.sendPaused)
        self.assertEqual(transport.producerState, "producing")
        self.assertTrue(peer.reading)
        d = peer.whenDrained()
        wire.resumeProducing()
        self.assertIsNone(self.successResultOf(d))

    def test_peerThatDoesNotReadIsDroppedPastTheLimit(self):
        peer, wire, transport, manager, clock = establish(maxSendBuffer=1000)
        wire.pauseProducing()
        peer.send({"type": "chat", "text": "x" * 500})
        self.assertFalse(transport.disconnecting)
        written = len(transport.value())
        peer.send({"type": "chat", "text": "x" * 500})
        self.assertTrue(transport.disconnected)  # aborted, not flushed
        self.assertEqual(len(transport.value()), written)  # the excess was not buffered
        self.assertIsInstance(peer.close_reason, PeerLost)
        self.assertIn("not reading", str(peer.close_reason))

    def test_writesWhileNotPausedDoNotCountTowardsTheLimit(self):
        peer, wire, transport, manager, clock = establish(maxSendBuffer=1000)
        for _ in range(10):
            peer.send({"type": "chat", "text": "x" * 500})
        wire.pauseProducing()
        wire.resumeProducing()
        wire.pauseProducing()
        peer.send({"type": "chat", "text": "x" * 500})
        self.assertFalse(transport.disconnecting)

    def test_nothingIsSentOnceClosing(self):
        peer, wire, transport, manager, clock = establish()
        peer.close(PeerLost("bye"))
        peer.send({"type": "chat"})
        peer.sendMany([{"type": "chat"}])
        peer.ping()
        self.assertEqual(sent(transport), [])

    def test_messagesLeftWhenReadingPausesAreHandledOnResume(self):
        peer, wire, transport, manager, clock = establish()
        handled = []

        class Handlers:
            def get(self, kind, default=None):
                if kind != "chat":
                    return default

                def handle(peer, message):
                    handled.append(message["n"])
                    if message["n"] == 1:
                        wire.pauseProducing()  # as if this answer filled the buffer

                return handle

        peer._applicationHandlers = Handlers()
        before = peer.messages_in
        wire.dataReceived(
            b'{"type":"chat","n":1}\n{"type":"chat","n":2}\n{"type":"chat","n":3}\n[]\n'
        )
        self.assertEqual(handled, [1])
        self.assertNotIn("violation", manager.kinds())  # it comes after 2 and 3
        self.assertEqual(transport.producerState, "paused")
        wire.resumeProducing()
        self.assertEqual(handled, [1, 2, 3])
        self.assertEqual(manager.kinds(), ["violation"])
        self.assertEqual(peer.messages_in, before + 3)

    def test_bytesArrivingWhilePausedQueueBehindTheWaitingMessages(self):
        peer, wire, transport, manager, clock = establish()
        wire.pauseProducing()
        wire.dataReceived(b'{"type":"chat","n":1}\n')
        wire.dataReceived(b'{"type":"chat","n":2}\n')
        self.assertEqual(manager.events, [])
        wire.resumeProducing()
        self.assertEqual(
            [e[1]["n"] for e in manager.events if e[0] == "application"], [1, 2]
        )


class KnownAddressTests(SynchronousTestCase):
    """
    Each peer remembers, up to a bound, the addresses it sent us or we sent
    it, so that relaying never tells a peer what it knows.
    """

    def test_addressesHeardFromThePeerAreKnown(self):
        peer, wire, transport, manager, clock = establish(
            settings=PeerSettings(addr_bucket_tokens=1000, addr_rate_per_s=1000)
        )
        clock.advance(100)
        receive(wire, {"type": "addr", "peers": ["10.1.2.3:5000"]})
        self.assertTrue(peer.knowsAddress(Address.of("10.1.2.3", 5000)))
        self.assertFalse(peer.knowsAddress(Address.of("10.1.2.4", 5000)))

    def test_addressesSentToThePeerAreKnown(self):
        peer, wire, transport, manager, clock = establish(Direction.INBOUND)
        manager.known = [(Address.of("10.0.0.1", 5000), None)]
        receive(wire, {"type": "getaddr"})
        self.assertTrue(peer.knowsAddress(Address.of("10.0.0.1", 5000)))

    def test_theOldestAreForgottenPastTheBound(self):
        import bitp2p.peer

        self.patch(bitp2p.peer, "KNOWN_ADDRESSES_PER_PEER", 3)
        peer, wire, transport, manager, clock = establish()
        addresses = [Address.of(f"10.0.0.{i}", 5000) for i in range(1, 6)]
        peer.rememberAddresses(addresses[:3])
        peer.rememberAddresses(addresses[:1])  # seen again: now the newest
        peer.rememberAddresses(addresses[3:])
        self.assertEqual(
            [peer.knowsAddress(a) for a in addresses], [True, False, False, True, True]
        )
