"""
The per-connection protocol: framing, handshake, discovery messages and
keep-alive, on a StringTransport and a task.Clock. No sockets, no sleeping.
"""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from bitp2p.errors import HandshakeFailed, HandshakeTimeout, PeerLost
from bitp2p.peer import (
    CLOSE_GRACE_S,
    MAX_COUNTED_TYPES,
    OTHER_TYPE,
    Direction,
    Peer,
    PeerSettings,
    PeerState,
)
from bitp2p.timers import Deadlines
from bitp2p.wire import JSONLineWire

from .helpers import RecordingManager, establish, lose, makePeer, receive, sent, version


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

    def test_linesOfOnlySpacesOrTabsAreIgnored(self):
        """
        A line of only spaces or tabs is ignored like an empty one
        (PROTOCOL.md; issue 16 found it closed the connection), with or
        without a C{\\r}, and counts nowhere in the accounting.
        """
        for blank in (b"   ", b"\t", b" \t ", b"  \r"):
            peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
            first = json.dumps(version()).encode() + b"\n"
            wire.dataReceived(first + blank + b"\n" + b'{"type":"verack"}\n' + blank + b"\n")
            self.assertFalse(transport.disconnecting, blank)
            self.assertTrue(peer.established, blank)
            self.assertEqual(peer.recv_per_type["version"][:2], [1, len(first)], blank)
            self.assertEqual(peer.recv_per_type["verack"][:2], [1, 18], blank)
            self.assertNotIn("violation", manager.kinds(), blank)

    def test_aBadLineAfterABlankOneIsStillAViolation(self):
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        wire.dataReceived(b"  \n{not json\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(manager.kinds(), ["violation"])

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

    def test_aLineInSmallChunksIsJoinedOnceAndCutAtTheLimit(self):
        """
        Chunks that only lengthen an unfinished line are kept aside, not
        joined to it one by one (which made a line sent in small chunks
        cost its length squared: 1 MiB in 256-byte chunks took 2 s of CPU);
        the line is joined when it ends, and cut as soon as it passes the
        limit.
        """
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND, maxLength=300)
        line = json.dumps(version(pad="p" * 200)).encode()
        wire.dataReceived(line[:10])
        for i in range(10, len(line)):
            wire.dataReceived(line[i : i + 1])
        self.assertEqual(wire._buffer, line[:10])  # untouched since the first chunk
        self.assertEqual(wire.bufferedBytes, len(line))
        wire.dataReceived(b"\n")
        self.assertEqual(peer.state, PeerState.GOT_VERSION)
        self.assertEqual(wire.bufferedBytes, 0)
        self.assertEqual(peer.recv_per_type["version"][:2], [1, len(line) + 1])
        start = b'{"type":"x","pad":"'
        wire.dataReceived(start)
        for _ in range(300 - len(start)):
            wire.dataReceived(b"a")
        self.assertFalse(transport.disconnecting)  # 300 bytes: not over yet
        wire.dataReceived(b"a")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(manager.kinds()[-1], "violation")
        self.assertLessEqual(wire.bufferedBytes, 300)

    def test_aLineInOneByteChunksIsHeldCompactly(self):
        """
        Issue 16, item 6: each chunk of an unfinished line was kept as its
        own bytes object, so a line sent a byte at a time held ~40 times its
        size. Now the chunks go into one bytearray, of about the line's size.
        """
        import sys

        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        wire.dataReceived(b'{"type":"version","pad":"')
        for _ in range(20_000):
            wire.dataReceived(b"x")
        self.assertEqual(wire.bufferedBytes, 25 + 20_000)
        self.assertLess(sys.getsizeof(wire._more), 2 * 20_000)
        self.assertFalse(transport.disconnecting)

    def test_aLineGrowingTooSlowlyIsClosed(self):
        """
        A line still unfinished LINE_GRACE_S after its first byte, having
        grown by less than LINE_MIN_BYTES_PER_S on average, closes the
        connection (a byte every second: at about 11 s).
        """
        from bitp2p.constants import LINE_GRACE_S

        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        line = json.dumps(version()).encode()
        seconds = 0
        for byte in line[:30]:
            wire.dataReceived(bytes([byte]))
            if transport.disconnecting:
                break
            clock.advance(1)
            seconds += 1
        self.assertTrue(transport.disconnecting)
        self.assertEqual(seconds, LINE_GRACE_S + 1)
        self.assertEqual(manager.kinds(), ["violation"])
        self.assertIn("still unfinished after", manager.events[0][1])

    def test_timeReadingWasPausedDoesNotCountAgainstALine(self):
        """
        While we stopped reading (our send buffer to the peer was full), an
        unfinished line could not grow: its grace starts again when reading
        resumes.
        """
        peer, wire, transport, manager, clock = establish(Direction.INBOUND)
        wire.dataReceived(b'{"type":"chat","pad":"' + b"x" * 100)
        wire.pauseProducing()
        clock.advance(30)
        wire.resumeProducing()
        wire.dataReceived(b"x" * 100)
        self.assertFalse(transport.disconnecting)
        clock.advance(11)
        wire.dataReceived(b"x")
        self.assertTrue(transport.disconnecting)  # then slow again: closed

    def test_aLongLineArrivingSteadilyIsNotClosed(self):
        """
        A line that takes longer than the grace period but grows fast enough
        (here 2 KiB a second for 20 s) is served.
        """
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        wire.dataReceived(b'{"type":"version","node_id":"them","port":6000,"pad":"')
        for _ in range(40):
            clock.advance(0.5)
            wire.dataReceived(b"p" * 1024)
        wire.dataReceived(b'"}\n')
        self.assertFalse(transport.disconnecting)
        self.assertEqual(peer.state, PeerState.GOT_VERSION)

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

    def test_eachMessageIsCheckedAsOfItsTypeWhicheverLibraryDecodedIt(self):
        # A number too large for a double is for the standard library to
        # decode (orjson refuses it); the messages around it are orjson's.
        odd = b'{"type":"ping","nonce":1,"f":1e400}\n'
        peer, wire, transport, manager, clock = establish()
        wire.dataReceived(line({"type": "chat"}) + odd + line({"type": "ping", "nonce": -1}))
        self.assertEqual(manager.kinds(), ["application", "violation"])
        self.assertEqual(sent(transport), [{"type": "pong", "nonce": 1}])
        peer, wire, transport, manager, clock = establish()
        wire.dataReceived(odd + line({"type": "chat", "n": 1}))
        self.assertEqual(manager.kinds(), ["application"])
        peer, wire, transport, manager, clock = establish()
        receive(wire, {"type": "ping", "nonce": 2}, {"type": "ping", "nonce": -1})
        self.assertEqual(manager.kinds(), ["violation"])

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
        # Only the connection's deadline is left (the handshake's, which
        # then checks inactivity): the ping's timeout went with the pong.
        [left] = clock.getDelayedCalls()
        self.assertEqual(left.getTime(), peer.connected_at + peer._settings.handshake_timeout_s)

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

    def test_silentEstablishedPeerIsClosedAtTheInactivityTimeout(self):
        # The handshake's deadline and the inactivity check share a timer:
        # the first check still comes when the connection is
        # inactivity_timeout_s old.
        settings = PeerSettings(handshake_timeout_s=60, inactivity_timeout_s=600)
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND, settings=settings)
        receive(wire, version(), {"type": "verack"})
        self.assertTrue(peer.established)
        clock.advance(60)
        self.assertFalse(transport.disconnecting)
        clock.advance(539.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertIn("nothing received", str(peer.close_reason))

    def test_inactivityTimeoutAppliesDuringHandshakeToo(self):
        settings = PeerSettings(handshake_timeout_s=10_000, inactivity_timeout_s=600)
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND, settings=settings)
        clock.advance(600)
        self.assertTrue(transport.disconnecting)

    def test_peersSharingDeadlinesEachKeepTheirOwnTimes(self):
        """
        A node's peers keep their deadlines in one L{Deadlines} (one clock
        timer): each still times out at its own time, one that ended
        leaves the others', and once all have ended no timer is left.
        """
        clock = Clock()
        deadlines = Deadlines(clock)
        settings = PeerSettings(handshake_timeout_s=60, inactivity_timeout_s=600)

        def peer():
            return makePeer(Direction.INBOUND, settings=settings, clock=clock, deadlines=deadlines)

        slow, slowWire, slowTransport, _, _ = peer()  # never shakes hands
        clock.advance(10)
        quiet, quietWire, quietTransport, _, _ = peer()  # established, then silent
        receive(quietWire, version(), {"type": "verack"})
        clock.advance(10)
        talker, talkerWire, talkerTransport, _, _ = peer()  # established, talks
        receive(talkerWire, version("other"), {"type": "verack"})
        gone, goneWire, _, _, _ = peer()
        lose(goneWire)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(39.9)  # t = 59.9
        self.assertFalse(slowTransport.disconnecting)
        clock.advance(0.1)  # t = 60: the handshake deadline of the first
        self.assertTrue(slowTransport.disconnecting)
        self.assertIsInstance(slow.close_reason, HandshakeTimeout)
        lose(slowWire)
        clock.advance(500)  # t = 560
        receive(talkerWire, {"type": "unknown-but-harmless"})
        clock.advance(49.9)  # t = 609.9
        self.assertFalse(quietTransport.disconnecting)
        clock.advance(0.1)  # t = 610: the quiet one is 600 s old, silent
        self.assertTrue(quietTransport.disconnecting)
        self.assertFalse(talkerTransport.disconnecting)
        lose(quietWire)
        clock.advance(549.9)  # t = 1159.9
        self.assertFalse(talkerTransport.disconnecting)
        clock.advance(0.1)  # t = 1160: 600 s after it last spoke
        self.assertTrue(talkerTransport.disconnecting)
        lose(talkerWire)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(len(deadlines), 0)

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


