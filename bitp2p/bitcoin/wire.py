"""
The Bitcoin wire format: Bitcoin's framing, and the translation between
Bitcoin messages and the message dicts a L{Peer<bitp2p.peer.Peer>} handles.

L{BitcoinFormat} is the node's L{IWireFormat<bitp2p.interfaces.IWireFormat>}
on a Bitcoin network; L{BitcoinWire} is the framing protocol of one
connection. The peer logic (handshake states, ping timers, discovery,
limits) is the same as on bitp2p's own network: the wire hands the peer the
same dicts JSON lines would (C{version}, C{verack}, C{ping}, C{pong},
C{getaddr}, C{addr}), and encodes the same dicts back into Bitcoin's bytes.
What is Bitcoin's own stays here, where Bitcoin Core's C{V1Transport} and
the first lines of C{PeerManagerImpl::ProcessMessage} have it:

  - a wrong magic, a malformed command or a payload over 4,000,000 bytes
    closes the connection (a violation), as issue 17 asks (Core itself
    drops a message of a malformed command and keeps the peer:
    C{V1Transport::GetReceivedMessage}); a wrong checksum drops that
    message only;
  - before the peer's C{version}, every other message is ignored (Core:
    "non-version message before version handshake"); between its
    C{version} and its C{verack}, all but C{verack}, C{sendaddrv2} and
    C{wtxidrelay} are ignored ("Unsupported message prior to verack"); a
    second C{version} or C{verack} is ignored; C{sendaddrv2} or
    C{wtxidrelay} after C{verack} is a violation;
  - feature negotiation: before our C{verack} we send C{wtxidrelay} and
    C{sendaddrv2} to a peer of protocol 70016 or later; C{addrv2} goes only
    to peers that sent C{sendaddrv2}, plain C{addr} (IP addresses only) to
    the others;
  - every other command (C{inv}, C{headers}, C{sendcmpct}, C{feefilter},
    ...) reaches the peer as C{{"type": command, "payload": bytes}}: ignored
    unless the application registered a handler for it.

The peer's C{version} also brings what Bitcoin says of a peer and bitp2p's
own protocol does not (services, start height, relay flag): the wire hands
it over as the C{info} of the C{version} dict, a L{BitcoinInfo}.

It owns Bitcoin's framing and that translation; it knows nothing of other
connections, the address manager or the node.
"""

from __future__ import annotations

import hashlib
import random
import struct
from typing import TYPE_CHECKING, Iterable, Mapping

import attrs
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from bitp2p import _version
from bitp2p.address import Address, AddressError, address_network, parse_address
from bitp2p.bitcoin import codec
from bitp2p.bitcoin.codec import (
    BEFORE_VERACK,
    HEADER_SIZE,
    MAX_PAYLOAD_BYTES,
    MIN_PEER_PROTO_VERSION,
    WTXID_RELAY_VERSION,
    AddrEntry,
    BadHeader,
    MalformedPayload,
)
from bitp2p.bitcoin.networks import Network
from bitp2p.constants import (
    LINE_GRACE_S,
    LINE_MIN_BYTES_PER_S,
    MAX_COUNTED_TYPES,
    MAX_SEND_BUFFER_BYTES,
)
from bitp2p.errors import ProtocolViolation
from bitp2p.peer import SENT_BYTES, SENT_MESSAGES, ConnectionType, typeCounter
from bitp2p.wire import FramingProtocol

if TYPE_CHECKING:
    from bitp2p.peer import Peer

log = Logger()

# The kinds of the lines an inbound peer could cause at will (RepeatedEvents).
CLOSED_AFTER_VERSION = "Bitcoin peers that closed the connection after our version"
CLOSED_BEFORE_VERSION = "Bitcoin peers that closed the connection before their version"

USER_AGENT = f"/bitp2p:{_version.__version__}/"

# The commands the wire turns into the peer's own dicts, or handles itself:
# the application cannot register handlers for these.
UNDERSTOOD = frozenset(
    {"version", "verack", "ping", "pong", "getaddr", "addr", "addrv2", "sendaddrv2", "wtxidrelay"}
)

