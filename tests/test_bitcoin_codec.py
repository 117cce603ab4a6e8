"""
The Bitcoin codec against an independent implementation (python-bitcoinlib),
the byte strings of the Bitcoin developer reference, and Bitcoin Core's
limits.
"""

from __future__ import annotations

import ipaddress
import struct

import bitcoin
import pytest
from bitcoin.core.serialize import VarIntSerializer
from bitcoin.messages import MsgSerializable, msg_addr, msg_getaddr, msg_ping, msg_pong, msg_verack, msg_version
from bitcoin.net import CAddress
from hypothesis import given, settings
from hypothesis import strategies as st

from bitp2p.address import Address
from bitp2p.bitcoin import codec
from bitp2p.bitcoin.codec import AddrEntry, BadHeader, MalformedPayload

from .bitcoinpeer import MAINNET, REGTEST, rawMessage

bounded = settings(max_examples=200, deadline=None)


@pytest.fixture(autouse=True)
def mainnet():
    """
    python-bitcoinlib frames with the magic of its selected chain: mainnet
    here (and again after a test that selects another).
    """
    bitcoin.SelectParams("mainnet")
    yield
    bitcoin.SelectParams("mainnet")


# -- strategies -------------------------------------------------------------------

u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
ports = st.integers(0, 65535)
# Tor v2's OnionCat range and IPv4-mapped IPv6 are not IPv6 addresses to
# bitp2p (nor to Core); all zeros is "no address".
_ONIONCAT = ipaddress.ip_network("fd87:d87e:eb43::/48")
ipv6 = st.ip_addresses(v=6).filter(
    lambda ip: ip.ipv4_mapped is None and ip not in _ONIONCAT and ip.packed != bytes(16)
)
ipv4 = st.ip_addresses(v=4).filter(lambda ip: ip.packed != bytes(4))
addresses = st.builds(lambda ip, port: Address.of(str(ip), port), ipv4 | ipv6, ports)
userAgents = st.text(max_size=80).filter(lambda s: len(s.encode("utf-8")) <= codec.MAX_SUBVERSION_LENGTH)


def theirAddress(address: Address | None, services: int, time: int = 0) -> CAddress:
    """
    python-bitcoinlib's C{CAddress} for C{address} ("::" for none: it
    writes "0.0.0.0" as ::ffff:0.0.0.0, Core and bitp2p as 16 zeros).
    """
    a = CAddress()
    a.nServices = services
    a.nTime = time
    a.ip = "::" if address is None else address.host
    a.port = 0 if address is None else address.port
    return a


def sameIp(theirs: str, ours: Address | None) -> bool:
    ip = ipaddress.ip_address(theirs)
    if ours is None:
        return ip.packed == bytes(len(ip.packed))
    return ip == ours.ip


# -- the header -----------------------------------------------------------------------


