"""
The wire format: newline-delimited JSON over a byte stream.

This module is framing and nothing else. L{JSONLines} is the wire format
(an L{IWireFormat<bitp2p.interfaces.IWireFormat>}): the connection manager
asks it for the framing protocol of each new connection, and the message
registry asks it to encode an application message once for all the peers it
goes to. L{JSONLineWire} is that framing protocol: it cuts the byte stream
into lines, turns each line into a message dict with L{bitp2p.codec}, and
hands it to its L{Peer<bitp2p.peer.Peer>}, which holds all message meaning
(handshake, discovery, keep-alive). L{FramingProtocol} is what every
format's framing protocol does alike (producer, send-buffer bound, close and
abort), which Bitcoin's (L{bitp2p.bitcoin.wire}) shares. A second wire
format is another
L{IWireFormat} whose protocol offers the same few methods to a L{Peer}
(L{IPeerWire<bitp2p.interfaces.IPeerWire>}); neither the peer logic nor the
node names a wire class.

The methods a peer uses of its wire are: C{sendMessage}, C{sendMessages},
C{close}, C{abort}, C{getPeer}, C{getHost} and the counters C{bytesIn} and
C{bytesOut}. A wire, which alone knows the bytes of each message, also keeps
its peer's traffic accounting: it counts every message it decodes or writes
in the peer's C{traffic} (see L{typeCounter <bitp2p.peer.typeCounter>}),
and calls the peer's C{dataArrived} for each chunk received and
C{dataWritten} for each write.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Iterable, Mapping

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from bitp2p import codec
from bitp2p.codec import ProtocolViolation
from bitp2p.gossip import CONTROL_TYPES
from bitp2p.constants import (
    LINE_GRACE_S,
    LINE_MIN_BYTES_PER_S,
    MAX_MESSAGE_BYTES,
    MAX_SEND_BUFFER_BYTES,
)
from bitp2p.peer import RECV_MESSAGES, SENT_MESSAGES, typeCounter

if TYPE_CHECKING:
    from bitp2p.peer import Peer


class JSONLines:
    """
    The JSON-lines wire format (the protocol's own, PROTOCOL.md): one JSON
    object per line.

    @ivar maxMessageBytes: the longest line accepted or sent, delimiter
        excluded.
    @ivar maxSendBufferBytes: bytes that may be written to a peer while its
        send buffer stays full before it is dropped.
    """

    name = "json-lines"
    gossip = True
    reservedTypes = codec.KNOWN_TYPES | CONTROL_TYPES
    minProtocol = 0

    def __init__(
        self,
        maxMessageBytes: int = MAX_MESSAGE_BYTES,
        maxSendBufferBytes: int = MAX_SEND_BUFFER_BYTES,
    ) -> None:
        self.maxMessageBytes = maxMessageBytes
        self.maxSendBufferBytes = maxSendBufferBytes

    def buildProtocol(self, peer: Peer) -> JSONLineWire:
        """
        The framing protocol of a new connection, feeding C{peer}.
        """
        return JSONLineWire(peer, self.maxMessageBytes, self.maxSendBufferBytes)

    def frames(self, message: Mapping) -> dict:
        """
        C{message} encoded once, as the C{frames} of L{JSONLineWire.sendMessage}.

        @raise ValueError: if it cannot be encoded as JSON (NaN and the
            infinities included), or is longer than C{maxMessageBytes}.
        """
        kind = message.get("type")
        try:
            data = codec.encode(message)
            if b"null" in data:
                # orjson writes NaN and infinities as null: refuse them, as
                # the standard library does, rather than change the data.
                json.dumps(message, allow_nan=False, default=str)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{kind!r} message cannot be encoded as JSON: {e}") from None
        if len(data) > self.maxMessageBytes:
            raise ValueError(
                f"{kind!r} message is {len(data)} bytes encoded, over the "
                f"{self.maxMessageBytes} peers accept"
            )
        return {JSONLineWire: data + b"\n"}


class FramingProtocol(Protocol):
    """
    What every wire format's framing protocol does alike (an C{IPeerWire}
    to its L{Peer<bitp2p.peer.Peer>}, less the framing): it is the
    transport's streaming producer, bounds what is written to a peer that
    does not read, and closes or drops the connection.

    A subclass calls its C{__init__} first, and has its own
    C{_readingResumed}, which hands on what was held while reading was
    paused.

    @ivar peer: the message-level logic this wire feeds.
    @ivar maxSendBuffer: bytes that may be written while the send buffer
        stays full before the peer is dropped.
    @ivar bytesIn: bytes received on this connection.
    @ivar bytesOut: bytes written to this connection.
    @ivar sendPaused: whether the send buffer is full.
    """

    def __init__(self, peer: Peer, maxSendBuffer: int) -> None:
        self.peer = peer
        self.maxSendBuffer = maxSendBuffer
        self.bytesIn = 0
        self.bytesOut = 0
        self.sendPaused = False
        self._readingPaused = False
        self._registered = False
        self._writtenWhilePaused = 0
        self._closing = False
        peer.wire = self

    def connectionMade(self) -> None:
        # As a streaming producer, the wire is told when the transport's
        # send buffer for this peer fills up and when it drains again.
        self.transport.registerProducer(self, True)
        self._registered = True
        self.peer.connectionMade()

    def pauseProducing(self) -> None:
        """
        The send buffer for this peer is full (it reads slower than we
        write): stop reading from it until the buffer drains, as Bitcoin Core
        stops processing a peer whose send queue is full, so that its
        requests cannot make us buffer more for it.
        """
        if self.sendPaused:
            return
        self.sendPaused = True
        self._writtenWhilePaused = 0
        if not self.peer.established:
            # Nothing to hold back before the handshake; and a TLS layer
            # pauses its producer until its own handshake is done, which
            # would never be if we stopped reading.
            return
        self._readingPaused = True
        self.peer.pauseReading()
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """
        The send buffer has drained: read from the peer again, first
        handing on what was held meanwhile (L{_readingResumed}).
        """
        if not self.sendPaused:
            return
        self.sendPaused = False
        if self._readingPaused:
            self._readingPaused = False
            self._readingResumed()
            if not self.sendPaused and not self._closing:
                self.transport.resumeProducing()
        self.peer.sendDrained()

    def _readingResumed(self) -> None:
        """
        Reading was paused and goes on: tell the peer, and hand it what was
        held (the subclass's framing knows what that is).
        """
        raise NotImplementedError

    def stopProducing(self) -> None:
        self._closing = True

    def _write(self, data: bytes) -> None:
        self.bytesOut += len(data)
        self.peer.dataWritten()
        if self.sendPaused:
            # Twisted buffers without limit; the limit is ours.
            self._writtenWhilePaused += len(data)
            if self._writtenWhilePaused > self.maxSendBuffer:
                self.peer.sendBufferFull(self._writtenWhilePaused)
                return
        self.transport.write(data)

    def close(self) -> None:
        """
        Stop reading and close once what was written has been sent.
        """
        self._closing = True
        if self._registered:
            # A TLS transport shuts down only once no producer is registered.
            self._registered = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def abort(self) -> None:
        """
        Stop reading and drop the connection at once.
        """
        self._closing = True
        self.transport.abortConnection()

    def getPeer(self) -> IAddress:
        return self.transport.getPeer()

    def getHost(self) -> IAddress:
        return self.transport.getHost()


class JSONLineWire(FramingProtocol):
    """
    Newline-delimited JSON framing for one connection.

    Unlike Twisted's C{LineReceiver}, C{dataReceived} splits each received
    chunk once (the stock one re-splits its whole buffer once per line, which
    is quadratic in the chunk size), strips one optional C{\\r}, skips empty
    lines, decodes the chunk's lines in one call to
    L{codec.decode_many<bitp2p.codec.decode_many>} and hands the messages to
    its peer in one call; the peer stops taking them as soon as the
    connection is being closed.

    The wire keeps its peer's traffic accounting (C{traffic},
    C{last_recv}, C{last_send}): received messages are
    counted per run of one type, which C{decode_many} reports at no extra
    cost, so that the usual chunk (one type, no C{\\r}, no empty line,
    nothing left undecoded) is counted in one step.

    The wire is also the transport's streaming producer: when the send
    buffer for this peer fills (the peer reads slower than we write), it
    stops reading from the peer, keeps the messages not yet handled, and
    goes on once the buffer has drained. While the buffer stays full, at
    most C{maxSendBuffer} more bytes are written before the peer is dropped.

    @ivar peer: the message-level logic this wire feeds.
    @ivar MAX_LENGTH: the longest accepted line in bytes, delimiter excluded.
    @ivar maxSendBuffer: bytes that may be written while the send buffer
        stays full before the peer is dropped.
    @ivar bytesIn: bytes received on this connection.
    @ivar bytesOut: bytes written to this connection.
    @ivar sendPaused: whether the send buffer is full; reading from the peer
        is paused meanwhile.
    """

    delimiter = b"\n"

    def __init__(
        self,
        peer: Peer,
        maxLength: int = MAX_MESSAGE_BYTES,
        maxSendBuffer: int = MAX_SEND_BUFFER_BYTES,
    ) -> None:
        super().__init__(peer, maxSendBuffer)
        self.MAX_LENGTH = maxLength
        self._pending: tuple[list[dict], ProtocolViolation | None] | None = None
        # The unfinished line is _buffer, then _more (what came since, kept
        # compactly: see dataReceived; made when needed), begun at
        # _lineStarted.
        self._buffer = b""
        self._more: bytearray | None = None
        self._lineStarted = 0.0

    @property
    def bufferedBytes(self) -> int:
        """
        The bytes of the unfinished line held (never more than
        C{MAX_LENGTH}).
        """
        return len(self._buffer) + (len(self._more) if self._more else 0)

    # -- from the transport ---------------------------------------------------

    def _readingResumed(self) -> None:
        if self._buffer:
            # The time reading was paused (by us) is not the peer's
            # slowness: an unfinished line's grace starts again.
            self._lineStarted = self.peer.clock.seconds()
        self.peer.resumeReading()
        pending, self._pending = self._pending, None
        if pending is not None:
            self._deliver(*pending)  # which may pause again

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        peer = self.peer
        if not self.bytesIn and data[:1] == b"\x16":
            # A TLS record (a ClientHello) where JSON was expected.
            self.bytesIn = len(data)
            peer.dataArrived()
            peer.violation(ProtocolViolation("it speaks TLS, and this node runs without --tls"))
            return
        size = len(data)
        self.bytesIn += size
        peer.dataArrived()
        maxLength = self.MAX_LENGTH
        if (
            data.find(b"\n") == size - 1
            and not self._buffer
            and 1 < size <= maxLength
            and self._pending is None
            and data[-2:-1] != b"\r"
        ):
            # One whole line, as a ping or a handshake's message comes: the
            # codec's fast path for it, if it can judge it; anything else
            # (a violation included) takes the general path below.
            message = codec.decode_line(data[:-1])
            if message is not None:
                kind = message["type"]
                table = peer.traffic
                counter = table.get(kind)
                if counter is None:
                    counter = typeCounter(table, kind)
                counter[0] += 1
                counter[1] += size
                self._deliver([message], None, kind)
                return
        if self._buffer:
            if b"\n" not in data:
                # The chunk only lengthens the unfinished line: it is added
                # to one bytearray, not joined to the line, so that a line
                # arriving in small chunks costs its length once, not its
                # length squared, and is held in about its size (a list of
                # chunks held 40 times that for one-byte chunks).
                if self._more is None:
                    self._more = bytearray(data)
                else:
                    self._more += data
                held = len(self._buffer) + len(self._more)
                if held <= maxLength:
                    elapsed = peer.last_recv - self._lineStarted
                    if elapsed > LINE_GRACE_S and held < elapsed * LINE_MIN_BYTES_PER_S:
                        peer.violation(self._tooSlow(elapsed))
                    return
                data = b""  # (it is in _more now) the line is too long
            if self._more:
                data = b"".join([self._buffer, self._more, data])
                self._more = None
            else:
                data = self._buffer + data
        elif b"\n" not in data:
            self._lineStarted = peer.last_recv  # a line begins
        lines = data.split(b"\n")
        tail = self._buffer = lines.pop()
        if tail and lines:
            self._lineStarted = peer.last_recv  # a new line begins
        # Checks that hold for a whole chunk are made once for it, so that
        # the usual chunk (no \r, no empty or long line) costs nothing per
        # line. Empty lines are dropped here, so that the lines left match
        # the messages one to one (for the accounting).
        sizes: list[int] | None = None  # None: each line's is its length + 1
        if b"\r" in data:
            sizes, stripped = [], []
            for line in lines:
                received = len(line) + 1  # \r and \n included
                if line[-1:] == b"\r":
                    line = line[:-1]
                if line:
                    stripped.append(line)
                    sizes.append(received)
            lines = stripped
            size = sum(sizes)
        else:
            size = len(data) - len(tail)
            if b"" in lines:
                count = len(lines)
                lines = [line for line in lines if line]
                size -= count - len(lines)
        complete = len(lines)
        tooLong = None
        if len(data) > maxLength:
            for index, line in enumerate(lines):
                if len(line) > maxLength:
                    tooLong = index
                    del lines[index:]
                    break
        runs: list[int] = []
        messages, violation = codec.decode_many(lines, codec.needs_exact(data), runs)
        if violation is not None and not lines[len(messages)].strip(b" \t"):
            # A line of only spaces or tabs is ignored like an empty one
            # (PROTOCOL.md). It is looked for only once a line failed to
            # decode, so that no other chunk pays for it: then every such
            # line goes (counted nowhere, as empty ones), and the rest is
            # decoded again.
            if sizes is None:
                sizes = [len(line) + 1 for line in lines]
            keep = [i for i, line in enumerate(lines) if line.strip(b" \t")]
            size -= sum(sizes[: len(lines)]) - sum(sizes[i] for i in keep)
            complete -= len(lines) - len(keep)
            lines, sizes = [lines[i] for i in keep], [sizes[i] for i in keep]
            runs = []
            messages, violation = codec.decode_many(lines, codec.needs_exact(data), runs)
        kind = None
        if len(runs) == 1 and len(messages) == complete:
            # The usual chunk: all its lines decoded, all of one type.
            table = peer.traffic
            kind = messages[0]["type"]
            counter = table.get(kind)
            if counter is None:
                counter = typeCounter(table, kind)
            counter[0] += complete
            counter[1] += size
        elif messages:
            self._countReceived(messages, runs, lines, sizes)
        if violation is None and (tooLong is not None or len(self._buffer) > maxLength):
            violation = self._tooLong()
        if self._pending is not None:
            # Reading is paused, yet bytes came (the transport may deliver
            # what it had already read): they queue behind those waiting.
            waiting, earlier = self._pending
            self._pending = None
            kind = None
            if earlier is not None:
                messages, violation = waiting, earlier  # nothing counts after it
            else:
                messages = waiting + messages
        self._deliver(messages, violation, kind)

    def _countReceived(
        self,
        messages: list[dict],
        runs: list[int],
        lines: list[bytes],
        sizes: list[int] | None,
    ) -> None:
        """
        Count a chunk's messages received in the peer's C{traffic} (for the
        chunks that L{dataReceived} does not count itself): once per run of
        one type, or one by one when the type changes at nearly every
        message.

        @param runs: where each run starts (from C{decode_many}).
        @param lines: the chunk's lines (none empty), C{messages[i]} being
            that of C{lines[i]}; there may be more lines than messages.
        @param sizes: the bytes of each line as received, or L{None} when
            that is its length + 1 (no C{\\r}).
        """
        table = self.peer.traffic
        count = len(messages)
        if len(runs) * 4 <= count:
            runs.append(count)
            start = 0
            for end in runs[1:]:
                kind = messages[start]["type"]
                counter = table.get(kind)
                if counter is None:
                    counter = typeCounter(table, kind)
                counter[0] += end - start
                counter[1] += (
                    sum(sizes[start:end]) if sizes is not None
                    else sum(map(len, lines[start:end])) + end - start
                )
                start = end
        else:
            if sizes is None:
                sizes = [len(line) + 1 for line in lines]
            for message, lineSize in zip(messages, sizes):
                kind = message["type"]
                counter = table.get(kind)
                if counter is None:
                    counter = typeCounter(table, kind)
                counter[0] += 1
                counter[1] += lineSize

    def _deliver(
        self,
        messages: list[dict],
        violation: ProtocolViolation | None,
        kind: str | None = None,
    ) -> None:
        """
        Hand messages to the peer, then the violation that followed them. What
        the peer does not take because reading was paused meanwhile waits
        for L{resumeProducing}.

        @param kind: the type of every message, when they are all of one.
        """
        if messages:
            rest = self.peer.messagesReceived(messages, kind)
            if self._closing:
                return
            if rest:
                self._pending = (rest, violation)
                return
        if violation is not None and not self._closing:
            self.peer.violation(violation)

    def lineReceived(self, line: bytes) -> None:
        """
        One line (for callers outside C{dataReceived}, which inlines this).
        """
        try:
            message = codec.decode(line)
        except ProtocolViolation as violation:
            self.peer.violation(violation)
            return
        self._count(self.peer.traffic, message, len(line) + 1, False)
        self.peer.messagesReceived([message])

    def _tooLong(self) -> ProtocolViolation:
        """
        The violation of a line over C{MAX_LENGTH}; what was buffered of it
        is dropped.
        """
        self._buffer = b""
        self._more = None
        return ProtocolViolation(f"message longer than {self.MAX_LENGTH} bytes")

    def _tooSlow(self, elapsed: float) -> ProtocolViolation:
        """
        The violation of a line growing too slowly; what was buffered of it
        is dropped.
        """
        held = self.bufferedBytes
        self._buffer = b""
        self._more = None
        return ProtocolViolation(
            f"a line of {held} bytes still unfinished after {elapsed:.0f} s "
            f"(at least {LINE_MIN_BYTES_PER_S} bytes a second after {LINE_GRACE_S} s)"
        )

    def connectionLost(self, reason: Failure) -> None:
        self._closing = True
        self.peer.connectionLost(reason)

    # -- for the peer ---------------------------------------------------------

    def sendMessage(self, message: Mapping, frames: dict | None = None) -> None:
        """
        Encode one message and write it with its delimiter.

        @param frames: when the same message goes to many peers, a dict shared
            by those sends, in which each wire format keeps its encoding of
            the message, so that it is encoded once, not once per peer.
        """
        if frames is None:
            data = codec.encode(message) + b"\n"
        else:
            data = frames.get(JSONLineWire)
            if data is None:
                data = frames[JSONLineWire] = codec.encode(message) + b"\n"
        # _count() inlined: this runs once per message sent.
        table = self.peer.traffic
        kind = message.get("type")
        counter = table.get(kind) if type(kind) is str else None
        if counter is None:
            counter = typeCounter(table, kind, True)
        counter[2] += 1  # (SENT_MESSAGES, SENT_BYTES)
        counter[3] += len(data)
        self._write(data)

    def sendMessages(self, messages: Iterable[Mapping]) -> None:
        """
        Encode several messages and write them in one call.
        """
        table = self.peer.traffic
        count = self._count
        lines = []
        for message in messages:
            data = codec.encode(message) + b"\n"
            count(table, message, len(data), True)
            lines.append(data)
        self._write(b"".join(lines))

    @staticmethod
    def _count(table: dict[str, list[int]], message: Mapping, size: int, sent: bool) -> None:
        """
        Count one message of C{size} bytes, C{sent} or received, in a
        peer's C{traffic}.
        """
        kind = message.get("type")
        # (What an application sends may have an odd type: typeCounter()
        # counts that under OTHER_TYPE.)
        counter = table.get(kind) if type(kind) is str else None
        if counter is None:
            counter = typeCounter(table, kind, sent)
        start = SENT_MESSAGES if sent else RECV_MESSAGES
        counter[start] += 1
        counter[start + 1] += size
