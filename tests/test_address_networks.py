"""
Addresses of the overlay networks BIP 155 names (issue 17): Tor v3 onions,
I2P and CJDNS, held by L{bitp2p.address.Address} beside IPv4 and IPv6:
parsed and refused as Bitcoin Core does (C{CNetAddr::SetTor}, C{SetI2P}),
grouped as its C{NetGroupManager::GetGroup} does, routable but never
reachable (bitp2p has no proxy), and harmless to everything that used to
assume an IP.
"""

from __future__ import annotations

import hashlib

from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase

from bitp2p import address as addressModule
from bitp2p.address import (
    Address,
    AddressError,
    LocalNetworks,
    address_network,
    cjdns_host,
    host_bytes,
    hostAddress,
    i2p_host,
    is_local_range,
    is_reachable,
    is_routable,
    network_group,
    onion_host,
    parse_address,
    unreachable_reason,
)
from bitp2p.views import network as viewNetwork

# Bitcoin Core's src/test/net_tests.cpp (cnetaddr_unserialize_v2).
TORV3 = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion"
TORV3_PUBKEY = bytes.fromhex("79bcc625184b05194975c28b66b66b0469f7f6556fb1ac3189a79b40dda32f1f")
I2P = "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p"
I2P_HASH = bytes.fromhex("a2894dabaec08c0051a481a6dac88b64f98232ae42d4b6fd2fa81952dfe36a87")
CJDNS = "cjdns:fc00:1:2:3:4:5:6:7"


def onion(first: int) -> Address:
    """
    A valid onion address whose public key starts with byte C{first}.
    """
    return Address.of(onion_host(bytes([first]) + bytes(31)), 8333)


