"""
The bytes of the Bitcoin P2P protocol: the message header and the payloads
of the messages bitp2p understands.

Written from the Bitcoin developer reference and the BIPs it follows (14:
the user agent; 31: the ping nonce and C{pong}; 37: the relay flag of
C{version}; 130: C{sendheaders}; 133: C{feefilter}; 152: C{sendcmpct};
155: C{addrv2} and C{sendaddrv2}; 339: C{wtxidrelay}), with the limits
Bitcoin Core applies.

A message is a 24-byte header and a payload::

    magic (4)  command (12, NUL-padded ASCII)  length (u32 LE)  checksum (4)

the checksum being the first 4 bytes of SHA-256(SHA-256(payload)).
L{parseHeader} judges a header (a wrong magic, a command that is not
printable ASCII padded with NULs, or a length over L{MAX_PAYLOAD_BYTES} is
a L{BadHeader}: the connection cannot go on); L{frame} makes a message. The
payload codecs (C{encodeX} / C{parseX}) raise L{MalformedPayload} for a
payload that cannot be read (short, or a field past its limit); a message
with a wrong checksum is for the framing to drop.

It owns byte layouts and their limits; it knows nothing of connections,
peers or the node. Addresses of other networks than IP are made by
L{bitp2p.bitcoin.addrv2}.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Iterable, NamedTuple

from bitp2p.address import Address
from bitp2p.bitcoin import addrv2
from bitp2p.errors import ProtocolViolation

# Protocol versions (Bitcoin Core's protocol.h / version.h).
PROTOCOL_VERSION = 70016
MIN_PEER_PROTO_VERSION = 31800  # older peers are refused
BIP0031_VERSION = 60000  # from the next version on, a ping carries a nonce
WTXID_RELAY_VERSION = 70016  # wtxidrelay is sent to peers of this version on

HEADER_SIZE = 24
COMMAND_SIZE = 12
MAX_PAYLOAD_BYTES = 4_000_000  # MAX_PROTOCOL_MESSAGE_LENGTH
MAX_ADDR_ENTRIES = 1000  # MAX_ADDR_TO_SEND
MAX_SUBVERSION_LENGTH = 256
MAX_ADDRV2_SIZE = 512  # the longest address an addrv2 entry may carry

# Service bits (protocol.h ServiceFlags), by name.
SERVICE_NAMES = {
    1 << 0: "NETWORK",
    1 << 1: "GETUTXO",
    1 << 2: "BLOOM",
    1 << 3: "WITNESS",
    1 << 6: "COMPACT_FILTERS",
    1 << 10: "NETWORK_LIMITED",
    1 << 11: "P2P_V2",
}
NODE_NONE = 0


# What may come between a peer's version and its verack (Core's list, with
# sendtxrcncl, which bitp2p does not speak and ignores): the rest is ignored.
BEFORE_VERACK = frozenset({"verack", "sendaddrv2", "wtxidrelay", "sendtxrcncl"})

# What Bitcoin Core keeps of a user agent to show it (SAFE_CHARS_DEFAULT).
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;-_/:?@()")


def sanitize(text: str) -> str:
    """
    C{text} without the characters Bitcoin Core's C{SanitizeString} drops
    (a peer's user agent is shown in logs, tables and files: control
    characters and escape sequences have no business there).
    """
    return text if _SAFE.issuperset(text) else "".join(c for c in text if c in _SAFE)


def serviceNames(services: int) -> list[str]:
    """
    The names of the service bits set in C{services}, lowest bit first
    (C{UNKNOWN[2^n]} for bits that have none), as Bitcoin Core's
    C{serviceFlagsToStr}.
    """
    names = []
    bit = 0
    while services >> bit and bit < 64:
        if services >> bit & 1:
            names.append(SERVICE_NAMES.get(1 << bit, f"UNKNOWN[2^{bit}]"))
        bit += 1
    return names


class BadHeader(ProtocolViolation):
    """
    A message header the connection cannot go on after: a wrong network
    magic, a malformed command, or a payload length over the limit.
    """


class MalformedPayload(ProtocolViolation):
    """
    A payload that cannot be read as its command says: too short, or a
    field past its limit.
    """


_HEADER = struct.Struct("<4s12sI4s")
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_PORT = struct.Struct(">H")
_sha256 = hashlib.sha256
_PRINTABLE = frozenset(range(0x20, 0x7F))


def checksum(payload: bytes) -> bytes:
    """
    The first 4 bytes of SHA-256(SHA-256(C{payload})).
    """
    return _sha256(_sha256(payload).digest()).digest()[:4]


_EMPTY_CHECKSUM = checksum(b"")


def frame(magic: bytes, command: str, payload: bytes = b"") -> bytes:
    """
    A whole message: the header for C{payload}, then C{payload}.

    @raise ValueError: for a command longer than 12 bytes or not printable
        ASCII, or a payload over L{MAX_PAYLOAD_BYTES}.
    """
    name = command.encode("ascii")
    if not 0 < len(name) <= COMMAND_SIZE or not _PRINTABLE.issuperset(name):
        raise ValueError(f"bad command {command!r}: 1 to 12 printable ASCII characters")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}")
    digest = checksum(payload) if payload else _EMPTY_CHECKSUM
    return _HEADER.pack(magic, name, len(payload), digest) + payload


# Commands seen in headers, decoded once each (a peer chooses them: only
# the valid ones are remembered, and only so many).
_COMMANDS: dict[bytes, str] = {}
_MAX_REMEMBERED_COMMANDS = 256


def parseHeader(header: bytes, magic: bytes, offset: int = 0) -> tuple[str, int, bytes]:
    """
    Read the header at C{offset} of C{header} (24 bytes from there).

    @return: C{(command, payload length, checksum)}.
    @raise BadHeader: for a wrong magic, a command that is not printable
        ASCII followed only by NULs, or a length over L{MAX_PAYLOAD_BYTES}.
    """
    start, raw, length, digest = _HEADER.unpack_from(header, offset)
    if start != magic:
        raise BadHeader(f"wrong network magic {start.hex()} (expected {magic.hex()})")
    command = _COMMANDS.get(raw)
    if command is None:
        command = _command(raw)
    if length > MAX_PAYLOAD_BYTES:
        raise BadHeader(f"{command!r} of {length} bytes, more than {MAX_PAYLOAD_BYTES}")
    return command, length, digest


def _command(raw: bytes) -> str:
    name = raw.rstrip(b"\0")
    if not name or not _PRINTABLE.issuperset(name) or b"\0" in name:
        raise BadHeader(f"malformed command {raw!r}")
    command = name.decode("ascii")
    if len(_COMMANDS) < _MAX_REMEMBERED_COMMANDS:
        _COMMANDS[raw] = command
    return command


# -- integers and strings -------------------------------------------------------


def compactSize(n: int) -> bytes:
    """
    C{n} as a CompactSize integer (1, 3, 5 or 9 bytes).
    """
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + _U16.pack(n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + _U32.pack(n)
    return b"\xff" + _U64.pack(n)


def varStr(text: str | bytes) -> bytes:
    """
    A string as its CompactSize length and its bytes (UTF-8 for a C{str}).
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    return compactSize(len(data)) + data


