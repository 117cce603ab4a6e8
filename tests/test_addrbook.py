"""
The simple address book (the baseline the address manager is compared
with): bookkeeping, selection, sharing, eviction and persistence, with
explicit times and a seeded random source.
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address
from bitp2p.addrbook import AddressBook, AddressBookError, AddressInfo
from bitp2p.constants import ADDR_HORIZON_S

NOW = 1_800_000_000.0
SOURCE = Address.of("10.99.0.1", 5000)


def a(host: str, port: int = 5000) -> Address:
    return Address.of(host, port)


def book(**kwargs) -> AddressBook:
    return AddressBook(rng=random.Random(42), **kwargs)


def add(b: AddressBook, address: Address, seen: float | None = None, now: float = NOW) -> int:
    return b.add([(address, seen)], SOURCE, now)


class BookkeepingTests(SynchronousTestCase):
    def test_addNewAddress(self):
        b = book()
        self.assertEqual(add(b, a("10.0.0.1"), NOW - 5), 1)
        self.assertIn(a("10.0.0.1"), b)
        self.assertEqual(b.get(a("10.0.0.1")).last_seen, NOW - 5)
        self.assertEqual(len(b), 1)
        b.check()

    def test_heardIsWhenTheBookHeard(self):
        b = book()
        add(b, a("10.0.0.1"), NOW - 3600)
        self.assertEqual(b.get(a("10.0.0.1")).heard, NOW)
        add(b, a("10.0.0.1"), NOW - 7200, now=NOW + 30)  # no news, but heard
        self.assertEqual(b.get(a("10.0.0.1")).heard, NOW + 30)

    def test_addKnownAddressIsNewsOnlyWhenFresher(self):
        b = book()
        add(b, a("10.0.0.1"), NOW - 100)
        self.assertEqual(add(b, a("10.0.0.1"), NOW - 200), 0)
        self.assertEqual(add(b, a("10.0.0.1"), None), 0)
        self.assertEqual(add(b, a("10.0.0.1"), NOW - 10), 1)
        self.assertEqual(b.get(a("10.0.0.1")).last_seen, NOW - 10)
        self.assertEqual(len(b), 1)
        b.check()

    def test_futureSeenIsClampedToNow(self):
        b = book()
        add(b, a("10.0.0.1"), NOW + 86400)
        self.assertEqual(b.get(a("10.0.0.1")).last_seen, NOW)

    def test_unroutableAddressIsRefused(self):
        b = book()
        for bad in (a("0.0.0.0"), a("224.0.0.1"), a("10.0.0.1", 0)):
            self.assertEqual(add(b, bad), 0)
        self.assertEqual(len(b), 0)

    def test_attemptGoodFailed(self):
        b = book()
        add(b, a("10.0.0.1"))
        b.attempt(a("10.0.0.1"), NOW)
        b.failed(a("10.0.0.1"), NOW)
        b.failed(a("10.0.0.1"), NOW)
        info = b.get(a("10.0.0.1"))
        self.assertEqual((info.last_tried, info.attempts, info.failures), (NOW, 2, 2))
        self.assertTrue(b.good(a("10.0.0.1"), NOW + 1))
        self.assertFalse(b.good(a("10.0.0.1"), NOW + 2))
        self.assertEqual((info.last_success, info.last_seen, info.attempts), (NOW + 2, NOW + 2, 0))
        b.check()

    def test_remove(self):
        b = book()
        for i in range(5):
            add(b, a(f"10.0.0.{i + 1}"))
        b.good(a("10.0.0.3"), NOW)
        b.remove(a("10.0.0.3"))
        b.remove(a("10.0.0.9"))
        self.assertNotIn(a("10.0.0.3"), b)
        self.assertEqual(len(b), 4)
        b.check()


class SelectTests(SynchronousTestCase):
    def test_emptyBookSelectsNothing(self):
        self.assertIsNone(book().select(NOW))
        self.assertIsNone(book().select(NOW, new_only=True))

    def test_prefersAddressesThatWorked(self):
        b = book()
        for i in range(10):
            add(b, a(f"10.0.{i}.1"))
        b.good(a("10.0.0.1"), NOW)
        picks = [b.select(NOW).address for _ in range(1000)]
        self.assertGreater(picks.count(a("10.0.0.1")), 700)

    def test_newOnlyNeverPicksAnAddressThatWorked(self):
        b = book()
        for i in range(3):
            add(b, a(f"10.0.{i}.1"))
        b.good(a("10.0.0.1"), NOW)
        picks = {b.select(NOW, new_only=True).address for _ in range(200)}
        self.assertEqual(picks, {a("10.0.1.1"), a("10.0.2.1")})

    def test_failuresLowerTheChance(self):
        b = book()
        add(b, a("10.0.0.1"))
        add(b, a("10.0.1.1"))
        for _ in range(9):
            b.failed(a("10.0.1.1"), NOW)
        picks = [b.select(NOW).address for _ in range(1000)]
        self.assertGreater(picks.count(a("10.0.0.1")), 800)


class SharingTests(SynchronousTestCase):
    def test_sampleIsBoundedAndRandom(self):
        b = book()
        for i in range(50):
            add(b, a(f"10.0.{i}.1"), NOW)
        first = [i.address for i in b.get_addr(NOW, 10)]
        second = [i.address for i in b.get_addr(NOW, 10)]
        self.assertEqual(len(first), 10)
        self.assertNotEqual(first, second)
        self.assertEqual(len(b.get_addr(NOW, 1000)), 50)

    def test_sampleLeavesOutTerribleEntries(self):
        b = book()
        add(b, a("10.0.0.1"), NOW)
        add(b, a("10.0.0.2"), NOW - ADDR_HORIZON_S - 1)
        self.assertEqual([i.address for i in b.get_addr(NOW, 10)], [a("10.0.0.1")])

    def test_isTerrible(self):
        self.assertTrue(AddressInfo(a("10.0.0.1")).is_terrible(NOW))
        self.assertFalse(AddressInfo(a("10.0.0.1"), last_seen=NOW).is_terrible(NOW))
        self.assertTrue(AddressInfo(a("10.0.0.1"), last_seen=NOW + 3600).is_terrible(NOW))
        self.assertTrue(AddressInfo(a("10.0.0.1"), last_seen=NOW, attempts=3).is_terrible(NOW))
        worked = AddressInfo(a("10.0.0.1"), last_seen=NOW, last_success=NOW, attempts=3)
        self.assertFalse(worked.is_terrible(NOW))


class EvictionTests(SynchronousTestCase):
    def test_floodEvictsNeverSuccessfulEntriesFirst(self):
        b = book(max_entries=200)
        add(b, a("10.1.0.1"), NOW - 1000)
        b.good(a("10.1.0.1"), NOW - 1000)
        for i in range(1000):
            add(b, a(f"10.2.{i // 250}.{i % 250 + 1}"), NOW)
        self.assertLessEqual(len(b), 200)
        self.assertIn(a("10.1.0.1"), b)
        b.check()


class PersistenceTests(SynchronousTestCase):
    def test_roundTripKeepsEveryField(self):
        b = book()
        add(b, a("10.0.0.1"), NOW - 5)
        b.attempt(a("10.0.0.1"), NOW - 3)
        b.good(a("10.0.0.1"), NOW - 2)
        b.failed(a("10.0.0.1"), NOW - 1)
        restored = AddressBook.from_json(b.to_json())
        self.assertEqual(restored.get(a("10.0.0.1")), b.get(a("10.0.0.1")))
        restored.check()

    def test_structurallyWrongDataIsRefused(self):
        for bad in (None, [], {"version": 2}, {"version": 1, "addresses": {}}):
            self.assertRaises(AddressBookError, AddressBook.from_json, bad)

    def test_badEntriesAreSkipped(self):
        data = {
            "version": 1,
            "addresses": [
                {"addr": "10.0.0.1:5000", "last_seen": 5},
                {"addr": "nonsense"},
                {"addr": "0.0.0.0:5000"},
                {"addr": "10.0.0.2:5000", "last_seen": -1},
                {"addr": "10.0.0.3:5000", "attempts": True},
                "not an object",
            ],
        }
        self.assertEqual([i.address for i in AddressBook.from_json(data)], [a("10.0.0.1")])


class CheckTests(SynchronousTestCase):
    def test_detectsWrongKey(self):
        b = book()
        add(b, a("10.0.0.1"))
        b._entries[a("10.0.0.1")].address = a("10.0.0.2")
        self.assertRaises(AddressBookError, b.check)

    def test_detectsNegativeAttempts(self):
        b = book()
        add(b, a("10.0.0.1"))
        b.get(a("10.0.0.1")).attempts = -1
        self.assertRaises(AddressBookError, b.check)

    def test_detectsAWrongIndex(self):
        b = book()
        add(b, a("10.0.0.1"))
        add(b, a("10.0.0.2"))
        b._order.reverse()
        self.assertRaises(AddressBookError, b.check)
