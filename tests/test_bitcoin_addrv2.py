"""
Addresses to and from their Bitcoin wire bytes (L{bitp2p.bitcoin.addrv2}),
against Bitcoin Core's own cases (C{src/test/net_tests.cpp}:
C{cnetaddr_serialize_v1}, C{cnetaddr_serialize_v2},
C{cnetaddr_unserialize_v2}). BIP 155 itself has no test vectors.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address, address_network, is_routable, onion_host, parse_address
from bitp2p.bitcoin.addrv2 import (
    ADDRV2_SIZES,
    CJDNS,
    I2P,
    IPV4,
    IPV6,
    MAX_ADDRV2_SIZE,
    TORV2,
    TORV3,
    fromBip155,
    fromV1,
    toBip155,
    toV1,
)

TORV3_HOST = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion"
TORV3_BYTES = bytes.fromhex("79bcc625184b05194975c28b66b66b0469f7f6556fb1ac3189a79b40dda32f1f")
I2P_HOST = "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p"
I2P_BYTES = bytes.fromhex("a2894dabaec08c0051a481a6dac88b64f98232ae42d4b6fd2fa81952dfe36a87")
CJDNS_BYTES = bytes.fromhex("fc000001000200030004000500060007")


class IdsTests(SynchronousTestCase):
    def test_idsAndSizes(self):
        self.assertEqual((IPV4, IPV6, TORV2, TORV3, I2P, CJDNS), (1, 2, 3, 4, 5, 6))
        self.assertEqual(ADDRV2_SIZES, {1: 4, 2: 16, 3: 10, 4: 32, 5: 32, 6: 16})
        self.assertEqual(MAX_ADDRV2_SIZE, 512)


class FromBip155Tests(SynchronousTestCase):
    """
    Core's C{cnetaddr_unserialize_v2}, case by case.
    """

    def test_ipv4(self):
        self.assertEqual(fromBip155(IPV4, bytes([1, 2, 3, 4]), 8333), Address.of("1.2.3.4", 8333))

    def test_ipv6(self):
        address = fromBip155(IPV6, bytes.fromhex("0102030405060708090a0b0c0d0e0f10"), 8333)
        self.assertEqual(address, Address.of("102:304:506:708:90a:b0c:d0e:f10", 8333))
        self.assertEqual(address.host, "102:304:506:708:90a:b0c:d0e:f10")
        self.assertEqual(address_network(address), "ipv6")

    def test_ipv6CarryingSomethingElseIsSkipped(self):
        """
        Embedded IPv4, Tor v2 (OnionCat) and internal addresses are not
        accepted as IPv6: Core leaves them invalid.
        """
        for raw in (
            "00000000000000000000ffff01020304",
            "fd87d87eeb430102030405060708090a",
            "fd6b88c08724ca978112ca1bbdcafac2",
        ):
            self.assertIsNone(fromBip155(IPV6, bytes.fromhex(raw), 8333), raw)

    def test_teredoAndSixToFourAreIPv6(self):
        """
        Core accepts them as IPv6 (only the prefixes above are refused).
        """
        for host in ("2001::1", "2002:102:304::1", "64:ff9b::102:304"):
            raw = Address.of(host, 1)
            self.assertEqual(fromBip155(IPV6, toBip155(raw)[1], 1), raw)

    def test_torV2IsSkippedWhateverItsLength(self):
        self.assertIsNone(fromBip155(TORV2, bytes.fromhex("f1f2f3f4f5f6f7f8f9fa"), 8333))
        self.assertIsNone(fromBip155(TORV2, b"\x01", 8333))

    def test_torV3(self):
        address = fromBip155(TORV3, TORV3_BYTES, 8333)
        self.assertEqual(address, Address(TORV3_HOST, 8333))
        self.assertEqual(address, parse_address(TORV3_HOST + ":8333"))
        self.assertTrue(is_routable(address))

    def test_i2p(self):
        address = fromBip155(I2P, I2P_BYTES, 0)
        self.assertEqual(address, Address(I2P_HOST, 0))
        self.assertTrue(is_routable(address))

    def test_cjdns(self):
        address = fromBip155(CJDNS, CJDNS_BYTES, 8333)
        self.assertEqual(address, Address("cjdns:fc00:1:2:3:4:5:6:7", 8333))
        self.assertEqual(str(address), "[cjdns:fc00:1:2:3:4:5:6:7]:8333")
        self.assertEqual(address_network(address), "cjdns")

    def test_cjdnsOutsideFc00IsSkipped(self):
        self.assertIsNone(fromBip155(CJDNS, bytes.fromhex("aa000001000200030004000500060007"), 1))

    def test_unknownNetworksAreSkipped(self):
        for network_id in (0, 7, 0xAA, 255):
            for raw in (b"", b"\x01\x02\x03\x04", bytes(MAX_ADDRV2_SIZE)):
                self.assertIsNone(fromBip155(network_id, raw, 1))

    def test_wrongLengths(self):
        """
        A known network's address of the wrong length is an error, with
        Core's message.
        """
        cases = [
            (IPV4, 5, "BIP155 IPv4 address with length 5 (should be 4)"),
            (IPV4, 3, "BIP155 IPv4 address with length 3 (should be 4)"),
            (IPV6, 4, "BIP155 IPv6 address with length 4 (should be 16)"),
            (TORV3, 0, "BIP155 TORv3 address with length 0 (should be 32)"),
            (TORV3, 33, "BIP155 TORv3 address with length 33 (should be 32)"),
            (I2P, 3, "BIP155 I2P address with length 3 (should be 32)"),
            (CJDNS, 1, "BIP155 CJDNS address with length 1 (should be 16)"),
        ]
        for network_id, size, message in cases:
            with self.assertRaises(ValueError) as caught:
                fromBip155(network_id, bytes([0xFC]) * size, 1)
            self.assertEqual(str(caught.exception), message)

    def test_tooLongWhateverTheNetwork(self):
        for network_id in (IPV4, TORV2, 0xAA):
            with self.assertRaises(ValueError) as caught:
                fromBip155(network_id, bytes(MAX_ADDRV2_SIZE + 1), 1)
            self.assertEqual(str(caught.exception), "Address too long: 513 > 512")


class ToBip155Tests(SynchronousTestCase):
    """
    Core's C{cnetaddr_serialize_v2}.
    """

    def test_vectors(self):
        self.assertEqual(toBip155(Address.of("1.2.3.4", 1)), (IPV4, bytes([1, 2, 3, 4])))
        self.assertEqual(
            toBip155(Address.of("1a1b:2a2b:3a3b:4a4b:5a5b:6a6b:7a7b:8a8b", 1)),
            (IPV6, bytes.fromhex("1a1b2a2b3a3b4a4b5a5b6a6b7a7b8a8b")),
        )
        onion = Address.of("kpgvmscirrdqpekbqjsvw5teanhatztpp2gl6eee4zkowvwfxwenqaid.onion", 1)
        self.assertEqual(
            toBip155(onion),
            (TORV3, bytes.fromhex("53cd5648488c4707914182655b7664034e09e66f7e8cbf1084e654eb56c5bd88")),
        )
        self.assertEqual(toBip155(Address.of(I2P_HOST, 0)), (I2P, I2P_BYTES))
        self.assertEqual(toBip155(Address.of("cjdns:fc00:1:2:3:4:5:6:7", 1)), (CJDNS, CJDNS_BYTES))

    def test_ipv4MappedIsIPv4(self):
        self.assertEqual(toBip155(Address.of("::ffff:1.2.3.4", 1)), (IPV4, bytes([1, 2, 3, 4])))

    def test_roundTrips(self):
        for text in (
            "1.2.3.4:8333",
            "0.0.0.0:1",
            "[2001:db8::1]:8333",
            "[::1]:18444",
            "[fc00::1]:8333",
            TORV3_HOST + ":8333",
            onion_host(bytes(32)) + ":9",
            I2P_HOST + ":0",
            "[cjdns:fc00:1:2:3:4:5:6:7]:8333",
            "[cjdns:fcff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
        ):
            address = parse_address(text)
            network_id, raw = toBip155(address)
            self.assertEqual(len(raw), ADDRV2_SIZES[network_id])
            self.assertEqual(fromBip155(network_id, raw, address.port), address, text)


class V1Tests(SynchronousTestCase):
    """
    Core's C{cnetaddr_serialize_v1} and C{SetLegacyIPv6}.
    """

    def test_toV1(self):
        self.assertEqual(toV1(Address.of("1.2.3.4", 1)).hex(), "00000000000000000000ffff01020304")
        self.assertEqual(
            toV1(Address.of("1a1b:2a2b:3a3b:4a4b:5a5b:6a6b:7a7b:8a8b", 1)).hex(),
            "1a1b2a2b3a3b4a4b5a5b6a6b7a7b8a8b",
        )

    def test_overlayAddressesHaveNoV1Form(self):
        for host in (TORV3_HOST, I2P_HOST, "cjdns:fc00:1:2:3:4:5:6:7"):
            self.assertIsNone(toV1(Address.of(host, 1)), host)

    def test_fromV1(self):
        self.assertEqual(
            fromV1(bytes.fromhex("00000000000000000000ffff01020304"), 8333),
            Address.of("1.2.3.4", 8333),
        )
        self.assertEqual(
            fromV1(bytes.fromhex("1a1b2a2b3a3b4a4b5a5b6a6b7a7b8a8b"), 8333),
            Address.of("1a1b:2a2b:3a3b:4a4b:5a5b:6a6b:7a7b:8a8b", 8333),
        )
        fc = fromV1(bytes.fromhex("fc000001000200030004000500060007"), 1)
        self.assertEqual(address_network(fc), "ipv6")

    def test_fromV1Skips(self):
        self.assertIsNone(fromV1(bytes.fromhex("fd87d87eeb430102030405060708090a"), 1))
        self.assertIsNone(fromV1(bytes.fromhex("fd6b88c08724ca978112ca1bbdcafac2"), 1))

    def test_fromV1WrongLength(self):
        for size in (0, 4, 15, 17):
            with self.assertRaises(ValueError):
                fromV1(bytes(size), 1)

    def test_roundTrips(self):
        for text in ("1.2.3.4:8333", "[2001:db8::1]:8333", "[::1]:1", "[fc00::1]:1"):
            address = parse_address(text)
            self.assertEqual(fromV1(toV1(address), address.port), address, text)