class TestHeader:
    def test_verackOfTheDeveloperReference(self):
        """
        developer.bitcoin.org, P2P Network, "verack": an empty payload's
        header on mainnet, its checksum 5df6e0e2.
        """
        expected = bytes.fromhex("f9beb4d9" "76657261636b000000000000" "00000000" "5df6e0e2")
        assert codec.frame(MAINNET, "verack") == expected
        assert codec.parseHeader(expected, MAINNET) == ("verack", 0, bytes.fromhex("5df6e0e2"))
        assert codec.checksum(b"") == bytes.fromhex("5df6e0e2")

    @pytest.mark.parametrize("theirs", [msg_verack(), msg_getaddr()])
    def test_emptyMessagesEqualBitcoinlib(self, theirs):
        command = theirs.command.decode()
        assert codec.frame(MAINNET, command) == theirs.to_bytes()

    def test_regtestMagic(self):
        bitcoin.SelectParams("regtest")
        assert codec.frame(REGTEST, "ping", codec.encodeNonce(7)) == msg_ping(nonce=7).to_bytes()

    def test_wrongMagicIsABadHeader(self):
        data = codec.frame(MAINNET, "verack")
        with pytest.raises(BadHeader, match="magic"):
            codec.parseHeader(data, REGTEST)

    def test_largestPayloadIsAccepted(self):
        header = rawMessage(b"block", length=codec.MAX_PAYLOAD_BYTES)
        assert codec.parseHeader(header, REGTEST)[:2] == ("block", 4_000_000)

    def test_payloadOverTheLimitIsABadHeader(self):
        header = rawMessage(b"block", length=codec.MAX_PAYLOAD_BYTES + 1)
        with pytest.raises(BadHeader, match="4000001"):
            codec.parseHeader(header, REGTEST)

    @pytest.mark.parametrize(
        "raw",
        [
            b"ver\0sion",  # bytes after a NUL
            b"verack\0\0\0\0\0x",
            b"vers\x01ion",  # not printable
            b"vers\x7fion",
            b"caf\xc3\xa9",  # not ASCII
        ],
    )
    def test_malformedCommandIsABadHeader(self, raw):
        """
        A command that is not printable ASCII padded with NULs is a
        malformed header (issue 17: the connection closes; Core drops only
        that message).
        """
        with pytest.raises(BadHeader, match="malformed command"):
            codec.parseHeader(rawMessage(raw, b"abc"), REGTEST)

    def test_emptyCommandIsABadHeader(self):
        """
        Twelve NULs: no command at all.
        """
        with pytest.raises(BadHeader, match="malformed command"):
            codec.parseHeader(rawMessage(b""), REGTEST)

    def test_twelveCharacterCommand(self):
        data = codec.frame(REGTEST, "sendheaders2")
        assert codec.parseHeader(data, REGTEST)[0] == "sendheaders2"

    def test_frameRefusesWhatCannotBeSent(self):
        for command in ("", "thirteen-char", "caf\u00e9", "a\nb"):
            with pytest.raises((ValueError, UnicodeEncodeError)):
                codec.frame(REGTEST, command)
        with pytest.raises(ValueError):
            codec.frame(REGTEST, "block", bytes(codec.MAX_PAYLOAD_BYTES + 1))

    @bounded
    @given(st.binary(max_size=300), st.sampled_from(["ping", "headers", "inv", "x"]))
    def test_headerAndChecksumEqualBitcoinlib(self, payload, command):
        """
        The 24-byte header (magic, NUL-padded command, length, checksum) of
        any payload is python-bitcoinlib's.
        """
        data = codec.frame(MAINNET, command, payload)
        # bitcoinlib's own framing, by hand (its messages carry their own
        # payloads): MsgSerializable.to_bytes of a message writing payload.
        theirs = type("raw", (MsgSerializable,), {"command": command.encode(), "msg_ser": lambda s, f: f.write(payload)})()
        assert data == theirs.to_bytes()
        assert codec.parseHeader(data, MAINNET) == (command, len(payload), codec.checksum(payload))


# -- CompactSize --------------------------------------------------------------------


class TestCompactSize:
    BOUNDARIES = [
        (0, "00"),
        (0xFC, "fc"),
        (0xFD, "fdfd00"),
        (0xFFFF, "fdffff"),
        (0x10000, "fe00000100"),
        (0xFFFFFFFF, "feffffffff"),
        (0x100000000, "ff0000000001000000"),
        (2**64 - 1, "ffffffffffffffffff"),
    ]

    @pytest.mark.parametrize("n,hex", BOUNDARIES)
    def test_boundaries(self, n, hex):
        data = bytes.fromhex(hex)
        assert codec.compactSize(n) == data
        assert VarIntSerializer.serialize(n) == data
        reader = codec.Reader(data)
        assert reader.compactSize() == n
        assert reader.left == 0

    @pytest.mark.parametrize(
        "hex",
        [
            "fdfc00",  # 0xfc in 3 bytes
            "fd0000",
            "fe0000000000",
            "feffff0000",  # 0xffff in 5 bytes
            "ffffffffff00000000",  # 0xffffffff in 9 bytes
            "ff0000000000000000",
        ],
    )
    def test_nonCanonicalIsRefused(self, hex):
        with pytest.raises(MalformedPayload, match="non-canonical"):
            codec.Reader(bytes.fromhex(hex)).compactSize()

    @pytest.mark.parametrize("hex", ["", "fd", "fdff", "fe000001", "ff00000000000001"])
    def test_shortIsMalformed(self, hex):
        with pytest.raises(MalformedPayload):
            codec.Reader(bytes.fromhex(hex)).compactSize()

    def test_overTheLimitIsMalformed(self):
        with pytest.raises(MalformedPayload):
            codec.Reader(codec.compactSize(11)).compactSize(10)

    @bounded
    @given(u64)
    def test_roundTripAndBitcoinlib(self, n):
        data = codec.compactSize(n)
        assert data == VarIntSerializer.serialize(n)
        assert codec.Reader(data).compactSize() == n