# codec's header layout, and its length field alone (at offset 16), for
# dataReceived's loop.
_HEADER = struct.Struct("<4s12sI4s")
_LENGTH = struct.Struct("<I").unpack_from
_NONCE = struct.Struct("<Q").unpack_from
_sha256 = hashlib.sha256

# The fields of an application message on a Bitcoin network ("payload"
# may be left out for an empty one).
_APPLICATION_KEYS = frozenset({"type", "payload"})

# Services remembered per relayed address, so that an address relayed on
# says what its source said of it.
MAX_REMEMBERED_SERVICES = 65536


@attrs.frozen
class BitcoinInfo:
    """
    What a Bitcoin peer's C{version} says beyond bitp2p's own fields.

    @ivar services: its service bits.
    @ivar start_height: the height of its best block.
    @ivar relay: whether it wants transactions relayed to it (BIP 37).
    @ivar nonce: the nonce of its C{version}.
    """

    services: int
    start_height: int
    relay: bool
    nonce: int

    @property
    def service_names(self) -> list[str]:
        return codec.serviceNames(self.services)


def nonceId(node_id: str) -> str:
    """
    A node id in the form node ids take on a Bitcoin network: 16 hex
    digits, as a peer's is (the nonce of its C{version}). A node id that is
    not one already is hashed into one.
    """
    if len(node_id) == 16:
        try:
            int(node_id, 16)
            return node_id.lower()
        except ValueError:
            pass
    return hashlib.sha256(node_id.encode("utf-8")).hexdigest()[:16]


