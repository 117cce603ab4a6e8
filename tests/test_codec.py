"""
The codec: every framing-independent rule of the wire contract.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from bitp2p import codec
from bitp2p.address import Address
from bitp2p.codec import ProtocolViolation, decode, encode


def line(obj) -> bytes:
    return json.dumps(obj).encode()


def version(**fields) -> dict:
    message = {"type": "version", "node_id": "abc", "port": 5000}
    message.update(fields)
    return message


class ViolationTests(SynchronousTestCase):
    def assertViolation(self, raw: bytes, fragment: str = "") -> None:
        with self.assertRaises(ProtocolViolation) as caught:
            decode(raw)
        text = str(caught.exception)
        self.assertNotIn("\n", text)
        self.assertIn(fragment, text)

    def test_invalidUTF8(self):
        self.assertViolation(b'{"type":"x","v":"\xff"}', "UTF-8")

    def test_invalidJSON(self):
        for raw in (b"{", b"not json", b'{"type": "x",}', b"{'type': 'x'}"):
            self.assertViolation(raw, "JSON")

    def test_nonFiniteNumbersAreNotJSON(self):
        for constant in (b"NaN", b"Infinity", b"-Infinity"):
            self.assertViolation(b'{"type":"x","v":' + constant + b"}", "JSON")

    def test_topLevelMustBeAnObject(self):
        for raw in (b"[]", b"1", b'"version"', b"null", b"true"):
            self.assertViolation(raw, "object")

    def test_typeIsRequiredAndAString(self):
        self.assertViolation(b"{}", "type")
        self.assertViolation(b'{"type": 1}', "type")
        self.assertViolation(b'{"type": null}', "type")

    def test_versionNodeId(self):
        for bad in ("", "x" * 65, "has space", "ü", 5, None):
            self.assertViolation(line(version(node_id=bad)), "node_id")
        message = version()
        del message["node_id"]
        self.assertViolation(line(message), "node_id")

    def test_versionPort(self):
        for bad in (-1, 65536, 5000.0, True, "5000", None):
            self.assertViolation(line(version(port=bad)), "port")
        message = version()
        del message["port"]
        self.assertViolation(line(message), "port")

    def test_versionOptionalFields(self):
        self.assertViolation(line(version(protocol=0)), "protocol")
        self.assertViolation(line(version(protocol="1")), "protocol")
        self.assertViolation(line(version(user_agent="u" * 257)), "user_agent")
        self.assertViolation(line(version(user_agent=7)), "user_agent")
        self.assertViolation(line(version(timestamp=-1)), "timestamp")
        self.assertViolation(line(version(timestamp=True)), "timestamp")
        self.assertViolation(line(version()).replace(b"}", b',"timestamp":1e400}'), "timestamp")
        self.assertViolation(line(version(addr_recv=5)), "addr_recv")

    def test_verackFields(self):
        self.assertViolation(line({"type": "verack", "node_id": "bad id"}), "node_id")
        self.assertViolation(line({"type": "verack", "port": 70000}), "port")

    def test_nonce(self):
        for kind in ("ping", "pong"):
            for bad in (-1, 2**64, True, 1.5, "1", None):
                self.assertViolation(line({"type": kind, "nonce": bad}), "nonce")
            self.assertViolation(line({"type": kind}), "nonce")

    def test_addrPeers(self):
        self.assertViolation(line({"type": "addr"}), "peers")
        self.assertViolation(line({"type": "addr", "peers": "1.2.3.4:5"}), "peers")
        self.assertViolation(
            line({"type": "addr", "peers": ["1.2.3.4:5"] * 1001}), "addr with 1001 entries"
        )


class DecodeTests(SynchronousTestCase):
    def test_versionDefaults(self):
        message = decode(line(version()))
        self.assertEqual(
            message,
            {
                "type": "version",
                "node_id": "abc",
                "port": 5000,
                "protocol": 1,
                "user_agent": "",
                "timestamp": None,
                "addr_recv": None,
            },
        )

    def test_versionFullAndExtraFieldsIgnored(self):
        message = decode(
            line(
                version(
                    protocol=2,
                    user_agent="/other:9/",
                    timestamp=1795000000.7,
                    addr_recv="[::1]:53422",
                    services=["future"],
                )
            )
        )
        self.assertEqual(message["protocol"], 2)
        self.assertEqual(message["timestamp"], 1795000000)
        self.assertEqual(message["addr_recv"], Address.of("::1", 53422))
        self.assertEqual(message["services"], ["future"])

    def test_unparsableAddrRecvIsIgnored(self):
        self.assertIsNone(decode(line(version(addr_recv="somewhere")))["addr_recv"])

    def test_maximumNodeIdAndUserAgent(self):
        message = decode(line(version(node_id="A_-z9" * 12 + "abcd", user_agent="u" * 256)))
        self.assertEqual(len(message["node_id"]), 64)

    def test_hugeIntegersStayExact(self):
        big = 2**100 + 1
        self.assertEqual(decode(line({"type": "x", "n": big}))["n"], big)
        with self.assertRaises(ProtocolViolation):
            decode(line({"type": "ping", "nonce": 2**64}))

    def test_acceptedLanguageIsTheStandardLibrarys(self):
        for raw in (
            b'\xef\xbb\xbf{"type":"x"}',
            b'{"type":"x"} x',
            b'\x0b{"type":"x"}',
            b'{"type":"x"}\x00',
            b"[" * 100_000 + b"]" * 100_000,
        ):
            self.assertRaises(ProtocolViolation, decode, raw)
        # orjson refuses a number beyond a double's range; the standard
        # library reads it as infinity (sent on, it is null, as orjson has it).
        self.assertEqual(decode(b' {"type":"x","a":1e400}\t')["a"], float("inf"))

    def test_unknownTypePassesThroughUntouched(self):
        raw = {"type": "chat", "text": "hi", "nested": {"a": [1, 2.5, None]}}
        self.assertEqual(decode(line(raw)), raw)

    def test_nonceBounds(self):
        self.assertEqual(decode(line({"type": "ping", "nonce": 0}))["nonce"], 0)
        self.assertEqual(decode(line({"type": "pong", "nonce": 2**64 - 1}))["nonce"], 2**64 - 1)

    def test_thousandAddrEntriesAreAccepted(self):
        peers = [f"10.0.{i // 250}.{i % 250 + 1}:5000" for i in range(1000)]
        message = decode(line({"type": "addr", "peers": peers}))
        self.assertEqual(len(message["peers"]), 1000)
        self.assertEqual(message["dropped"], 0)

    def test_badAddrEntriesAreDroppedAndCounted(self):
        peers = [
            "garbage",
            "0.0.0.0:1",
            "224.0.0.1:1",
            "10.0.0.1:0",
            "10.0.0.1:65536",
            {"time": 5},
            {"addr": "10.0.0.2:1", "time": -1},
            {"addr": "10.0.0.3:1", "time": True},
            7,
            None,
            "[::]:5000",
            "10.0.0.9:5000",
        ]
        message = decode(line({"type": "addr", "peers": peers}))
        self.assertEqual(message["peers"], [(Address.of("10.0.0.9", 5000), None)])
        self.assertEqual(message["dropped"], 11)

    def test_addrEntryForms(self):
        message = decode(
            line(
                {
                    "type": "addr",
                    "peers": [
                        "198.51.100.7:5000",
                        "[2001:db8::1]:5001",
                        {"addr": "198.51.100.8:5002", "time": 1795000000, "extra": 1},
                        {"addr": "198.51.100.9:5003"},
                    ],
                }
            )
        )
        self.assertEqual(
            message["peers"],
            [
                (Address.of("198.51.100.7", 5000), None),
                (Address.of("2001:db8::1", 5001), None),
                (Address.of("198.51.100.8", 5002), 1795000000),
                (Address.of("198.51.100.9", 5003), None),
            ],
        )

    def test_addrEntriesAreIPOnly(self):
        """
        PROTOCOL.md's addresses are IP literals: the Tor, I2P and CJDNS
        forms bitp2p knows on a Bitcoin network are dropped as malformed
        entries on its own (the rest of the message is kept).
        """
        onion = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8333"
        i2p = "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p:0"
        message = decode(
            line({"type": "addr", "peers": [onion, i2p, "[cjdns:fc00:1:2:3:4:5:6:7]:8333", "198.51.100.7:5000"]})
        )
        self.assertEqual(message["peers"], [(Address.of("198.51.100.7", 5000), None)])
        version = decode(line({"type": "version", "node_id": "n", "port": 1, "addr_recv": onion}))
        self.assertIsNone(version["addr_recv"])


class EncodeTests(SynchronousTestCase):
    def test_compactUTF8WithoutNewline(self):
        data = encode({"type": "chat", "text": "héllo"})
        self.assertEqual(data, '{"type":"chat","text":"héllo"}'.encode())
        self.assertNotIn(b"\n", encode({"type": "chat", "text": "a\nb"}))

    def test_roundTrips(self):
        for message in (
            version(protocol=1, user_agent="/x/", timestamp=5, addr_recv="127.0.0.1:9"),
            {"type": "verack", "node_id": "n", "port": 1},
            {"type": "getaddr"},
            {"type": "addr", "peers": ["10.0.0.1:1", {"addr": "[2001:db8::1]:2", "time": 3}]},
            {"type": "ping", "nonce": 2**64 - 1},
            {"type": "pong", "nonce": 0},
            {"type": "custom", "x": [1, {"y": None}]},
        ):
            decoded = decode(line(message))
            self.assertEqual(decode(encode(decoded)), decoded, message)

    def test_buildersDecodeBack(self):
        self.assertEqual(
            decode(encode(codec.version("me", 7, user_agent="/u/", timestamp=9,
                                        addr_recv=Address.of("::1", 4)))),
            {
                "type": "version",
                "node_id": "me",
                "port": 7,
                "protocol": 1,
                "user_agent": "/u/",
                "timestamp": 9,
                "addr_recv": Address.of("::1", 4),
            },
        )
        self.assertEqual(encode(codec.verack()), b'{"type":"verack"}')
        self.assertEqual(encode(codec.getaddr()), b'{"type":"getaddr"}')
        self.assertEqual(decode(encode(codec.ping(42)))["nonce"], 42)
        self.assertEqual(decode(encode(codec.pong(43))), {"type": "pong", "nonce": 43})
        entries = [(Address.of("10.0.0.1", 1), None), (Address.of("10.0.0.2", 2), 77)]
        self.assertEqual(
            encode(codec.addr(entries)),
            b'{"type":"addr","peers":["10.0.0.1:1",{"addr":"10.0.0.2:2","time":77}]}',
        )
        self.assertEqual(decode(encode(codec.addr(entries)))["peers"], entries)

    def test_knownTypes(self):
        self.assertEqual(
            codec.KNOWN_TYPES, {"version", "verack", "getaddr", "addr", "ping", "pong"}
        )


class DecodeManyTests(SynchronousTestCase):
    """
    L{codec.decode_many}, the receiving hot path, reaches the same verdicts
    as L{decode} line by line, on its fast path and its exact one.
    """

    LINES = [
        line({"type": "chat", "text": "hi", "n": 3, "f": 2.5}),
        b"",
        line(version()),
        line({"type": "ping", "nonce": 2**64 - 1}),
        b' {"type":"x","a":1e400}\t',
        line({"type": "addr", "peers": ["127.0.0.1:1", "0.0.0.0:1", 7]}),
    ]

    def test_sameMessagesAsDecodeOnBothPaths(self):
        expected = [decode(raw) for raw in self.LINES if raw]
        for exact in (True, False):
            messages, violation = codec.decode_many(self.LINES, exact)
            self.assertIsNone(violation)
            self.assertEqual(messages, expected)

    def test_stopsAtTheFirstBadLineWithItsViolation(self):
        bad = [
            (b"[1]", "object"),
            (b"{}", "type"),
            (b'{"type": 5}', "type"),
            (b'"version"', "object"),
            (b"{not json", "JSON"),
            (b'{"type":"x","v":"\xff"}', "UTF-8"),
            (b'{"type":"x","v":"\\ud800"}', "surrogate"),
            (line({"type": "ping", "nonce": -1}), "nonce"),
            (line(version(port=70000)), "port"),
        ]
        for raw, fragment in bad:
            for exact in (True, False):
                messages, violation = codec.decode_many(
                    [self.LINES[0], raw, self.LINES[2]], exact
                )
                self.assertEqual(messages, [decode(self.LINES[0])], raw)
                self.assertIsInstance(violation, ProtocolViolation)
                self.assertIn(fragment, str(violation))

    def test_longDigitRunsNeedTheExactPath(self):
        self.assertFalse(codec.needs_exact(b"\n".join(self.LINES[:3])))
        self.assertTrue(codec.needs_exact(line({"type": "x", "n": 2**64})))
        self.assertTrue(codec.needs_exact(line({"type": "x", "n": -(2**63) - 1})))
        self.assertFalse(codec.needs_exact(b'{"a":-123456789012345678}'))
        # 19 digits, then a break, then 19 more: no single long run.
        self.assertFalse(codec.needs_exact(b'{"a":1234567890123456789,"b":1234567890123456789}'))

    def test_twentyDigitIntegersThatFit64BitsTakeTheFastPath(self):
        # Half of all pings' nonces have 20 digits; orjson reads those up
        # to 2^64 - 1 exactly.
        for fits in (2**64 - 1, 10**19, 12345678901234567890):
            raw = line({"type": "ping", "nonce": fits})
            self.assertFalse(codec.needs_exact(raw), raw)
            self.assertEqual(codec.decode_line(raw), {"type": "ping", "nonce": fits})
        self.assertFalse(codec.needs_exact(b'{"a":"12345678901234567890"}'))  # in a string
        self.assertFalse(codec.needs_exact(b"[12345678901234567890,1]"))
        for raw in (
            line({"type": "ping", "nonce": 2**64}),
            b'{"a":99999999999999999999}',
            b'{"a":12345678901234567890.5}',
            b'{"a":1.12345678901234567890}',
            b'{"a":1e12345678901234567890}',
            b'{"a":1E+12345678901234567890}',
            b'{"a":12345678901234567890e1}',
            b'{"a":-1234567890123456789}',
            b'{"a":123456789012345678901}',
            # One run that fits, one that does not.
            b'{"a":12345678901234567890,"b":98765432109876543210}',
        ):
            self.assertTrue(codec.needs_exact(raw), raw)

    def test_exactPathKeepsHugeIntegers(self):
        for big in (2**100 + 1, 2**64, -(2**63) - 1, -(10**19) + 1):
            raw = line({"type": "x", "n": big})
            messages, violation = codec.decode_many([raw], codec.needs_exact(raw))
            self.assertEqual(messages[0]["n"], big)
            self.assertIs(type(messages[0]["n"]), int)
            self.assertEqual(decode(raw)["n"], big)


class FoundByFuzzingTests(SynchronousTestCase):
    """
    Two lines that once got past the codec (tests/test_fuzz.py found them).
    """

    def test_unicodeDigitsAreNotAPort(self):
        for line in (
            '{"type":"addr","peers":["1.2.3.4:\\u00b2"]}',
            '{"type":"version","node_id":"a","port":1,"addr_recv":"1.2.3.4:\\u00b2"}',
        ):
            try:
                message = codec.decode(line.encode())
            except codec.ProtocolViolation:
                continue
            # Dropped as a malformed entry, never read as a port.
            self.assertEqual(message.get("peers", []), [])
            self.assertIsNone(message.get("addr_recv"))
        message = codec.decode('{"type":"addr","peers":["1.2.3.4:\u0668\u0660"]}'.encode())
        self.assertEqual(message["peers"], [])  # not port 80

    def test_aNullTypeFirstInAChunkIsAViolation(self):
        for exact in (False, True):
            messages, violation = codec.decode_many([b'{"type":null}'], exact)
            self.assertEqual(messages, [])
            self.assertIsInstance(violation, codec.ProtocolViolation)


class SurrogateTests(SynchronousTestCase):
    """
    A lone C{\\uD800}-C{\\uDFFF} escape is JSON by the grammar, but makes a
    string with no UTF-8 form: a message holding one could never be
    encoded again to be sent on. It is a violation, wherever
    it is; a pair of escapes that makes one character is not.
    """

    def test_aLoneSurrogateIsAViolation(self):
        for text in (
            '{"type":"version","node_id":"a","port":1,"user_agent":"x\\udc00"}',
            '{"type":"app","deep":[{"k":"\\uDBFF"}]}',
            '{"type":"\\ud800"}',
            '{"type":"ping","nonce":1,"\\ud83d":0}',
        ):
            with self.assertRaises(ProtocolViolation) as caught:
                decode(text.encode())
            self.assertIn("surrogate", str(caught.exception))
            for exact in (False, True):
                messages, violation = codec.decode_many([text.encode()], exact)
                self.assertEqual((messages, type(violation)), ([], ProtocolViolation))

    def test_aSurrogatePairIsOneCharacter(self):
        message = decode(b'{"type":"app","s":"\\ud83d\\ude00","t":"\\\\ud800"}')
        self.assertEqual(message["s"], "\U0001f600")
        self.assertEqual(message["t"], "\\ud800")  # an escaped backslash, then text
        self.assertEqual(decode(encode(message)), message)


class DecodeLineTests(SynchronousTestCase):
    """
    L{codec.decode_line}: L{decode}'s answer for a line its fast path can
    judge, L{None} (the general path judges) for the rest.
    """

    def test_goodLinesAsDecodeReadsThem(self):
        for line in (
            b'{"type":"ping","nonce":7}',
            b'{"type":"version","node_id":"abc","port":1}',
            b'{"type":"verack"}',
            b'{"type":"chat","text":"hi","n":[1,2]}',
        ):
            if codec.JSON_LIBRARY != "orjson":
                self.assertIsNone(codec.decode_line(line))
            else:
                self.assertEqual(codec.decode_line(line), decode(line))

    def test_whatItCannotJudgeIsLeftToTheGeneralPath(self):
        for line in (
            b'{"type":"ping","nonce":-1}',  # breaks the contract
            b'{"type":"ping"}',
            b'{"type":"version","node_id":"a b","port":1}',
            b"[1,2]",  # not an object
            b'{"nonce":1}',  # no type
            b'{"type":3}',  # not a string
            b"not json",
            b" \t",
            b'{"type":"chat","n":123456789012345678901}',  # only exact integers
        ):
            self.assertIsNone(codec.decode_line(line), line)