# -- version ------------------------------------------------------------------------

# developer.bitcoin.org, P2P Network, "version": the example message (mainnet).
REFERENCE_VERSION = bytes.fromhex(
    "f9beb4d9"
    "76657273696f6e0000000000"
    "65000000"
    "5f1a69d2"
    "72110100"
    "0100000000000000"
    "bc8f5e5400000000"
    "0100000000000000" "00000000000000000000ffffc61b6409" "208d"
    "0100000000000000" "00000000000000000000ffffcb0071c0" "208d"
    "128035cbc97953f8"
    "0f" "2f5361746f7368693a302e392e332f"
    "cf050500"
    "01"
)


class TestVersion:
    def test_developerReferenceExample(self):
        command, length, digest = codec.parseHeader(REFERENCE_VERSION, MAINNET)
        assert (command, length) == ("version", 101)
        payload = REFERENCE_VERSION[24:]
        assert len(payload) == length and codec.checksum(payload) == digest
        v = codec.parseVersion(payload)
        assert v == codec.Version(
            version=70002,
            services=1,
            timestamp=1415483324,
            addr_recv=Address.of("198.27.100.9", 8333),
            addr_from=Address.of("203.0.113.192", 8333),
            from_port=8333,
            nonce=0xF85379C9CB358012,
            user_agent="/Satoshi:0.9.3/",
            start_height=329167,
            relay=True,
        )

    def test_developerReferenceExampleEncoded(self):
        """
        Our encoding of the example's fields is the example, but for the
        sender's IP, which we (as Core) leave all zeros.
        """
        ours = codec.encodeVersion(
            version=70002,
            services=1,
            timestamp=1415483324,
            addr_recv=Address.of("198.27.100.9", 8333),
            recv_services=1,
            from_port=8333,
            nonce=0xF85379C9CB358012,
            user_agent="/Satoshi:0.9.3/",
            start_height=329167,
            relay=True,
        )
        reference = REFERENCE_VERSION[24:]
        fromIp = slice(4 + 8 + 8 + 26 + 8, 4 + 8 + 8 + 26 + 8 + 16)
        assert ours[fromIp] == bytes(16)
        assert ours[: fromIp.start] == reference[: fromIp.start]
        assert ours[fromIp.stop :] == reference[fromIp.stop :]

    def test_equalsBitcoinlib(self):
        ours = codec.frame(
            MAINNET,
            "version",
            codec.encodeVersion(
                nonce=0x1122334455667788,
                timestamp=1_700_000_000,
                addr_recv=Address.of("203.0.113.7", 8333),
                recv_services=9,
                services=1033,
                from_port=8333,
                user_agent="/bitp2p:0.1.0/",
                start_height=840_000,
                relay=False,
            ),
        )
        theirs = msg_version(70016)
        theirs.nServices = 1033
        theirs.nTime = 1_700_000_000
        theirs.addrTo = theirAddress(Address.of("203.0.113.7", 8333), 9)
        theirs.addrFrom = theirAddress(None, 1033)
        theirs.addrFrom.port = 8333
        theirs.nNonce = 0x1122334455667788
        theirs.strSubVer = b"/bitp2p:0.1.0/"
        theirs.nStartingHeight = 840_000
        theirs.fRelay = False
        assert ours == theirs.to_bytes()

    @bounded
    @given(
        version=st.integers(70001, 2**31 - 1),  # bitcoinlib reads relay from 70001 on
        services=u64,
        timestamp=i64,
        addr_recv=st.none() | addresses,
        recv_services=u64,
        from_port=ports,
        nonce=u64,
        user_agent=userAgents,
        start_height=i32,
        relay=st.booleans(),
    )
    def test_crossCheckedWithBitcoinlib(self, **fields):
        """
        For any fields: our bytes are bitcoinlib's, we read back what they
        write, they read back what we write.
        """
        ourPayload = codec.encodeVersion(**fields)
        ours = codec.frame(MAINNET, "version", ourPayload)
        theirs = msg_version(fields["version"])
        theirs.nServices = fields["services"]
        theirs.nTime = fields["timestamp"]
        theirs.addrTo = theirAddress(fields["addr_recv"], fields["recv_services"])
        theirs.addrFrom = theirAddress(None, fields["services"])
        theirs.addrFrom.port = fields["from_port"]
        theirs.nNonce = fields["nonce"]
        theirs.strSubVer = fields["user_agent"].encode("utf-8")
        theirs.nStartingHeight = fields["start_height"]
        theirs.fRelay = fields["relay"]
        theirBytes = theirs.to_bytes()
        assert ours == theirBytes

        parsed = codec.parseVersion(theirBytes[24:])
        assert parsed == codec.Version(
            fields["version"],
            fields["services"],
            fields["timestamp"],
            fields["addr_recv"],
            None,
            fields["from_port"],
            fields["nonce"],
            fields["user_agent"],
            fields["start_height"],
            fields["relay"],
        )

        back = MsgSerializable.from_bytes(ours)
        assert isinstance(back, msg_version)
        assert (back.nVersion, back.nServices, back.nTime) == (
            fields["version"],
            fields["services"],
            fields["timestamp"],
        )
        assert sameIp(back.addrTo.ip, fields["addr_recv"])
        assert back.addrTo.nServices == fields["recv_services"]
        assert sameIp(back.addrFrom.ip, None) and back.addrFrom.port == fields["from_port"]
        assert back.nNonce == fields["nonce"]
        assert back.strSubVer == fields["user_agent"].encode("utf-8")
        assert back.nStartingHeight == fields["start_height"]
        assert bool(back.fRelay) == fields["relay"]

    def test_olderPeersStopEarly(self):
        """
        As Core reads it: after the receiver's address everything is
        optional (nonce 0, empty user agent, height 0, relay true).
        """
        full = codec.encodeVersion(
            nonce=5, timestamp=1, user_agent="/x/", start_height=9, relay=False, version=70015
        )
        first = 4 + 8 + 8 + 26
        short = codec.parseVersion(full[:first])
        assert (short.nonce, short.user_agent, short.start_height, short.relay) == (0, "", 0, True)
        upToNonce = codec.parseVersion(full[: first + 26 + 8])
        assert (upToNonce.nonce, upToNonce.user_agent, upToNonce.relay) == (5, "", True)
        noRelay = codec.parseVersion(full[:-1])
        assert (noRelay.user_agent, noRelay.start_height, noRelay.relay) == ("/x/", 9, True)
        assert codec.parseVersion(full).relay is False

    @pytest.mark.parametrize("cut", [0, 3, 4 + 8 + 8 + 25, 4 + 8 + 8 + 26 + 10, 4 + 8 + 8 + 26 + 26 + 7])
    def test_shortPayloadIsMalformed(self, cut):
        full = codec.encodeVersion(nonce=5, timestamp=1, user_agent="/x/")
        with pytest.raises(MalformedPayload):
            codec.parseVersion(full[:cut])

    def test_userAgentOf256BytesIsAccepted(self):
        payload = codec.encodeVersion(nonce=1, timestamp=1, user_agent="u" * 256)
        assert codec.parseVersion(payload).user_agent == "u" * 256

    def test_userAgentOver256BytesIsMalformed(self):
        payload = codec.encodeVersion(nonce=1, timestamp=1, user_agent="u" * 257)
        with pytest.raises(MalformedPayload, match="257 is more than 256"):
            codec.parseVersion(payload)

    def test_userAgentThatIsNotUtf8IsShownReplaced(self):
        payload = codec.encodeVersion(nonce=1, timestamp=1, user_agent="")
        head = payload[: 4 + 8 + 8 + 26 + 26 + 8]
        payload = head + b"\x03/\xff/" + payload[len(head) + 1 :]
        assert codec.parseVersion(payload).user_agent == "/\ufffd/"


