"""
The wire format: newline-delimited JSON over a byte stream.

This module is framing and nothing else. L{JSONLineWire} is the Twisted
protocol attached to a connection: it cuts the byte stream into lines, turns
each line into a message dict with L{bitp2p.codec}, and hands it to its
L{Peer<bitp2p.peer.Peer>}, which holds all message meaning (handshake,
discovery, keep-alive). A second wire format is another class offering the
same few methods to a L{Peer}; the peer logic does not change.

The methods a peer uses of its wire are: C{sendMessage}, C{sendMessages},
C{close}, C{abort}, C{getPeer}, C{getHost} and the counters C{bytesIn} and
C{bytesOut}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Mapping

from twisted.internet.interfaces import IAddress
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from bitp2p import codec
from bitp2p.codec import ProtocolViolation
from bitp2p.constants import MAX_MESSAGE_BYTES, MAX_SEND_BUFFER_BYTES

if TYPE_CHECKING:
    from bitp2p.peer import Peer


class JSONLineWire(LineReceiver):
    """
    Newline-delimited JSON framing for one connection.

    Unlike the stock L{LineReceiver}, C{dataReceived} splits each received
    chunk once (the stock one re-splits its whole buffer once per line, which
    is quadratic in the chunk size), strips one optional C{\\r}, skips empty
    lines, decodes the chunk's lines in one call to
    L{codec.decode_many<bitp2p.codec.decode_many>} and hands the messages to
    its peer in one call; the peer stops taking them as soon as the
    connection is being closed.

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
        self.peer = peer
        self.MAX_LENGTH = maxLength
        self.maxSendBuffer = maxSendBuffer
        self.bytesIn = 0
        self.bytesOut = 0
        self.sendPaused = False
        self._readingPaused = False
        self._registered = False
        self._writtenWhilePaused = 0
        self._pending: tuple[list[dict], ProtocolViolation | None] | None = None
        self._closing = False
        peer.wire = self

    # -- from the transport ---------------------------------------------------

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
        The send buffer has drained: read from the peer again.
        """
        if not self.sendPaused:
            return
        self.sendPaused = False
        if self._readingPaused:
            self._readingPaused = False
            self.peer.resumeReading()
            pending, self._pending = self._pending, None
            if pending is not None:
                self._deliver(*pending)  # which may pause again
            if not self.sendPaused and not self._closing:
                self.transport.resumeProducing()
        self.peer.sendDrained()

    def stopProducing(self) -> None:
        self._closing = True

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if not self.bytesIn and data[:1] == b"\x16":
            # A TLS record (a ClientHello) where JSON was expected.
            self.bytesIn = len(data)
            self.peer.violation(ProtocolViolation("it speaks TLS, and this node runs without --tls"))
            return
        self.bytesIn += len(data)
        peer = self.peer
        peer.dataArrived()
        if self._buffer:
            data = self._buffer + data
        lines = data.split(b"\n")
        self._buffer = lines.pop()
        # Checks that hold for a whole chunk are made once for it, so that
        # the usual chunk (no \r, no long line) costs nothing per line.
        if b"\r" in data:
            lines = [line[:-1] if line[-1:] == b"\r" else line for line in lines]
        maxLength = self.MAX_LENGTH
        tooLong = None
        if len(data) > maxLength:
            for index, line in enumerate(lines):
                if len(line) > maxLength:
                    tooLong = index
                    del lines[index:]
                    break
        messages, violation = codec.decode_many(lines, codec.needs_exact(data))
        if violation is None and (tooLong is not None or len(self._buffer) > maxLength):
            violation = self._tooLong()
        if self._pending is not None:
            # Reading is paused, yet bytes came (the transport may deliver
            # what it had already read): they queue behind those waiting.
            waiting, earlier = self._pending
            self._pending = None
            if earlier is not None:
                messages, violation = waiting, earlier  # nothing counts after it
            else:
                messages = waiting + messages
        self._deliver(messages, violation)

    def _deliver(self, messages: list[dict], violation: ProtocolViolation | None) -> None:
        """
        Hand messages to the peer, then the violation that followed them. What
        the peer does not take because reading was paused meanwhile waits
        for L{resumeProducing}.
        """
        if messages:
            rest = self.peer.messagesReceived(messages)
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
        self.peer.messagesReceived([message])

    def lineLengthExceeded(self, line: bytes) -> None:
        self.peer.violation(self._tooLong())

    def _tooLong(self) -> ProtocolViolation:
        """
        The violation of a line over C{MAX_LENGTH}; what was buffered of it
        is dropped.
        """
        self._buffer = b""
        return ProtocolViolation(f"message longer than {self.MAX_LENGTH} bytes")

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
            self._write(codec.encode(message) + b"\n")
            return
        data = frames.get(JSONLineWire)
        if data is None:
            data = frames[JSONLineWire] = codec.encode(message) + b"\n"
        self._write(data)

    def sendMessages(self, messages: Iterable[Mapping]) -> None:
        """
        Encode several messages and write them in one call.
        """
        self._write(b"".join(codec.encode(message) + b"\n" for message in messages))

    def _write(self, data: bytes) -> None:
        self.bytesOut += len(data)
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