def tally(data: bytes) -> dict[str, list[int]]:
    """
    The C{[messages, bytes]} by type of the complete lines in C{data},
    worked out the plain way: what a peer's accounting must find.
    """
    counts: dict[str, list[int]] = {}
    for raw in data.split(b"\n")[:-1]:
        if raw in (b"", b"\r"):
            continue  # an empty line: no message
        entry = counts.setdefault(json.loads(raw)["type"], [0, 0])
        entry[0] += 1
        entry[1] += len(raw) + 1
    return counts


def line(message: dict, end: bytes = b"\n") -> bytes:
    """
    A message as the wire sends it (compact JSON), with C{end} after it.
    """
    return json.dumps(message, separators=(",", ":")).encode() + end


def added(before: dict[str, list[int]], after: dict[str, list[int]]) -> dict[str, list[int]]:
    """
    What was counted between two copies of a per-type table.
    """
    delta = {}
    for kind, (messages, size) in after.items():
        was = before.get(kind, [0, 0])
        if [messages, size] != was:
            delta[kind] = [messages - was[0], size - was[1]]
    return delta


def snapshot(table: dict[str, list[int]]) -> dict[str, list[int]]:
    return {kind: list(counter) for kind, counter in table.items()}


class TrafficAccountingTests(SynchronousTestCase):
    """
    Per-peer traffic by message type (C{recv_per_type}, C{send_per_type}),
    the times of the last send and receive, and the byte counters, as
    Bitcoin Core's getpeerinfo reports them.
    """

    def test_handshakeMessagesAreCountedBothWays(self):
        peer, wire, transport, manager, clock = makePeer(Direction.OUTBOUND)
        self.assertEqual(peer.send_per_type, {"version": [1, len(transport.value())]})
        self.assertEqual(peer.recv_per_type, {})
        theirs, verack = line(version()), line({"type": "verack"})
        wire.dataReceived(theirs + verack)
        self.assertTrue(peer.established)
        self.assertEqual(
            peer.recv_per_type, {"version": [1, len(theirs)], "verack": [1, len(verack)]}
        )
        # version, then verack, getaddr and addr (our own address).
        self.assertEqual(set(peer.send_per_type), {"version", "verack", "getaddr", "addr"})
        self.assertEqual(peer.send_per_type, tally(transport.value()))

    def test_messagesSentTogetherAreCountedOneByOne(self):
        # The acceptor answers a version with version and verack in one write.
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        wire.dataReceived(line(version()))
        data = transport.value()
        [ours, verack] = data.split(b"\n")[:-1]
        self.assertEqual(
            peer.send_per_type, {"version": [1, len(ours) + 1], "verack": [1, len(verack) + 1]}
        )
        before = snapshot(peer.send_per_type)
        transport.clear()
        peer.sendMany([{"type": "chat", "n": 1}, {"type": "tx"}, {"type": "chat", "n": 22}])
        self.assertEqual(added(before, peer.send_per_type), tally(transport.value()))
        self.assertEqual(peer.send_per_type["chat"], [2, 22 + 23])

    def test_emptyLinesAndCarriageReturns(self):
        peer, wire, transport, manager, clock = establish()
        before = snapshot(peer.recv_per_type)
        # Without \r: the empty lines' delimiters count for nothing.
        wire.dataReceived(b'\n{"type":"chat","n":1}\n\n\n{"type":"chat","n":22}\n\n')
        self.assertEqual(added(before, peer.recv_per_type), {"chat": [2, 22 + 23]})
        # With \r: each counts in its message's line.
        before = snapshot(peer.recv_per_type)
        wire.dataReceived(
            b'\r\n{"type":"chat","n":1}\r\n\n\r\n{"type":"chat","n":22}\n'
            b'{"type":"ping","nonce":7}\r\n'
        )
        self.assertEqual(
            added(before, peer.recv_per_type),
            {"chat": [2, 23 + 23], "ping": [1, len(b'{"type":"ping","nonce":7}\r\n')]},
        )

    def test_aLineSplitAcrossChunksCountsOnceWhole(self):
        peer, wire, transport, manager, clock = establish()
        wire.dataReceived(b'{"type":"chat","text":"hel')
        self.assertNotIn("chat", peer.recv_per_type)
        wire.dataReceived(b'lo"}\n{"type":"chat","te')
        first = len(b'{"type":"chat","text":"hello"}\n')
        self.assertEqual(peer.recv_per_type["chat"], [1, first])
        wire.dataReceived(b'xt":"x"}\r')
        self.assertEqual(peer.recv_per_type["chat"], [1, first])
        wire.dataReceived(b"\n")
        self.assertEqual(
            peer.recv_per_type["chat"], [2, first + len(b'{"type":"chat","text":"x"}\r\n')]
        )

    def test_chunksOfSeveralTypes(self):
        grouped = [{"type": "chat", "n": i} for i in range(6)] + [
            {"type": "tx", "id": "a" * i} for i in range(5)
        ] + [{"type": "chat", "n": 10**i} for i in range(4)]
        alternating = [
            {"type": "chat" if i % 2 else "tx", "n": 7**i} for i in range(9)
        ]
        for messages in (grouped, alternating):
            for end in (b"\n", b"\r\n"):
                peer, wire, transport, manager, clock = establish()
                before = snapshot(peer.recv_per_type)
                data = b"".join(line(m, end) for m in messages)
                wire.dataReceived(data)
                self.assertEqual(added(before, peer.recv_per_type), tally(data))
                self.assertEqual(
                    sum(n for n, _ in added(before, peer.recv_per_type).values()),
                    len(messages),
                )

    def test_messagesOnTheStandardLibrarysPathsAreCounted(self):
        # A huge integer sends the whole chunk to the standard library; a
        # number too large for a double sends its line there only.
        tx = line({"type": "tx"})
        for odd in (line({"type": "chat", "n": 2**70}), b'{"type":"chat","f":1e400}\n'):
            for data in (
                tx + odd,
                tx * 4 + odd + line({"type": "chat"}) * 3,
                tx + odd + odd + line({"type": "tx", "n": 1}) + line({"type": "chat"}),
            ):
                peer, wire, transport, manager, clock = establish()
                before = snapshot(peer.recv_per_type)
                wire.dataReceived(data)
                self.assertFalse(transport.disconnecting)
                self.assertEqual(added(before, peer.recv_per_type), tally(data))

    def test_whatFailsToDecodeIsNotCounted(self):
        cases = [
            # A bad line after messages of one type, then of two types.
            (b'{"type":"chat","n":1}\n{"type":"chat","n":22}\n[1]\n{"type":"chat"}\n',
             {"chat": [2, 22 + 23]}),
            (b'{"type":"chat","n":1}\n{"type":"tx"}\n{not json\n{"type":"chat"}\n',
             {"chat": [1, 22], "tx": [1, 14]}),
            # A message that starts a run and fails its type's checks.
            (b'{"type":"chat","n":1}\n' * 8 + b'{"type":"ping","nonce":-1}\n{"type":"chat"}\n',
             {"chat": [8, 8 * 22]}),
            # A line over the limit.
            (b'{"type":"chat","n":1}\n{"type":"chat","pad":"' + b"x" * 100 + b'"}\n'
             b'{"type":"chat","n":2}\n', {"chat": [1, 22]}),
        ]
        for data, expected in cases:
            peer, wire, transport, manager, clock = establish(maxLength=80)
            before = snapshot(peer.recv_per_type)
            wire.dataReceived(data)
            self.assertEqual(manager.kinds().count("violation"), 1)
            self.assertEqual(added(before, peer.recv_per_type), expected)

    def test_messagesWaitingWhileReadingIsPausedAreCountedOnce(self):
        peer, wire, transport, manager, clock = establish()
        wire.pauseProducing()
        wire.dataReceived(b'{"type":"chat","n":1}\n')
        wire.dataReceived(b'{"type":"chat","n":2}\n')
        self.assertEqual(peer.recv_per_type["chat"], [2, 44])
        wire.resumeProducing()
        self.assertEqual(len(manager.events), 2)
        self.assertEqual(peer.recv_per_type["chat"], [2, 44])

    def test_aLineGivenToLineReceivedIsCounted(self):
        peer, wire, transport, manager, clock = establish()
        wire.lineReceived(b'{"type":"chat"}')
        self.assertEqual(peer.recv_per_type["chat"], [1, 16])

    def test_typesAreBoundedWithOther(self):
        """
        Received types have names of their own until the peer's C{traffic}
        (both ways) has C{MAX_COUNTED_TYPES} keys, the last being
        C{*other*}; the types this node sends keep theirs past a peer's
        flood of types, up to twice that.
        """
        peer, wire, transport, manager, clock = establish()
        self.assertEqual(set(peer.recv_per_type), {"version", "verack"})
        self.assertEqual(set(peer.traffic), {"version", "verack", "getaddr", "addr"})
        lines = [line({"type": f"t{i}"}) for i in range(100)]
        for data in lines[:40]:  # one by one: each chunk of one type
            wire.dataReceived(data)
        wire.dataReceived(b"".join(lines[40:]))  # one chunk of many types
        named = MAX_COUNTED_TYPES - 1 - 4  # with the 4 types above
        self.assertEqual(len(peer.traffic), MAX_COUNTED_TYPES)
        self.assertEqual(len(peer.recv_per_type), 2 + named + 1)
        self.assertEqual(
            peer.recv_per_type[OTHER_TYPE],
            [100 - named, sum(len(data) for data in lines[named:])],
        )
        self.assertEqual(peer.recv_per_type[f"t{named - 1}"], [1, len(lines[named - 1])])
        self.assertNotIn(f"t{named}", peer.recv_per_type)
        # A type with a name of its own keeps it; others go on as *other*.
        wire.dataReceived(lines[0] + lines[99] + lines[named])
        self.assertEqual(peer.recv_per_type["t0"], [2, 2 * len(lines[0])])
        self.assertEqual(peer.recv_per_type[OTHER_TYPE][0], 100 - named + 2)
        self.assertEqual(len(peer.traffic), MAX_COUNTED_TYPES)
        # What is sent is bounded too, further.
        self.assertEqual(set(peer.send_per_type), {"version", "verack", "getaddr", "addr"})
        for i in range(100):
            peer.send({"type": f"s{i}"})
        own = MAX_COUNTED_TYPES - 1  # keys left below twice the bound
        self.assertEqual(len(peer.traffic), 2 * MAX_COUNTED_TYPES - 1)  # *other* among them
        self.assertEqual(len(peer.send_per_type), 4 + own + 1)
        self.assertEqual(peer.send_per_type[f"s{own - 1}"], [1, len(line({"type": "s62"}))])
        self.assertNotIn(f"s{own}", peer.send_per_type)
        self.assertEqual(
            peer.send_per_type[OTHER_TYPE], [100 - own, (100 - own) * len(line({"type": "s70"}))]
        )
        # Each way's counts are the other's zeroes in the same table.
        self.assertEqual(peer.traffic[OTHER_TYPE][:2], peer.recv_per_type[OTHER_TYPE])
        self.assertEqual(peer.traffic["t0"][2:], [0, 0])

    def test_aMessageWithAnOddTypeIsSentAndCountedAsOther(self):
        peer, wire, transport, manager, clock = establish()
        peer.send({"type": ["not", "a", "string"]})
        peer.sendMany([{"type": 5}, {"no": "type"}])
        self.assertEqual(peer.send_per_type[OTHER_TYPE], [3, len(transport.value())])
        self.assertEqual(len(sent(transport)), 3)

    def test_sharedFramesCountTheirFullLengthOnEachPeer(self):
        first = establish()
        second = establish(Direction.INBOUND)
        frames: dict = {}
        message = {"type": "chat", "text": "to all"}
        for peer, wire, transport, manager, clock in (first, second):
            peer.send(message, frames)
        data = frames[JSONLineWire]
        for peer, wire, transport, manager, clock in (first, second):
            self.assertEqual(transport.value(), data)
            self.assertEqual(peer.send_per_type["chat"], [1, len(data)])

    def test_lastSendAndLastRecvFollowTheClock(self):
        clock = Clock()
        clock.advance(100)
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND, clock=clock)
        self.assertEqual((peer.last_send, peer.last_recv), (0.0, 0.0))
        clock.advance(5)
        data = line(version())
        wire.dataReceived(data[:10])  # bytes, not yet a message
        self.assertEqual((peer.last_send, peer.last_recv), (0.0, 105.0))
        clock.advance(5)
        wire.dataReceived(data[10:])  # answered with version and verack
        self.assertEqual((peer.last_send, peer.last_recv), (110.0, 110.0))
        clock.advance(5)
        peer.send({"type": "chat"})
        self.assertEqual((peer.last_send, peer.last_recv), (115.0, 110.0))
        clock.advance(5)
        wire.dataReceived(b"\n")
        self.assertEqual((peer.last_send, peer.last_recv), (115.0, 120.0))
        with self.assertRaises(AttributeError):
            peer.last_send = 1.0  # type: ignore[misc]
        with self.assertRaises(AttributeError):
            peer.last_recv = 1.0  # type: ignore[misc]

    def test_aTLSRecordIsAReceive(self):
        clock = Clock()
        clock.advance(50)
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND, clock=clock)
        wire.dataReceived(b"\x16\x03\x01\x00\x05hello")
        self.assertEqual(peer.last_recv, 50.0)
        self.assertEqual(peer.bytes_in, 10)
        self.assertEqual(peer.recv_per_type, {})

    def test_byteCounters(self):
        peer, wire, transport, manager, clock = makePeer(Direction.INBOUND)
        self.assertEqual((peer.bytes_in, peer.bytes_out), (0, 0))
        data = line(version()) + b"\n" + line({"type": "verack"}, b"\r\n")
        wire.dataReceived(data)
        self.assertEqual((peer.bytes_in, peer.bytes_out), (len(data), len(transport.value())))
        self.assertEqual((peer.bytes_in, peer.bytes_out), (wire.bytesIn, wire.bytesOut))
        self.assertEqual(sum(size for _, size in peer.recv_per_type.values()), len(data) - 1)
        self.assertEqual(
            sum(size for _, size in peer.send_per_type.values()), len(transport.value())
        )
        with self.assertRaises(AttributeError):
            peer.bytes_in = 0  # type: ignore[misc]
        unwired = Peer(RecordingManager(), Clock(), Direction.INBOUND)
        self.assertEqual((unwired.bytes_in, unwired.bytes_out), (0, 0))
        self.assertEqual((unwired.recv_per_type, unwired.send_per_type), ({}, {}))
        self.assertEqual((unwired.last_send, unwired.last_recv), (0.0, 0.0))