# -- addr ---------------------------------------------------------------------------

# developer.bitcoin.org, P2P Network, "addr": the example payload.
REFERENCE_ADDR = bytes.fromhex(
    "01" "d91f4854" "0100000000000000" "00000000000000000000ffffc0000233" "208d"
)


class TestAddr:
    def test_developerReferenceExample(self):
        entries, skipped = codec.parseAddr(REFERENCE_ADDR)
        assert skipped == 0
        assert entries == [AddrEntry(Address.of("192.0.2.51", 8333), 1414012889, 1)]
        assert codec.encodeAddr(entries) == REFERENCE_ADDR

    def test_severalEntriesEqualBitcoinlib(self):
        entries = [
            AddrEntry(Address.of("192.0.2.51", 8333), 1414012889, 1),
            AddrEntry(Address.of("2001:db8::1", 18444), 1700000000, 1033),
            AddrEntry(Address.of("203.0.113.9", 1), 0, 0),
            AddrEntry(Address.of("2a01:4f8:1:2::3", 65535), 2**32 - 1, 2**64 - 1),
        ]
        ours = codec.frame(MAINNET, "addr", codec.encodeAddr(entries))
        theirs = msg_addr()
        theirs.addrs = [theirAddress(a, services, time) for a, time, services in entries]
        assert ours == theirs.to_bytes()
        back = MsgSerializable.from_bytes(ours)
        assert [(sameIp(t.ip, e.address), t.port, t.nTime, t.nServices) for t, e in zip(back.addrs, entries)] == [
            (True, e.address.port, e.time, e.services) for e in entries
        ]
        assert codec.parseAddr(theirs.to_bytes()[24:]) == (entries, 0)

    @bounded
    @given(st.lists(st.tuples(addresses, u32, u64), max_size=30))
    def test_crossCheckedWithBitcoinlib(self, raw):
        entries = [AddrEntry(a, time, services) for a, time, services in raw]
        ours = codec.frame(MAINNET, "addr", codec.encodeAddr(entries))
        theirs = msg_addr()
        theirs.addrs = [theirAddress(a, services, time) for a, time, services in entries]
        assert ours == theirs.to_bytes()
        assert codec.parseAddr(theirs.to_bytes()[24:]) == (entries, 0)
        back = MsgSerializable.from_bytes(ours)
        assert len(back.addrs) == len(entries)
        for t, e in zip(back.addrs, entries):
            assert sameIp(t.ip, e.address) and (t.port, t.nTime, t.nServices) == (
                e.address.port,
                e.time,
                e.services,
            )

    def test_allZeroAddressIsSkipped(self):
        payload = codec.compactSize(2) + REFERENCE_ADDR[1:] + struct.pack("<IQ", 1, 1) + bytes(16) + b"\x20\x8d"
        entries, skipped = codec.parseAddr(payload)
        assert (len(entries), skipped) == (1, 1)

    def test_thousandEntriesAreAccepted(self):
        entries = [AddrEntry(Address.of(f"10.0.{i // 250}.{i % 250 + 1}", 8333), 1, 1) for i in range(1000)]
        assert len(codec.parseAddr(codec.encodeAddr(entries))[0]) == 1000

    def test_moreThanAThousandEntriesAreMalformed(self):
        entry = REFERENCE_ADDR[1:]
        with pytest.raises(MalformedPayload, match="1001 entries"):
            codec.parseAddr(codec.compactSize(1001) + entry * 1001)

    def test_encodeWritesAtMostAThousand(self):
        entries = [AddrEntry(Address.of(f"10.1.{i // 250}.{i % 250 + 1}", 8333), 1, 1) for i in range(1200)]
        assert len(codec.parseAddr(codec.encodeAddr(entries))[0]) == 1000

    @pytest.mark.parametrize("cut", [0, 1, 30, 31 - 1, 61 - 5])
    def test_shortPayloadIsMalformed(self, cut):
        payload = codec.compactSize(2) + REFERENCE_ADDR[1:] * 2
        with pytest.raises(MalformedPayload):
            codec.parseAddr(payload[:cut])