class ParseTests(SynchronousTestCase):
    def test_torV3(self):
        address = parse_address(TORV3 + ":8333")
        self.assertEqual(address, Address(TORV3, 8333))
        self.assertEqual(str(address), TORV3 + ":8333")
        self.assertEqual(host_bytes(address), TORV3_PUBKEY)
        self.assertEqual(onion_host(TORV3_PUBKEY), TORV3)

    def test_torV3IsNormalisedToLowerCase(self):
        self.assertEqual(Address.of(TORV3.upper(), 1), Address.of(TORV3, 1))
        self.assertEqual(Address.of(TORV3.upper(), 1).host, TORV3)

    def test_torV3ChecksumAndVersionAreChecked(self):
        """
        Tor's rend-spec-v3: base32(PUBKEY | CHECKSUM | VERSION), CHECKSUM =
        SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2], VERSION 3.
        """
        import base64

        def encode(raw: bytes) -> str:
            return base64.b32encode(raw).decode().lower() + ".onion"

        pubkey = TORV3_PUBKEY
        good = hashlib.sha3_256(b".onion checksum" + pubkey + b"\x03").digest()[:2]
        self.assertEqual(encode(pubkey + good + b"\x03"), TORV3)
        other = hashlib.sha3_256(b".onion checksum" + pubkey + b"\x04").digest()[:2]
        for raw in (
            pubkey + good[::-1] + b"\x03",  # wrong checksum
            pubkey + other + b"\x04",  # right checksum of another version
            pubkey + good + b"\x04",
        ):
            with self.assertRaises(AddressError):
                Address.of(encode(raw), 8333)

    def test_torV2IsRefused(self):
        """
        Tor v2 is gone; Core refuses its 16-character onions.
        """
        with self.assertRaises(AddressError):
            parse_address("6hzph5hv6337r6p2.onion:8333")

    def test_i2p(self):
        address = parse_address(I2P + ":0")
        self.assertEqual(address.host, I2P)
        self.assertEqual(str(address), I2P + ":0")
        self.assertEqual(host_bytes(address), I2P_HASH)
        self.assertEqual(i2p_host(I2P_HASH), I2P)
        self.assertEqual(Address.of(I2P.upper(), 0), address)

    def test_cjdns(self):
        address = parse_address(f"[{CJDNS}]:8333")
        self.assertEqual(address.host, CJDNS)
        self.assertEqual(str(address), f"[{CJDNS}]:8333")
        self.assertEqual(parse_address(str(address)), address)
        self.assertEqual(host_bytes(address), bytes.fromhex("fc000001000200030004000500060007"))
        self.assertEqual(cjdns_host(host_bytes(address)), CJDNS)
        self.assertEqual(Address.of("cjdns:FC00:0001::0", 1).host, "cjdns:fc00:1::")

    def test_plainFc00IsIPv6(self):
        address = parse_address("[fc00::1]:8333")
        self.assertEqual(address.host, "fc00::1")
        self.assertEqual(address_network(address), "ipv6")
        self.assertTrue(address.is_ipv6)

    def test_refused(self):
        """
        What is neither an IP literal nor a valid overlay address is still
        refused.
        """
        for text in (
            "example.com:80",
            "abc.onion:80",
            TORV3[:-7] + "c.onion:80",  # one character changed
            TORV3[1:] + ":80",  # 55 characters
            "a" + TORV3 + ":80",  # 57 characters
            TORV3.replace(".onion", ".onion.") + ":80",
            f"[{TORV3}]:80",
            I2P[:-9] + "r.b32.i2p:80",  # unused trailing bits set: not canonical
            I2P[1:] + ":80",
            "x" + I2P + ":80",
            "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkd1.b32.i2p:80",  # not base32
            "\u00e9" * 52 + ".b32.i2p:80",
            "[cjdns:fd00::1]:80",  # CJDNS is fc00::/8
            "[cjdns:1.2.3.4]:80",
            "[cjdns:fc00::1%eth0]:80",
            "[cjdns:fc00::1.onion]:80",
            "cjdns:fc00::1:80",  # unbracketed
            "[cjdns:]:80",
        ):
            with self.assertRaises(AddressError, msg=text):
                parse_address(text)
        for host in ("fc00::1.onion", "cjdns:" + TORV3, TORV3 + "%eth0"):
            with self.assertRaises(AddressError, msg=host):
                Address.of(host, 1)

    def test_longOverlayHostsAreRefusedBeforeTheCacheRemembersThem(self):
        addressModule._normalHost.cache_clear()
        for n in range(20):
            for host in ("a" * 100_000 + f"{n}.onion", "a" * 100_000 + f"{n}.b32.i2p", f"cjdns:{n}" + "0" * 100_000):
                with self.assertRaises(AddressError):
                    Address.of(host, 80)
        self.assertEqual(addressModule._normalHost.cache_info().currsize, 0)

    def test_bytesOfWrongLengthAreRefused(self):
        for make in (onion_host, i2p_host, cjdns_host):
            with self.assertRaises(ValueError):
                make(bytes(31))
        with self.assertRaises(ValueError):
            cjdns_host(bytes(16))  # not fc


class NetworkTests(SynchronousTestCase):
    def test_addressNetwork(self):
        self.assertEqual(address_network(Address.of("1.2.3.4", 1)), "ipv4")
        self.assertEqual(address_network(Address.of("::ffff:1.2.3.4", 1)), "ipv4")
        self.assertEqual(address_network(Address.of("2001:db8::1", 1)), "ipv6")
        self.assertEqual(address_network(Address.of(TORV3, 1)), "onion")
        self.assertEqual(address_network(Address.of(I2P, 1)), "i2p")
        self.assertEqual(address_network(Address.of(CJDNS, 1)), "cjdns")

    def test_onlyIPIsReachable(self):
        self.assertTrue(is_reachable(Address.of("1.2.3.4", 1)))
        self.assertTrue(is_reachable(Address.of("2001:db8::1", 1)))
        self.assertTrue(is_reachable(Address.of("fc00::1", 1)))
        for host in (TORV3, I2P, CJDNS):
            self.assertFalse(is_reachable(Address.of(host, 1)), host)

    def test_overlayAddressesAreRoutable(self):
        for host in (TORV3, I2P, CJDNS):
            self.assertTrue(is_routable(Address.of(host, 8333)), host)
        # I2P has no ports: Core's I2P addresses have port 0.
        self.assertTrue(is_routable(Address.of(I2P, 0)))
        self.assertFalse(is_routable(Address.of(TORV3, 0)))
        self.assertFalse(is_routable(Address.of(CJDNS, 0)))
        # Not normal (built without Address.of): not routable.
        self.assertFalse(is_routable(Address("abc.onion", 1)))

    def test_unreachableReason(self):
        self.assertEqual(
            unreachable_reason(TORV3), "cannot reach onion addresses: bitp2p has no proxy"
        )
        self.assertEqual(
            unreachable_reason("whatever.onion"),
            "cannot reach onion addresses: bitp2p has no proxy",
        )
        self.assertIn("I2P", unreachable_reason(I2P))
        self.assertIn("CJDNS", unreachable_reason(CJDNS))
        for host in ("1.2.3.4", "::1", "example.com", "fc00::1", None):
            self.assertIsNone(unreachable_reason(host))