class Reader:
    """
    Fields read in order from one payload; each read past the end raises
    L{MalformedPayload}.
    """

    __slots__ = ("data", "offset", "what")

    def __init__(self, data: bytes, what: str = "payload") -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def _take(self, s: struct.Struct) -> int:
        offset = self.offset
        if offset + s.size > len(self.data):
            raise MalformedPayload(f"{self.what}: ends after {len(self.data)} bytes")
        self.offset = offset + s.size
        return s.unpack_from(self.data, offset)[0]

    def u8(self) -> int:
        return self._take(_U8)

    def u32(self) -> int:
        return self._take(_U32)

    def u64(self) -> int:
        return self._take(_U64)

    def i32(self) -> int:
        return self._take(_I32)

    def i64(self) -> int:
        return self._take(_I64)

    def port(self) -> int:
        return self._take(_PORT)

    def raw(self, n: int) -> bytes:
        offset = self.offset
        if offset + n > len(self.data):
            raise MalformedPayload(f"{self.what}: ends after {len(self.data)} bytes")
        self.offset = offset + n
        return self.data[offset : offset + n]

    def compactSize(self, limit: int | None = None) -> int:
        """
        A CompactSize integer, in its shortest form (a longer one is
        malformed, as Bitcoin Core's C{ReadCompactSize} says
        "non-canonical"); over C{limit} is malformed too.
        """
        first = self.u8()
        if first < 0xFD:
            n = first
        elif first == 0xFD:
            n = self._take(_U16)
            if n < 0xFD:
                raise MalformedPayload(f"{self.what}: non-canonical CompactSize")
        elif first == 0xFE:
            n = self._take(_U32)
            if n <= 0xFFFF:
                raise MalformedPayload(f"{self.what}: non-canonical CompactSize")
        else:
            n = self._take(_U64)
            if n <= 0xFFFFFFFF:
                raise MalformedPayload(f"{self.what}: non-canonical CompactSize")
        if limit is not None and n > limit:
            raise MalformedPayload(f"{self.what}: {n} is more than {limit}")
        return n

    def varStr(self, limit: int) -> str:
        """
        A string of at most C{limit} bytes, decoded as UTF-8 (bytes that are
        not are replaced: a user agent is only shown).
        """
        return self.raw(self.compactSize(limit)).decode("utf-8", "replace")

    @property
    def left(self) -> int:
        return len(self.data) - self.offset


