"""
A scripted Bitcoin peer for tests: the bytes a Bitcoin node sends, made
with L{bitp2p.bitcoin.codec}, and the messages it is sent, read back.

L{message}, L{versionPayload} and L{parseMessages} are for tests that drive
a wire by hand (C{wire.dataReceived(...)} on a C{StringTransport});
L{BitcoinPeer} is a remote node played as a Twisted protocol (on the
in-memory network, or C{twisted.test.iosim}), which answers as Bitcoin Core
does unless told otherwise: its C{version} on the dialer's (or first, with
C{speakFirst}), C{wtxidrelay} and C{sendaddrv2} before its C{verack} to a
peer of protocol 70016 or later, a C{pong} to each C{ping}.

It knows the codec's byte layouts and nothing of bitp2p's peers or node.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.protocol import Factory, Protocol

from bitp2p.address import Address
from bitp2p.bitcoin import codec
from bitp2p.bitcoin.networks import network

REGTEST = network("regtest").magic
MAINNET = network("mainnet").magic

NODE_NETWORK = 1 << 0
NODE_WITNESS = 1 << 3
NODE_NETWORK_LIMITED = 1 << 10
CORE_SERVICES = NODE_NETWORK | NODE_WITNESS | NODE_NETWORK_LIMITED
CORE_USER_AGENT = "/Satoshi:27.0.0/"
PEER_NONCE = 0x0123456789ABCDEF


def message(command: str, payload: bytes = b"", magic: bytes = REGTEST) -> bytes:
    """
    One whole message (header and payload), as a Bitcoin node frames it.
    """
    return codec.frame(magic, command, payload)


def rawMessage(
    command: bytes,
    payload: bytes = b"",
    magic: bytes = REGTEST,
    length: int | None = None,
    checksum: bytes | None = None,
) -> bytes:
    """
    A message whose header fields are given as they are, for the ones
    L{message} refuses to make: a malformed command (padded with NULs to 12
    bytes), a wrong length or checksum.
    """
    import struct

    return (
        struct.pack(
            "<4s12sI4s",
            magic,
            command.ljust(12, b"\0"),
            len(payload) if length is None else length,
            codec.checksum(payload) if checksum is None else checksum,
        )
        + payload
    )


def versionPayload(
    *,
    version: int = codec.PROTOCOL_VERSION,
    nonce: int = PEER_NONCE,
    services: int = CORE_SERVICES,
    user_agent: str = CORE_USER_AGENT,
    start_height: int = 840_000,
    relay: bool = True,
    timestamp: int = 1_700_000_000,
    addr_recv: Address | None = None,
    from_port: int = 0,
) -> bytes:
    """
    The payload of a C{version} as Bitcoin Core 27 sends it, by default.
    """
    return codec.encodeVersion(
        nonce=nonce,
        timestamp=timestamp,
        addr_recv=addr_recv,
        services=services,
        from_port=from_port,
        user_agent=user_agent,
        start_height=start_height,
        relay=relay,
        version=version,
    )


def versionMessage(magic: bytes = REGTEST, **fields) -> bytes:
    """
    A whole C{version} message (L{versionPayload}'s fields).
    """
    return message("version", versionPayload(**fields), magic)


def parseMessages(data: bytes, magic: bytes = REGTEST) -> list[tuple[str, bytes]]:
    """
    The messages in C{data}, strictly: each header must be valid with the
    right checksum, and C{data} must end where a message ends.

    @return: C{(command, payload)} pairs, in order.
    @raise AssertionError: for bytes that are not whole valid messages.
    """
    out = []
    offset = 0
    while offset < len(data):
        assert len(data) - offset >= codec.HEADER_SIZE, f"a partial header: {data[offset:]!r}"
        command, length, digest = codec.parseHeader(data, magic, offset)
        assert command is not None, f"a malformed command at {offset}"
        payload = data[offset + codec.HEADER_SIZE : offset + codec.HEADER_SIZE + length]
        assert len(payload) == length, f"{command!r}: {len(payload)} of {length} bytes"
        assert codec.checksum(payload) == digest, f"{command!r}: a wrong checksum"
        out.append((command, payload))
        offset += codec.HEADER_SIZE + length
    return out


class BitcoinPeer(Protocol):
    """
    A remote Bitcoin node played by a script (Bitcoin Core's behaviour
    unless told otherwise).

    @ivar received: the C{(command, payload)} messages received, in order.
    @ivar connected: whether the connection is up.
    @ivar lost: whether the connection was lost.
    @ivar onMessage: called with C{(self, command, payload)} for each
        message received, after the scripted answer (for tests that add
        their own).
    """

    def __init__(
        self,
        magic: bytes = REGTEST,
        *,
        version: int = codec.PROTOCOL_VERSION,
        nonce: int = PEER_NONCE,
        services: int = CORE_SERVICES,
        user_agent: str = CORE_USER_AGENT,
        speakFirst: bool = False,
        sendVersion: bool = True,
        features: tuple[str, ...] | None = None,
        sendVerack: bool = True,
        closeAfterVersion: bool = False,
        answerPing: bool = True,
        onMessage: Callable[[BitcoinPeer, str, bytes], None] | None = None,
    ) -> None:
        """
        @param speakFirst: send our C{version} as soon as connected, even
            as the one dialed (Core's inbound side waits for the dialer's).
        @param sendVersion: send a C{version} at all.
        @param features: what is sent between our C{version} and our
            C{verack}; by default C{wtxidrelay} and C{sendaddrv2} for a
            C{version} of 70016 or later, nothing for an older one.
        @param closeAfterVersion: close the connection on the other side's
            C{version} without answering (as Core does to an outbound peer
            lacking the services it wants).
        """
        self.magic = magic
        self.version = version
        self.nonce = nonce
        self.services = services
        self.user_agent = user_agent
        self.speakFirst = speakFirst
        self.sendVersion = sendVersion
        if features is None:
            features = ("wtxidrelay", "sendaddrv2") if version >= 70016 else ()
        self.features = features
        self.sendVerack = sendVerack
        self.closeAfterVersion = closeAfterVersion
        self.answerPing = answerPing
        self.onMessage = onMessage
        self.received: list[tuple[str, bytes]] = []
        self.connected = False
        self.lost = False
        self._versionSent = False
        self._buffer = b""

    # -- what it sends --------------------------------------------------------------

    def send(self, command: str, payload: bytes = b"") -> None:
        self.transport.write(message(command, payload, self.magic))

    def sendRaw(self, data: bytes) -> None:
        self.transport.write(data)

    def _sendVersion(self) -> None:
        if self._versionSent or not self.sendVersion:
            return
        self._versionSent = True
        self.send(
            "version",
            versionPayload(
                version=self.version,
                nonce=self.nonce,
                services=self.services,
                user_agent=self.user_agent,
            ),
        )

    # -- what it receives -----------------------------------------------------------

    def commands(self) -> list[str]:
        return [command for command, _ in self.received]

    def payloads(self, command: str) -> list[bytes]:
        return [payload for kind, payload in self.received if kind == command]

    def connectionMade(self) -> None:
        self.connected = True
        if self.speakFirst:
            self._sendVersion()

    def connectionLost(self, reason=None) -> None:
        self.connected = False
        self.lost = True

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= codec.HEADER_SIZE:
            command, length, _ = codec.parseHeader(self._buffer, self.magic)
            end = codec.HEADER_SIZE + length
            if len(self._buffer) < end:
                return
            payload, self._buffer = self._buffer[codec.HEADER_SIZE : end], self._buffer[end:]
            self.received.append((command, payload))
            self._answer(command, payload)
            if self.onMessage is not None:
                self.onMessage(self, command, payload)

    def _answer(self, command: str, payload: bytes) -> None:
        if command == "version":
            if self.closeAfterVersion:
                self.transport.loseConnection()
                return
            self._sendVersion()
            for feature in self.features:
                self.send(feature)
            if self.sendVerack:
                self.send("verack")
        elif command == "ping" and self.answerPing and len(payload) == 8:
            self.send("pong", payload)


class BitcoinPeerFactory(Factory):
    """
    Makes a L{BitcoinPeer} for each connection, with the same arguments;
    C{peers} holds them in order.
    """

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.peers: list[BitcoinPeer] = []

    def buildProtocol(self, addr) -> BitcoinPeer:
        peer = BitcoinPeer(**self.kwargs)
        peer.factory = self
        self.peers.append(peer)
        return peer