class GroupTests(SynchronousTestCase):
    def test_coreGroups(self):
        """
        As Core: the network and the first 4 bits of the bytes (12 for
        CJDNS, whose first byte is always 0xfc).
        """
        self.assertEqual(network_group(Address.of(TORV3, 1)), "onion:7/4")  # 0x79...
        self.assertEqual(network_group(Address.of(I2P, 1)), "i2p:a/4")  # 0xa2...
        self.assertEqual(network_group(Address.of(CJDNS, 1)), "cjdns:fc00::/12")
        self.assertEqual(network_group(Address.of("cjdns:fc3f::1", 1)), "cjdns:fc30::/12")
        self.assertEqual(network_group(onion(0x70)), network_group(onion(0x7F)))
        self.assertNotEqual(network_group(onion(0x70)), network_group(onion(0x80)))
        self.assertEqual(len({network_group(onion(b << 4)) for b in range(16)}), 16)

    def test_groupsNeverCollideWithIPGroups(self):
        overlay = {network_group(Address.of(h, 1)) for h in (TORV3, I2P, CJDNS)}
        ip = {
            network_group(Address.of(h, 1))
            for h in ("1.2.3.4", "fc00::1", "fc00:1:2:3:4:5:6:7", "2001:db8::1")
        }
        self.assertFalse(overlay & ip)
        # The same bytes on two networks: two groups.
        self.assertNotEqual(
            network_group(Address.of(i2p_host(TORV3_PUBKEY), 1)),
            network_group(Address.of(TORV3, 1)),
        )

    def test_localNetworks(self):
        """
        Overlay addresses are never local: each is its group for diversity
        and for the address manager's buckets.
        """
        local = LocalNetworks()
        local.add(Address.of("127.0.0.1", 0))
        for host in (TORV3, I2P, CJDNS):
            address = Address.of(host, 8333)
            self.assertFalse(is_local_range(address))
            self.assertEqual(local.diversityKey(address), network_group(address))
            self.assertEqual(local.bucketGroup(address), network_group(address))
        self.assertEqual(local.add(Address.of(TORV3, 1)), "onion:7/4")


class IPAssumptionTests(SynchronousTestCase):
    def test_properties(self):
        for host in (TORV3, I2P, CJDNS):
            address = Address.of(host, 8333)
            self.assertIsNone(address.ip)
            self.assertFalse(address.is_ipv6)
            self.assertFalse(address.is_loopback)
            self.assertFalse(address.is_unspecified)
        self.assertTrue(Address.of("::1", 1).is_loopback)
        self.assertTrue(Address.of("0.0.0.0", 1).is_unspecified)
        self.assertEqual(str(Address.of("::1", 1).ip), "::1")

    def test_hostAddressIsIPOnly(self):
        self.assertEqual(hostAddress(IPv4Address("TCP", "1.2.3.4", 5)), Address.of("1.2.3.4", 0))
        self.assertIsNone(hostAddress(IPv4Address("TCP", TORV3, 5)))

    def test_viewsNetwork(self):
        self.assertEqual(viewNetwork(Address.of(TORV3, 1)), "onion")
        self.assertEqual(viewNetwork(Address.of(I2P, 1)), "i2p")
        self.assertEqual(viewNetwork(Address.of(CJDNS, 1)), "cjdns")
        self.assertEqual(viewNetwork(Address.of("fc00::1", 1)), "ipv6")