class ApplicationRunTests(SynchronousTestCase):
    """
    A chunk of messages all of one registered type goes to its handler in
    one call (the registry's C{many}); what the handler does midway counts
    as it would for one message at a time.
    """

    def setUp(self):
        from twisted.internet.task import Clock

        from bitp2p import Node, NodeConfig

        self.node = Node(NodeConfig(listen=False, seeds=()), reactor=Clock())
        self.wire = self.node.connman.buildPeer(Direction.INBOUND, None)
        self.transport = StringTransport()
        self.wire.makeConnection(self.transport)
        self.wire.dataReceived(b'{"type":"version","node_id":"them","port":0}\n{"type":"verack"}\n')
        self.peer = self.wire.peer
        self.assertTrue(self.peer.established)

    def chunk(self, count: int) -> bytes:
        return b"".join(b'{"type":"chat","n":%d}\n' % i for i in range(count))

    def test_everyMessageInOrder(self):
        got = []
        self.node.registerMessage("chat", lambda peer, message: got.append(message["n"]))
        self.wire.dataReceived(self.chunk(5))
        self.assertEqual(got, [0, 1, 2, 3, 4])
        self.assertEqual(self.peer.messages_in, 2 + 5)
        self.assertEqual(self.peer.recv_per_type["chat"][0], 5)

    def test_aHandlerThatRaisesIsReportedAndTheRunGoesOn(self):
        got = []

        def handler(peer, message):
            got.append(message["n"])
            if message["n"] == 1:
                raise RuntimeError("application bug")

        self.node.registerMessage("chat", handler)
        self.wire.dataReceived(self.chunk(4))
        self.assertEqual(got, [0, 1, 2, 3])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(self.transport.disconnecting)

    def test_aHandlerThatUnregistersItsTypeStopsTheRun(self):
        got = []

        def handler(peer, message):
            got.append(message["n"])
            if message["n"] == 1:
                self.node.unregisterMessage("chat")

        self.node.registerMessage("chat", handler)
        self.wire.dataReceived(self.chunk(4))
        self.assertEqual(got, [0, 1])
        self.assertEqual(self.peer.messages_ignored, 2)
        self.assertEqual(self.peer.messages_in, 2 + 4)

    def test_aHandlerThatReplacesItselfHandsTheRestOn(self):
        first, second = [], []

        def handler(peer, message):
            first.append(message["n"])
            self.node.registerMessage("chat", lambda peer, message: second.append(message["n"]))

        self.node.registerMessage("chat", handler)
        self.wire.dataReceived(self.chunk(3))
        self.assertEqual((first, second), ([0], [1, 2]))

    def test_aHandlerThatClosesThePeerStopsTheRun(self):
        got = []

        def handler(peer, message):
            got.append(message["n"])
            peer.close(PeerLost("enough"))

        self.node.registerMessage("chat", handler)
        self.wire.dataReceived(self.chunk(3))
        self.assertEqual(got, [0])
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.peer.messages_in, 2 + 1)


class TypeCounterTests(SynchronousTestCase):
    def test_peersShareTheTypeNamesTheyCount(self):
        # Each peer's table keys a type by the interned name, not by the
        # string decoded from its own messages: thousands of peers hold
        # one "version", not one each.
        first, _, _, _, _ = establish()
        second, _, _, _, _ = establish()
        [a] = [kind for kind in first.recv_per_type if kind == "version"]
        [b] = [kind for kind in second.recv_per_type if kind == "version"]
        self.assertIs(a, b)
        self.assertEqual(first.recv_per_type["version"][0], 1)