class TestAddrV2:
    """
    BIP 155 (IPv4 and IPv6 only here).
    """

    def entry(self, network: int, raw: bytes, port: int = 8333, services: int = 1, time: int = 7) -> bytes:
        return (
            struct.pack("<I", time)
            + codec.compactSize(services)
            + bytes((network,))
            + codec.compactSize(len(raw))
            + raw
            + struct.pack(">H", port)
        )

    def test_layout(self):
        entries = [
            AddrEntry(Address.of("192.0.2.51", 8333), 7, 1),
            AddrEntry(Address.of("2001:db8::1", 18444), 8, 1 << 63),
        ]
        expected = (
            b"\x02"
            + self.entry(1, bytes([192, 0, 2, 51]))
            + self.entry(2, ipaddress.ip_address("2001:db8::1").packed, 18444, 1 << 63, 8)
        )
        assert codec.encodeAddrV2(entries) == expected
        assert codec.parseAddrV2(expected) == (entries, 0)

    @bounded
    @given(st.lists(st.tuples(addresses, u32, u64), max_size=30))
    def test_roundTrip(self, raw):
        entries = [AddrEntry(a, time, services) for a, time, services in raw]
        assert codec.parseAddrV2(codec.encodeAddrV2(entries)) == (entries, 0)

    def test_unknownNetworkIsSkipped(self):
        payload = b"\x02" + self.entry(0x42, b"x" * 512) + self.entry(1, b"\x01\x02\x03\x04")
        entries, skipped = codec.parseAddrV2(payload)
        assert skipped == 1 and entries == [AddrEntry(Address.of("1.2.3.4", 8333), 7, 1)]

    def test_addressLongerThan512IsMalformed(self):
        with pytest.raises(MalformedPayload, match="513 is more than 512"):
            codec.parseAddrV2(b"\x01" + self.entry(0x42, b"x" * 513))

    def test_wrongLengthForItsNetworkIsMalformed(self):
        with pytest.raises(MalformedPayload):
            codec.parseAddrV2(b"\x01" + self.entry(1, b"\x01\x02\x03"))
        with pytest.raises(MalformedPayload):
            codec.parseAddrV2(b"\x01" + self.entry(2, b"\x01" * 4))

    def test_moreThanAThousandEntriesAreMalformed(self):
        entry = self.entry(1, b"\x01\x02\x03\x04")
        assert len(codec.parseAddrV2(codec.compactSize(1000) + entry * 1000)[0]) == 1000
        with pytest.raises(MalformedPayload, match="1001 entries"):
            codec.parseAddrV2(codec.compactSize(1001) + entry * 1001)

    def test_shortPayloadIsMalformed(self):
        payload = b"\x01" + self.entry(2, b"\x20\x01" + bytes(14))
        for cut in range(len(payload)):
            with pytest.raises(MalformedPayload):
                codec.parseAddrV2(payload[:cut])