# -- addresses ------------------------------------------------------------------

_NO_IP = bytes(16)


def netAddr(address: Address | None, services: int = NODE_NONE, port: int | None = None) -> bytes:
    """
    A C{net_addr} without its time (26 bytes: services, 16-byte IP, port
    big-endian), as in C{version}. An address that has no v1 form (Tor v3,
    I2P, CJDNS), and L{None}, are all zeros (C{port}, if given, is kept).
    """
    raw = addrv2.toV1(address) if address is not None else None
    if port is None:
        port = address.port if address is not None else 0
    return _U64.pack(services) + (raw or _NO_IP) + _PORT.pack(port)


def readNetAddr(reader: Reader) -> tuple[int, Address | None, int]:
    """
    A C{net_addr} without its time: C{(services, address or None, port)}.
    The address is L{None} when it is all zeros or not a valid IP.
    """
    services = reader.u64()
    raw = reader.raw(16)
    port = reader.port()
    address = addrv2.fromV1(raw, port) if raw != _NO_IP else None
    return services, address, port


class AddrEntry(NamedTuple):
    """
    One entry of an C{addr} or C{addrv2} message.
    """

    address: Address
    time: int
    services: int


def encodeAddr(entries: Iterable[AddrEntry]) -> bytes:
    """
    The payload of an C{addr} (pre-BIP 155): entries without a v1 form are
    left out. At most L{MAX_ADDR_ENTRIES} are written.
    """
    parts = []
    for address, time, services in entries:
        raw = addrv2.toV1(address)
        if raw is None:
            continue
        parts.append(_U32.pack(time & 0xFFFFFFFF) + _U64.pack(services) + raw + _PORT.pack(address.port))
        if len(parts) == MAX_ADDR_ENTRIES:
            break
    return compactSize(len(parts)) + b"".join(parts)


def encodeAddrV2(entries: Iterable[AddrEntry]) -> bytes:
    """
    The payload of an C{addrv2} (BIP 155). At most L{MAX_ADDR_ENTRIES}.
    """
    parts = []
    for address, time, services in entries:
        network, raw = addrv2.toBip155(address)
        parts.append(
            _U32.pack(time & 0xFFFFFFFF)
            + compactSize(services)
            + bytes((network,))
            + compactSize(len(raw))
            + raw
            + _PORT.pack(address.port)
        )
        if len(parts) == MAX_ADDR_ENTRIES:
            break
    return compactSize(len(parts)) + b"".join(parts)


def _entryCount(reader: Reader, command: str, entrySize: int) -> int:
    count = reader.compactSize()
    if count > MAX_ADDR_ENTRIES:
        raise MalformedPayload(f"{command} of {count} entries, more than {MAX_ADDR_ENTRIES}")
    if count * entrySize > reader.left:
        raise MalformedPayload(f"{command} of {count} entries in {reader.left} bytes")
    return count


def parseAddr(payload: bytes) -> tuple[list[AddrEntry], int]:
    """
    The entries of an C{addr}: C{(entries, skipped)}, C{skipped} counting
    those whose IP is not one bitp2p takes (all zeros, Tor v2's OnionCat).

    @raise MalformedPayload: for more than L{MAX_ADDR_ENTRIES} entries or
        a short payload.
    """
    reader = Reader(payload, "addr")
    count = _entryCount(reader, "addr", 30)
    entries = []
    skipped = 0
    data = payload
    offset = reader.offset
    for _ in range(count):
        time = _U32.unpack_from(data, offset)[0]
        services = _U64.unpack_from(data, offset + 4)[0]
        raw = data[offset + 12 : offset + 28]
        port = _PORT.unpack_from(data, offset + 28)[0]
        offset += 30
        address = addrv2.fromV1(raw, port) if raw != _NO_IP else None
        if address is None:
            skipped += 1
        else:
            entries.append(AddrEntry(address, time, services))
    return entries, skipped


def parseAddrV2(payload: bytes) -> tuple[list[AddrEntry], int]:
    """
    The entries of an C{addrv2} (BIP 155): C{(entries, skipped)}, entries
    of networks unknown to bitp2p (and Tor v2) being skipped.

    @raise MalformedPayload: for more than L{MAX_ADDR_ENTRIES} entries, a
        short payload, an address longer than 512 bytes, or one whose length
        is wrong for its network.
    """
    reader = Reader(payload, "addrv2")
    # (The smallest entry: time, services, network, length, no bytes, port.)
    count = _entryCount(reader, "addrv2", 9)
    entries = []
    skipped = 0
    for _ in range(count):
        time = reader.u32()
        services = reader.compactSize()
        network = reader.u8()
        raw = reader.raw(reader.compactSize(MAX_ADDRV2_SIZE))
        port = reader.port()
        try:
            address = addrv2.fromBip155(network, raw, port)
        except ValueError as e:
            raise MalformedPayload(f"addrv2: {e}") from None
        if address is None:
            skipped += 1
        else:
            entries.append(AddrEntry(address, time, services))
    return entries, skipped


