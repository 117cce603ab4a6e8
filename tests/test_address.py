"""
Parsing peer addresses from what peers send: what is refused before any
cache remembers it (issue 16, item 1: a peer sending hosts of a megabyte,
each different, grew the parse cache by ~1 MB an entry, 15 GB in all), the
forms that are not addresses (a zone on IPv4, brackets around IPv4), and
the addresses that are not routable (issue 16, item 9).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bitp2p import address as addressModule
from bitp2p import banman as banmanModule
from bitp2p import codec
from bitp2p.address import Address, AddressError, is_routable, parse_address
from bitp2p.constants import MAX_IP_CHARS


class ParseCacheTests(SynchronousTestCase):
    def test_longHostsAreRefusedBeforeTheCacheRemembersThem(self):
        """
        A host longer than the longest IP literal (with or without a zone) is
        refused without being parsed, so the parse cache's keys stay short
        whatever peers send.
        """
        addressModule._normalIp.cache_clear()
        addressModule._addressOf.cache_clear()
        for n in range(50):
            for host in (f"198.51.100.1%{n}" + "A" * 100_000, "1" * 100_000 + str(n)):
                with self.assertRaises(AddressError):
                    Address.of(host, 80)
        self.assertEqual(addressModule._normalIp.cache_info().currsize, 0)
        Address.of("198.51.100.1", 80)
        keys = addressModule._normalIp.cache_info().currsize
        self.assertEqual(keys, 1)

    def test_theErrorMessageOfAHugeHostIsShort(self):
        """
        What is refused is shown cut short: the message (which may be
        logged) of a megabyte host is not a megabyte.
        """
        with self.assertRaises(AddressError) as caught:
            parse_address("1" * 1_000_000 + ":80")
        self.assertLess(len(str(caught.exception)), 200)

    def test_anAddrEntryWithAHugeHostIsDroppedAndNotRemembered(self):
        """
        Through the codec, as a peer sends it: the entry is dropped (a
        malformed entry is not a violation), the others are kept, and the
        cache does not hold the huge host.
        """
        addressModule._normalIp.cache_clear()
        huge = "198.51.100.1%7" + "A" * 1_000_000 + ":80"
        message = codec.decode(
            b'{"type":"addr","peers":["%s","198.51.100.2:80"]}' % huge.encode()
        )
        self.assertEqual([a for a, _ in message["peers"]], [Address.of("198.51.100.2", 80)])
        self.assertLessEqual(addressModule._normalIp.cache_info().currsize, 1)

    def test_theBanCacheKeepsOnlyWhatCanBeAnIP(self):
        """
        The ban manager's host cache, likewise, never remembers a string
        longer than an IP literal.
        """
        banmanModule._ipKey.cache_clear()
        self.assertIsNone(banmanModule._hostKey("1" * (MAX_IP_CHARS + 1)))
        self.assertEqual(banmanModule._ipKey.cache_info().currsize, 0)
        self.assertIsNotNone(banmanModule._hostKey("198.51.100.1"))


class AddressCacheTests(SynchronousTestCase):
    """
    Addresses built and parsed are remembered, one shared object each: only
    valid ones, and only from texts short enough to be addresses.
    """

    def setUp(self):
        addressModule._parsed.cache_clear()
        addressModule._addressOf.cache_clear()

    def test_theSameAddressIsShared(self):
        built = Address.of("198.51.100.7", 80)
        self.assertIs(Address.of("198.51.100.7", 80), built)
        self.assertIs(parse_address("198.51.100.7:80"), parse_address("198.51.100.7:80"))
        self.assertIs(parse_address("[::ffff:198.51.100.7]:80"), parse_address("[::ffff:198.51.100.7]:80"))
        plain = Address("198.51.100.7", 80)
        self.assertEqual(parse_address("198.51.100.7:80"), plain)
        self.assertEqual(hash(built), hash(plain))
        self.assertEqual(parse_address("[::ffff:198.51.100.7]:80"), plain)

    def test_anAddressSeenOnceIsNotRemembered(self):
        """
        C{remember=False} (a connection's remote end, its port ephemeral)
        builds the same address without keeping it.
        """
        once = Address.of("::FFFF:198.51.100.7", 50123, remember=False)
        self.assertEqual(once, Address("198.51.100.7", 50123))
        self.assertEqual(addressModule._addressOf.cache_info().currsize, 0)
        self.assertIsNot(once, Address.of("198.51.100.7", 50123))
        self.assertEqual(addressModule._addressOf.cache_info().currsize, 1)
        with self.assertRaises(AddressError):
            Address.of("not an ip", 1, remember=False)

    def test_anInboundHandshakeLeavesNoAddressOfItsPortBehind(self):
        from twisted.internet.testing import MemoryReactorClock

        from .helpers import Inbound, makeNode

        node = makeNode(7104, MemoryReactorClock())
        node.startService()
        self.addCleanup(node.stopService)
        Inbound(node, "127.0.0.1", port=40000)  # (what is shared is in now)
        before = addressModule._addressOf.cache_info().currsize
        for n in range(1, 6):
            inbound = Inbound(node, "127.0.0.1", port=40000 + n)
            self.assertTrue(inbound.wire.peer.established)
        self.assertEqual(addressModule._addressOf.cache_info().currsize, before)

    def test_errorsAreNotRemembered(self):
        for text in ("198.51.100.300:80", "198.51.100.1:99999", "[198.51.100.1]:80", "x" * 70):
            with self.assertRaises(AddressError):
                parse_address(text)
        with self.assertRaises(AddressError):
            Address.of("198.51.100.1", True)
        with self.assertRaises(AddressError):
            Address.of("not an ip", 80)
        self.assertEqual(addressModule._parsed.cache_info().currsize, 0)
        self.assertEqual(addressModule._addressOf.cache_info().currsize, 0)

    def test_longTextsAndOtherTypesAreParsedWithoutTheCache(self):
        class Text(str):
            pass

        self.assertEqual(parse_address(Text("198.51.100.8:80")), Address("198.51.100.8", 80))
        with self.assertRaises(AddressError):
            parse_address("198.51.100.8:" + "0" * 100 + "80")
        self.assertEqual(addressModule._parsed.cache_info().currsize, 0)
        with self.assertRaises(AddressError):
            parse_address(b"198.51.100.8:80")


class FormTests(SynchronousTestCase):
    def test_aZoneOnIPv4IsNotAnAddress(self):
        for text in ("198.51.100.1%1:80", "198.51.100.1%eth0:80", "198.51.100.1%:80"):
            with self.assertRaises(AddressError, msg=text):
                parse_address(text)

    def test_aZoneOnIPv6IsDropped(self):
        self.assertEqual(parse_address("[fe80::1%eth0]:80"), Address.of("fe80::1", 80))

    def test_aZoneLongerThanAnInterfaceNameIsRefused(self):
        with self.assertRaises(AddressError):
            parse_address("[fe80::1%" + "e" * 16 + "]:80")

    def test_bracketsAroundIPv4AreNotAnAddress(self):
        with self.assertRaises(AddressError):
            parse_address("[198.51.100.21]:80")
        self.assertEqual(parse_address("[2001:db8::1]:80").host, "2001:db8::1")


class RoutabilityTests(SynchronousTestCase):
    def test_thisNetworkAndLinkLocalAreNotRoutable(self):
        """
        0.0.0.0/8, 169.254.0.0/16 and fe80::/10 (whose zone is dropped) are
        no peer's address; loopback, private and public ones are.
        """
        for text in ("0.1.2.3:80", "0.0.0.1:80", "169.254.1.1:80", "[fe80::1%eth0]:80", "[fe80::1]:80"):
            self.assertFalse(is_routable(parse_address(text)), text)
        for text in ("127.0.0.1:80", "10.1.2.3:80", "192.168.1.1:80", "1.2.3.4:80", "[2001:db8::1]:80"):
            self.assertTrue(is_routable(parse_address(text)), text)

    def test_parseDialable(self):
        """
        parse_dialable is parse_address for an addr entry: L{None} for an
        address that is not routable or not reachable (remembered, as the
        parsed address is), an error for what is not an address (not
        remembered).
        """
        parse_dialable = addressModule.parse_dialable
        addressModule._dialable.cache_clear()
        self.assertEqual(parse_dialable("198.51.100.3:80"), Address.of("198.51.100.3", 80))
        self.assertIs(parse_dialable("198.51.100.3:80"), parse_dialable("198.51.100.3:80"))
        onion = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8333"
        self.assertTrue(is_routable(parse_address(onion)))
        for text in ("0.1.2.3:80", "[fe80::1]:80", "198.51.100.3:0", onion):
            self.assertIsNone(parse_dialable(text), text)
        self.assertEqual(addressModule._dialable.cache_info().currsize, 5)
        for text in ("198.51.100.300:80", "x" * 70, "1.2.3.4"):
            with self.assertRaises(AddressError):
                parse_dialable(text)
        self.assertEqual(addressModule._dialable.cache_info().currsize, 5)

        class Text(str):
            pass

        self.assertEqual(parse_dialable(Text("198.51.100.8:80")), Address("198.51.100.8", 80))
        self.assertIsNone(parse_dialable(Text("0.1.2.3:80")))
        self.assertEqual(addressModule._dialable.cache_info().currsize, 5)

    def test_unroutableAddrEntriesAreDropped(self):
        """
        Through the codec, as a peer sends them: dropped, not a violation.
        """
        message = codec.decode(
            b'{"type":"addr","peers":["0.1.2.3:80","169.254.9.9:80","[fe80::2%eth0]:80",'
            b'"198.51.100.3:80"]}'
        )
        self.assertEqual([a for a, _ in message["peers"]], [Address.of("198.51.100.3", 80)])