# -- the small messages -----------------------------------------------------------


class TestSmallMessages:
    @bounded
    @given(u64)
    def test_pingPongEqualBitcoinlib(self, nonce):
        assert codec.frame(MAINNET, "ping", codec.encodeNonce(nonce)) == msg_ping(nonce=nonce).to_bytes()
        assert codec.frame(MAINNET, "pong", codec.encodeNonce(nonce)) == msg_pong(nonce=nonce).to_bytes()
        assert codec.parseNonce(msg_ping(nonce=nonce).to_bytes()[24:], "ping") == nonce
        assert MsgSerializable.from_bytes(codec.frame(MAINNET, "pong", codec.encodeNonce(nonce))).nonce == nonce

    def test_emptyPingIsPreBip31(self):
        assert codec.parseNonce(b"", "ping") is None

    @pytest.mark.parametrize("command,payload", [("pong", b""), ("ping", b"\x01\x02\x03"), ("pong", bytes(7))])
    def test_shortNonceIsMalformed(self, command, payload):
        with pytest.raises(MalformedPayload):
            codec.parseNonce(payload, command)

    def test_feeFilter(self):
        assert codec.parseFeeFilter(struct.pack("<q", 1000)) == 1000
        with pytest.raises(MalformedPayload):
            codec.parseFeeFilter(bytes(7))

    def test_sendCmpct(self):
        assert codec.parseSendCmpct(b"\x01" + struct.pack("<Q", 2)) == (True, 2)
        assert codec.parseSendCmpct(b"\x00" + struct.pack("<Q", 1)) == (False, 1)
        with pytest.raises(MalformedPayload):
            codec.parseSendCmpct(b"\x00")

    def test_serviceNames(self):
        assert codec.serviceNames(1 | 8 | 1024) == ["NETWORK", "WITNESS", "NETWORK_LIMITED"]
        assert codec.serviceNames(1 << 5) == ["UNKNOWN[2^5]"]
        assert codec.serviceNames(0) == []


def test_sanitizeKeepsWhatCoreShows():
    """
    C{sanitize} keeps Core's C{SAFE_CHARS_DEFAULT} and drops the rest
    (escape sequences, newlines, non-ASCII), as C{cleanSubVer}.
    """
    assert codec.sanitize("/Satoshi:27.0.0(x; y)/") == "/Satoshi:27.0.0(x; y)/"
    assert codec.sanitize("/evil\x1b[2J\nname:1.0/\u00e9") == "/evil2Jname:1.0/"