# -- version --------------------------------------------------------------------


class Version(NamedTuple):
    """
    A C{version} message's fields. C{addr_recv} is the receiver's address
    as the sender sees it, C{addr_from} the sender's own (most senders put
    zeros there); either is L{None} when all zeros or not a valid IP.
    """

    version: int
    services: int
    timestamp: int
    addr_recv: Address | None
    addr_from: Address | None
    from_port: int
    nonce: int
    user_agent: str
    start_height: int
    relay: bool


def encodeVersion(
    *,
    nonce: int,
    timestamp: int,
    addr_recv: Address | None = None,
    recv_services: int = NODE_NONE,
    services: int = NODE_NONE,
    from_port: int = 0,
    user_agent: str = "",
    start_height: int = 0,
    relay: bool = False,
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """
    The payload of a C{version}: C{addr_from} carries our services, no IP
    and C{from_port} (the port we listen on, 0 for none).
    """
    return (
        _I32.pack(version)
        + _U64.pack(services)
        + _I64.pack(timestamp)
        + netAddr(addr_recv, recv_services)
        + _U64.pack(services)
        + _NO_IP
        + _PORT.pack(from_port)
        + _U64.pack(nonce)
        + varStr(user_agent)
        + _I32.pack(start_height)
        + (b"\x01" if relay else b"\x00")
    )


def parseVersion(payload: bytes) -> Version:
    """
    A C{version}'s fields. As Bitcoin Core reads it, what follows the
    receiver's address is optional (older peers stop early): the nonce is
    then 0, the user agent empty, the start height 0 and relay true.

    @raise MalformedPayload: if shorter than its first four fields, or if
        the user agent is longer than 256 bytes.
    """
    reader = Reader(payload, "version")
    version = reader.i32()
    services = reader.u64()
    timestamp = reader.i64()
    _, addr_recv, _ = readNetAddr(reader)
    addr_from, from_port, nonce, user_agent, height, relay = None, 0, 0, "", 0, True
    if reader.left:
        _, addr_from, from_port = readNetAddr(reader)
        nonce = reader.u64()
        if reader.left:
            user_agent = reader.varStr(MAX_SUBVERSION_LENGTH)
            if reader.left:
                height = reader.i32()
                if reader.left:
                    relay = reader.u8() != 0
    return Version(
        version, services, timestamp, addr_recv, addr_from, from_port, nonce, user_agent, height, relay
    )


# -- the small messages -----------------------------------------------------------


def encodeNonce(nonce: int) -> bytes:
    """
    The payload of a C{ping} or C{pong}.
    """
    return _U64.pack(nonce)


def parseNonce(payload: bytes, command: str) -> int | None:
    """
    The nonce of a C{ping} or C{pong}; L{None} for an empty C{ping} (a
    peer older than BIP 31, which wants no C{pong}).
    """
    if not payload and command == "ping":
        return None
    return Reader(payload, command).u64()


def parseFeeFilter(payload: bytes) -> int:
    """
    A C{feefilter}'s fee rate (satoshis per 1000 bytes, BIP 133).
    """
    return Reader(payload, "feefilter").i64()


def parseSendCmpct(payload: bytes) -> tuple[bool, int]:
    """
    A C{sendcmpct}'s C{(announce, version)} (BIP 152).
    """
    reader = Reader(payload, "sendcmpct")
    return reader.u8() != 0, reader.u64()


__all__ = [
    "AddrEntry",
    "BadHeader",
    "HEADER_SIZE",
    "MAX_ADDR_ENTRIES",
    "MAX_PAYLOAD_BYTES",
    "MIN_PEER_PROTO_VERSION",
    "MalformedPayload",
    "PROTOCOL_VERSION",
    "Reader",
    "Version",
    "checksum",
    "compactSize",
    "encodeAddr",
    "encodeAddrV2",
    "encodeNonce",
    "encodeVersion",
    "frame",
    "netAddr",
    "parseAddr",
    "parseAddrV2",
    "parseFeeFilter",
    "parseHeader",
    "parseNonce",
    "parseSendCmpct",
    "parseVersion",
    "readNetAddr",
    "serviceNames",
]