class BitcoinFormat:
    """
    The Bitcoin wire format of one network (an C{IWireFormat}).

    @ivar network: the L{Network} (its magic is checked on every message).
    @ivar services: the service bits we announce (0: none).
    @ivar startHeight: the start height we announce.
    @ivar relay: the relay flag we announce.
    @ivar minProtocol: peers of an older protocol version are refused.
    @ivar gossip: whether bitp2p's gossip (broadcast) can be carried: no.
    @ivar reservedTypes: message types the application cannot register.
    """

    gossip = False
    reservedTypes = UNDERSTOOD
    minProtocol = MIN_PEER_PROTO_VERSION

    def __init__(
        self,
        network: Network,
        services: int = codec.NODE_NONE,
        startHeight: int = 0,
        relay: bool = False,
        maxSendBufferBytes: int = MAX_SEND_BUFFER_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        self.network = network
        self._rng = rng if rng is not None else random.SystemRandom()
        # The nonces of the versions we sent on connections still open, and
        # the node id each stands for (ours): a version carrying one of them
        # is a connection to ourselves (Core's CheckIncomingNonce).
        self._sentNonces: dict[int, str] = {}
        self.name = f"bitcoin-{network.name}"
        self.services = services
        self.startHeight = startHeight
        self.relay = relay
        self.maxSendBufferBytes = maxSendBufferBytes
        self._services: dict[Address, int] = {}

    def buildProtocol(self, peer: Peer) -> BitcoinWire:
        """
        The framing protocol of a new connection, feeding C{peer}.
        """
        return BitcoinWire(self, peer)

    def newNonce(self, nodeId: str) -> int:
        """
        The nonce of our C{version} on one connection: a new one for each,
        as Core draws one per connection (one for all would let an observer
        link our connections), standing for our C{nodeId} until
        L{nonceDone}.
        """
        nonce = self._rng.getrandbits(64)
        while nonce in self._sentNonces or not nonce:
            nonce = self._rng.getrandbits(64)
        self._sentNonces[nonce] = nodeId
        return nonce

    def nonceDone(self, nonce: int) -> None:
        """
        The connection whose C{version} carried C{nonce} closed.
        """
        self._sentNonces.pop(nonce, None)

    def idOf(self, nonce: int) -> str:
        """
        The node id of a peer whose C{version} carried C{nonce}: the nonce
        in 16 hex digits, or our own node id when it is the nonce of one of
        our versions (the connection is to ourselves).
        """
        ours = self._sentNonces.get(nonce)
        return ours if ours is not None else f"{nonce:016x}"

    def frames(self, message: Mapping) -> dict:
        """
        An application message (C{{"type": command, "payload": bytes}})
        framed once, as the C{frames} of L{BitcoinWire.sendMessage}.

        @raise ValueError: if it is not one of that form (other fields than
            C{type} and C{payload}, a payload that is not bytes, a command
            that is not 1 to 12 printable ASCII characters).
        """
        payload = message.get("payload", b"")
        # Other fields would be dropped silently (a JSON-style message sent
        # as an empty Bitcoin one): refused.
        if not isinstance(payload, (bytes, bytearray)) or not _APPLICATION_KEYS.issuperset(message):
            raise ValueError(
                f"{message.get('type')!r}: on a Bitcoin network a message is "
                "{'type': command, 'payload': bytes}"
            )
        return {BitcoinWire: codec.frame(self.network.magic, message["type"], bytes(payload))}

    def rememberServices(self, entries: Iterable[AddrEntry]) -> None:
        """
        Remember what a peer said each address offers (a bounded table).
        """
        table = self._services
        for address, _, services in entries:
            if address not in table and len(table) >= MAX_REMEMBERED_SERVICES:
                del table[next(iter(table))]
            table[address] = services

    def servicesOf(self, address: Address) -> int:
        """
        What we heard C{address} offers (0 when nothing).
        """
        return self._services.get(address, 0)


class BitcoinWire(FramingProtocol):
    """
    Bitcoin's framing for one connection (an C{IPeerWire}).

    @ivar peer: the message-level logic this wire feeds.
    @ivar peerVersion: the protocol version of the peer's C{version} (0
        before it).
    @ivar sendAddrV2: whether the peer asked for C{addrv2} (BIP 155).
    @ivar wtxidRelay: whether the peer sent C{wtxidrelay} (BIP 339).
    @ivar bytesIn: bytes received on this connection.
    @ivar bytesOut: bytes written to this connection.
    @ivar sendPaused: whether the send buffer is full.
    @ivar badChecksums: messages dropped for a wrong checksum.
    @ivar ignored: messages the wire ignored for coming out of place
        (before the peer's C{version}, before its C{verack}, or again).
    """

    def __init__(self, format: BitcoinFormat, peer: Peer) -> None:
        super().__init__(peer, format.maxSendBufferBytes)
        self.format = format
        self._magic = format.network.magic
        self.peerVersion = 0
        self._nonce: int | None = None
        self._gotVerack = False
        self._versionSent = False
        self.sendAddrV2 = False
        self.wtxidRelay = False
        self.badChecksums = 0
        self.ignored = 0
        self._ignoredWhy: set[str] = set()
        self._buffer = bytearray()
        self._commands: dict[bytes, tuple[str, list[int], bool]] = {}
        self._pending: list[dict] = []
        self._messageStarted = 0.0

    # -- from the transport ---------------------------------------------------

    def _readingResumed(self) -> None:
        self.peer.resumeReading()
        self._deliver([])  # what was held (which may pause again)

    def dataReceived(self, data: bytes) -> None:
        # The busiest path (bench/bitcoinframing.py): codec.parseHeader and
        # codec.checksum are inlined, each command's name, counter and kind
        # are looked up once per connection (self._commands), and payloads
        # are sliced from one bytes object (one copy each). What it does is
        # that of a loop calling parseHeader, checksum and _translate.
        if self._closing:
            return
        peer = self.peer
        self.bytesIn += len(data)
        peer.dataArrived()
        buffer = self._buffer
        if not buffer:
            self._messageStarted = peer.last_recv
            if type(data) is not bytes:
                data = bytes(data)
        elif len(buffer) >= HEADER_SIZE and len(buffer) + len(data) < HEADER_SIZE + _LENGTH(buffer, 16)[0]:
            # A long message goes on arriving (its header was judged when it
            # came): it grows in the bytearray, for joining it to each chunk
            # would cost its length squared.
            buffer += data
            data = b""
        else:
            data = b"".join((buffer, data))
            buffer.clear()
        messages: list[dict] = []
        violation: ProtocolViolation | None = None
        offset = 0
        size = len(data)
        magic = self._magic
        commands = self._commands
        unpackHeader = _HEADER.unpack_from
        sha256 = _sha256
        while size - offset >= HEADER_SIZE:
            start, raw, length, digest = unpackHeader(data, offset)
            known = commands.get(raw)
            if known is None or start != magic or length > MAX_PAYLOAD_BYTES:
                # A command not seen yet on this connection, or a bad
                # header: codec.parseHeader judges it.
                try:
                    command, length, digest = codec.parseHeader(data, magic, offset)
                except BadHeader as e:
                    violation = e
                    break
                known = None
            end = offset + HEADER_SIZE + length
            if end > size:
                break
            if known is None:
                # (Only now: a command is counted once its message is whole.)
                known = self._command(raw, command)
            command, counter, application = known
            payload = data[offset + HEADER_SIZE : end]
            offset = end
            counter[0] += 1
            counter[1] += HEADER_SIZE + length
            if sha256(sha256(payload).digest()).digest()[:4] != digest:
                self._badChecksum(command)
                continue
            if application and self._gotVerack:
                # What _translate makes of a command it does not know.
                messages.append({"type": command, "payload": payload})
                continue
            try:
                message = self._translate(command, payload)
            except ProtocolViolation as e:
                violation = e
                break
            if message is not None:
                messages.append(message)
        if violation is None:
            if offset < size:
                buffer += memoryview(data)[offset:]
            if offset:
                self._messageStarted = peer.last_recv
            elif buffer:
                elapsed = peer.last_recv - self._messageStarted
                if elapsed > LINE_GRACE_S and len(buffer) < elapsed * LINE_MIN_BYTES_PER_S:
                    violation = ProtocolViolation(
                        f"a message of which {len(buffer)} bytes came in {elapsed:.0f} s "
                        f"(at least {LINE_MIN_BYTES_PER_S} bytes a second after {LINE_GRACE_S} s)"
                    )
                    buffer.clear()
        self._deliver(messages)
        if violation is not None and not self._closing:
            peer.violation(violation)

    def _command(self, raw: bytes, command: str) -> tuple[str, list[int], bool]:
        """
        C{(command, its counter in the peer's C{traffic}, whether it is
        an application's)} for a command read from a header (C{raw}: its 12
        bytes), remembered for the next ones (at most L{MAX_COUNTED_TYPES}
        commands: a peer chooses them).
        """
        table = self.peer.traffic
        counter = table.get(command)
        if counter is None:
            counter = typeCounter(table, command)
        known = (command, counter, command not in UNDERSTOOD)
        if len(self._commands) < MAX_COUNTED_TYPES:
            self._commands[raw] = known
        return known

    def _deliver(self, messages: list[dict]) -> None:
        """
        Hand messages to the peer; what it does not take because reading
        was paused meanwhile waits for L{resumeProducing}.
        """
        if self._pending:
            messages = self._pending + messages
            self._pending = []
        if messages:
            rest = self.peer.messagesReceived(messages)
            if rest and not self._closing:
                self._pending = rest

    def _badChecksum(self, command: str) -> None:
        self.badChecksums += 1
        if self.badChecksums == 1:
            log.debug(
                "Dropping a {command!r} with a wrong checksum from {peer} "
                "(further ones are not logged)",
                command=command,
                peer=self.peer,
            )

    def _ignore(self, command: str, why: str) -> None:
        # Logged once per reason and connection: a peer must not be able to
        # fill the log (twistd writes debug events too) with messages it
        # knows are ignored (the reasons are the few strings of _translate).
        self.ignored += 1
        if why not in self._ignoredWhy:
            self._ignoredWhy.add(why)
            log.debug(
                "Ignoring {command!r} from {peer}: {why} (further ones are not logged)",
                command=command,
                peer=self.peer,
                why=why,
            )

    # -- Bitcoin messages into the peer's dicts ----------------------------

    def _translate(self, command: str, payload: bytes) -> dict | None:
        """
        The dict the peer is handed for one message, or L{None} when the
        wire handles (or ignores) it itself.

        @raise ProtocolViolation: for a malformed message the peer's logic
            relies on, or one out of place in a way that ends a connection.
        """
        if command == "version":
            if self.peerVersion:
                self._ignore(command, "redundant version message")
                return None
            return self._version(codec.parseVersion(payload))
        if not self.peerVersion:
            self._ignore(command, "non-version message before version handshake")
            return None
        if not self._gotVerack:
            if command not in BEFORE_VERACK:
                self._ignore(command, "unsupported message prior to verack")
                return None
            if command == "verack":
                self._gotVerack = True
                return {"type": "verack"}
            if command == "sendaddrv2":
                self.sendAddrV2 = True
            elif command == "wtxidrelay" and self.peerVersion >= WTXID_RELAY_VERSION:
                self.wtxidRelay = True
            return None
        if command == "ping":
            # codec.parseNonce, inlined: no nonce (an empty ping, before BIP
            # 31) or too short a one (malformed) wants no pong.
            if len(payload) < 8:
                return None
            return {"type": "ping", "nonce": _NONCE(payload)[0]}
        if command == "pong":
            try:
                return {"type": "pong", "nonce": codec.parseNonce(payload, command)}
            except MalformedPayload:
                self._ignore(command, "short payload")
                return None
        if command == "addr" or command == "addrv2":
            parse = codec.parseAddrV2 if command == "addrv2" else codec.parseAddr
            entries, skipped = parse(payload)
            if skipped:
                log.debug(
                    "{skipped} of the {count} entries of an {command} from {peer} "
                    "are of networks bitp2p does not store",
                    skipped=skipped,
                    count=skipped + len(entries),
                    command=command,
                    peer=self.peer,
                )
            self.format.rememberServices(entries)
            return {"type": "addr", "peers": [(e.address, e.time) for e in entries]}
        if command == "getaddr":
            return {"type": "getaddr"}
        if command == "verack":
            self._ignore(command, "redundant verack message")
            return None
        if command == "sendaddrv2" or command == "wtxidrelay":
            raise ProtocolViolation(f"{command} received after verack")
        return {"type": command, "payload": payload}

    def _version(self, version: codec.Version) -> dict:
        self.peerVersion = max(version.version, 1)
        return {
            "type": "version",
            "node_id": self.format.idOf(version.nonce),
            "port": version.from_port,
            "protocol": version.version,
            "user_agent": codec.sanitize(version.user_agent),
            "timestamp": version.timestamp,
            "addr_recv": version.addr_recv,
            "info": BitcoinInfo(version.services, version.start_height, version.relay, version.nonce),
        }

    def connectionLost(self, reason: Failure) -> None:
        self._closing = True
        if self._nonce is not None:
            self.format.nonceDone(self._nonce)
        peer = self.peer
        if self._versionSent and not peer.established and peer.close_reason is None:
            if self.peerVersion:
                self._report(
                    CLOSED_AFTER_VERSION,
                    "{peer} closed the connection after our version: it may want "
                    "services bitp2p does not offer (bitp2p offers {services})",
                    services=" ".join(codec.serviceNames(self.format.services)) or "none",
                )
            else:
                self._report(
                    CLOSED_BEFORE_VERSION,
                    "{peer} closed the connection before sending its version",
                )
        peer.connectionLost(reason)

    def _report(self, kind: str, format: str, **fields) -> None:
        """
        Log a line about how the peer ended the handshake: at info for a
        connection we made; summarised for inbound ones (anyone can connect
        and do it again).
        """
        peer = self.peer
        if peer.kind is ConnectionType.INBOUND:
            host = getattr(peer.remote_address, "host", "") or ""
            peer.repeated.emit(log, LogLevel.info, kind, host, format, peer=peer, **fields)
        else:
            log.info(format, peer=peer, **fields)

    # -- the peer's dicts into Bitcoin messages ------------------------------

    def sendMessage(self, message: Mapping, frames: dict | None = None) -> None:
        """
        Encode one message and write it.

        @param frames: shared by the sends of one message to many peers (see
            L{BitcoinFormat.frames}): an application message is framed once.
        """
        if frames is not None:
            # An application message (the peer's own go without frames),
            # framed by BitcoinFormat.frames: counted here (it was not: the
            # frames skip _frame), and sent even without a "payload" key,
            # which frames() takes for an empty payload (_encode refused it).
            data = frames.get(BitcoinWire)
            if data is None:
                data = frames[BitcoinWire] = self.format.frames(message)[BitcoinWire]
            self._count(message["type"], len(data))
        else:
            data = self._encode(message)
        if data:
            self._write(data)

    def sendMessages(self, messages: Iterable[Mapping]) -> None:
        """
        Encode several messages and write them in one call.
        """
        data = b"".join([self._encode(message) for message in messages])
        if data:
            self._write(data)

    def _frame(self, command: str, payload: bytes = b"") -> bytes:
        data = codec.frame(self._magic, command, payload)
        self._count(command, len(data))
        return data

    def _count(self, command: str, size: int) -> None:
        table = self.peer.traffic
        counter = table.get(command)
        if counter is None:
            counter = typeCounter(table, command, True)
        counter[SENT_MESSAGES] += 1
        counter[SENT_BYTES] += size

    def _encode(self, message: Mapping) -> bytes:
        kind = message.get("type")
        frame = self._frame
        if kind == "ping" or kind == "pong":
            return frame(kind, codec.encodeNonce(message["nonce"]))
        if kind == "addr":
            return self._addr(message["peers"])
        if kind == "getaddr":
            return frame(kind)
        if kind == "version":
            self._versionSent = True
            return frame(kind, self._versionPayload(message))
        if kind == "verack":
            # Feature negotiation goes before our verack, as Core sends it.
            data = b""
            if self.peerVersion >= WTXID_RELAY_VERSION:
                data = frame("wtxidrelay") + frame("sendaddrv2")
            return data + frame("verack")
        payload = message.get("payload")
        if isinstance(kind, str) and isinstance(payload, (bytes, bytearray)):
            return frame(kind, bytes(payload))
        log.warn(
            "Not sending {kind!r} to {peer}: it has no Bitcoin form",
            kind=kind,
            peer=self.peer,
        )
        return b""

    def _ourNonce(self, nodeId: str) -> int:
        if self._nonce is None:
            self._nonce = self.format.newNonce(nodeId)
        return self._nonce

    def _versionPayload(self, message: Mapping) -> bytes:
        format = self.format
        addr_recv = message.get("addr_recv")
        if isinstance(addr_recv, str):
            try:
                addr_recv = parse_address(addr_recv)
            except AddressError:
                addr_recv = None
        return codec.encodeVersion(
            nonce=self._ourNonce(message["node_id"]),
            timestamp=int(message.get("timestamp") or self.peer.clock.seconds()),
            addr_recv=addr_recv,
            services=format.services,
            from_port=message.get("port") or 0,
            user_agent=message.get("user_agent") or USER_AGENT,
            start_height=format.startHeight,
            relay=format.relay,
        )

    def _addr(self, peers: Iterable) -> bytes:
        now = int(self.peer.clock.seconds())
        servicesOf = self.format.servicesOf
        entries = []
        for entry in peers:
            if isinstance(entry, tuple):
                address, seen = entry
            elif isinstance(entry, dict):
                address, seen = entry.get("addr"), entry.get("time")
            else:
                address, seen = entry, None
            if isinstance(address, str):
                try:
                    address = parse_address(address)
                except AddressError:
                    continue
            if not isinstance(address, Address):
                continue
            if not self.sendAddrV2 and address_network(address) not in ("ipv4", "ipv6"):
                continue
            entries.append(AddrEntry(address, int(seen or now), servicesOf(address)))
        if not entries:
            return b""
        if self.sendAddrV2:
            return self._frame("addrv2", codec.encodeAddrV2(entries))
        return self._frame("addr", codec.encodeAddr(entries))


__all__ = ["BitcoinFormat", "BitcoinInfo", "BitcoinWire", "USER_AGENT", "nonceId"]
