"""
The address book: bookkeeping, backoff, selection, sharing, eviction and
persistence, with explicit times and a seeded random source.
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address
from bitp2p.addrbook import AddressBook, AddressBookError, AddressInfo
from bitp2p.constants import ADDR_HORIZON_S, RETRY_MAX_S

NOW = 1_800_000_000.0


def a(host: str, port: int = 5000) -> Address:
    return Address.of(host, port)


def book(**kwargs) -> AddressBook:
    return AddressBook(rng=random.Random(42), **kwargs)


class BookkeepingTests(SynchronousTestCase):
    def test_addNewAddress(self):
        b = book()
        self.assertTrue(b.add(a("10.0.0.1"), NOW, seen=NOW - 5))
        self.assertIn(a("10.0.0.1"), b)
        self.assertEqual(b.get(a("10.0.0.1")).last_seen, NOW - 5)
        self.assertEqual(len(b), 1)
        b.check()

    def test_addKnownAddressIsNewsOnlyWhenFresher(self):
        b = book()
        b.add(a("10.0.0.1"), NOW, seen=NOW - 100)
        self.assertFalse(b.add(a("10.0.0.1"), NOW, seen=NOW - 200))
        self.assertFalse(b.add(a("10.0.0.1"), NOW, seen=None))
        self.assertTrue(b.add(a("10.0.0.1"), NOW, seen=NOW - 10))
        self.assertEqual(b.get(a("10.0.0.1")).last_seen, NOW - 10)
        self.assertEqual(len(b), 1)
        b.check()

    def test_futureSeenIsClampedToNow(self):
        b = book()
        b.add(a("10.0.0.1"), NOW, seen=NOW + 86400)
        self.assertEqual(b.get(a("10.0.0.1")).last_seen, NOW)

    def test_unroutableAddressIsRefused(self):
        b = book()
        for bad in (a("0.0.0.0"), a("224.0.0.1"), a("10.0.0.1", 0)):
            self.assertFalse(b.add(bad, NOW))
        self.assertEqual(len(b), 0)

    def test_seedFlagSticks(self):
        b = book()
        b.add(a("10.0.0.1"), NOW)
        b.add(a("10.0.0.1"), NOW, seed=True)
        b.add(a("10.0.0.1"), NOW)
        self.assertTrue(b.get(a("10.0.0.1")).seed)

    def test_attemptSuccessFailure(self):
        b = book()
        address = a("10.0.0.1")
        b.mark_attempt(address, NOW)
        b.mark_failure(address, NOW + 1)
        b.mark_failure(address, NOW + 2)
        info = b.get(address)
        self.assertEqual((info.last_tried, info.attempts, info.last_success), (NOW, 2, 0))
        b.mark_success(address, NOW + 3)
        info = b.get(address)
        self.assertEqual((info.attempts, info.last_success, info.last_seen), (0, NOW + 3, NOW + 3))
        b.check()

    def test_remove(self):
        b = book()
        b.add(a("10.0.0.1"), NOW)
        b.remove(a("10.0.0.1"))
        b.remove(a("10.0.0.1"))
        self.assertEqual(len(b), 0)


class BackoffTests(SynchronousTestCase):
    def test_retryDelayDoublesUpToTheCap(self):
        b = book()
        self.assertEqual([b.retry_delay(n) for n in range(5)], [0, 2, 4, 8, 16])
        self.assertEqual(b.retry_delay(40), RETRY_MAX_S)
        self.assertEqual(b.retry_delay(10**6), RETRY_MAX_S)

    def test_isReadyAfterTheDelay(self):
        b = book()
        address = a("10.0.0.1")
        b.add(address, NOW)
        self.assertTrue(b.is_ready(address, NOW))
        for _ in range(3):
            b.mark_attempt(address, NOW)
            b.mark_failure(address, NOW)
        self.assertFalse(b.is_ready(address, NOW + 7.9))
        self.assertTrue(b.is_ready(address, NOW + 8))
        self.assertFalse(b.is_ready(a("10.9.9.9"), NOW))

    def test_nextReadyTime(self):
        b = book()
        self.assertIsNone(b.next_ready_time(NOW))
        b.add(a("10.0.0.1"), NOW)
        b.add(a("10.0.0.2"), NOW)
        for address, failures in ((a("10.0.0.1"), 2), (a("10.0.0.2"), 3)):
            b.mark_attempt(address, NOW)
            for _ in range(failures):
                b.mark_failure(address, NOW)
        self.assertEqual(b.next_ready_time(NOW), NOW + 4)
        self.assertEqual(b.next_ready_time(NOW, exclude={a("10.0.0.1")}), NOW + 8)
        self.assertEqual(b.next_ready_time(NOW + 100), NOW + 100)


class SelectTests(SynchronousTestCase):
    def test_nothingEligible(self):
        b = book()
        self.assertIsNone(b.select(NOW))
        b.add(a("10.0.0.1"), NOW)
        self.assertIsNone(b.select(NOW, exclude={a("10.0.0.1")}))
        b.mark_attempt(a("10.0.0.1"), NOW)
        b.mark_failure(a("10.0.0.1"), NOW)
        self.assertIsNone(b.select(NOW + 1))
        self.assertEqual(b.select(NOW + 2), a("10.0.0.1"))

    def test_neverExcludedNorNotReady(self):
        b = book()
        for i in range(20):
            b.add(a(f"10.{i}.0.1"), NOW)
        b.mark_attempt(a("10.3.0.1"), NOW)
        b.mark_failure(a("10.3.0.1"), NOW)
        excluded = {a(f"10.{i}.0.1") for i in range(10)}
        for _ in range(500):
            chosen = b.select(NOW, exclude=excluded)
            self.assertNotIn(chosen, excluded)
            self.assertNotEqual(chosen, a("10.3.0.1"))

    def test_prefersAddressesThatWorked(self):
        b = book()
        b.add(a("10.0.0.1"), NOW)
        b.add(a("10.1.0.1"), NOW)
        b.mark_success(a("10.0.0.1"), NOW)
        picks = [b.select(NOW) for _ in range(1000)]
        worked = picks.count(a("10.0.0.1"))
        self.assertTrue(700 <= worked <= 900, worked)

    def test_spreadsOverNetworkGroups(self):
        b = book()
        b.add(a("10.0.0.1"), NOW)
        b.add(a("10.0.0.2"), NOW)
        b.add(a("10.1.0.1"), NOW)
        for _ in range(100):
            self.assertEqual(b.select(NOW, exclude_groups={"10.0.0.0/16"}), a("10.1.0.1"))

    def test_fallsBackToAnyGroup(self):
        b = book()
        b.add(a("10.0.0.1"), NOW)
        self.assertEqual(b.select(NOW, exclude_groups={"10.0.0.0/16"}), a("10.0.0.1"))

    def test_failuresLowerTheChance(self):
        b = book()
        b.add(a("10.0.0.1"), NOW)
        b.add(a("10.1.0.1"), NOW)
        for _ in range(9):
            b.mark_failure(a("10.1.0.1"), NOW - 10_000)
        picks = [b.select(NOW) for _ in range(1000)]
        self.assertGreater(picks.count(a("10.0.0.1")), 800)


class SharingTests(SynchronousTestCase):
    def test_sampleIsBoundedAndRandom(self):
        b = book()
        for i in range(50):
            b.add(a(f"10.0.{i}.1"), NOW, seen=NOW - 60)
        sample = b.sample(10, NOW)
        self.assertEqual(len(sample), 10)
        self.assertEqual(len({i.address for i in sample}), 10)
        self.assertEqual(len(b.sample(1000, NOW)), 50)
        self.assertNotEqual(
            [i.address for i in b.sample(10, NOW)], [i.address for i in b.sample(10, NOW)]
        )

    def test_sampleLeavesOutTerribleEntries(self):
        b = book()
        b.add(a("10.0.0.1"), NOW, seen=NOW - 60)  # good
        b.add(a("10.0.0.2"), NOW)  # never seen
        b.add(a("10.0.0.3"), NOW, seen=NOW - ADDR_HORIZON_S - 1)  # too old
        b.add(a("10.0.0.4"), NOW, seen=NOW - 60)
        for _ in range(3):
            b.mark_failure(a("10.0.0.4"), NOW)  # fails, never worked
        b.add(a("10.0.0.5"), NOW, seed=True)  # a seed, never seen
        shared = {i.address for i in b.sample(100, NOW)}
        self.assertEqual(shared, {a("10.0.0.1"), a("10.0.0.5")})

    def test_isTerrible(self):
        info = AddressInfo(a("10.0.0.1"), last_seen=NOW - 10)
        self.assertFalse(info.is_terrible(NOW))
        info.attempts = 10
        info.last_success = NOW - 100
        self.assertTrue(info.is_terrible(NOW))
        self.assertFalse(AddressInfo(a("10.0.0.1"), attempts=50, seed=True).is_terrible(NOW))


class EvictionTests(SynchronousTestCase):
    def test_fullBookEvictsTheWorstButNeverASeed(self):
        b = book(max_entries=3)
        b.add(a("10.0.0.1"), NOW, seed=True)
        b.add(a("10.0.0.2"), NOW, seen=NOW - 10)
        b.add(a("10.0.0.3"), NOW)  # never seen: terrible
        self.assertTrue(b.add(a("10.0.0.4"), NOW, seen=NOW))
        self.assertEqual(len(b), 3)
        self.assertNotIn(a("10.0.0.3"), b)
        self.assertIn(a("10.0.0.1"), b)
        b.check()

    def test_evictsNeverSuccessfulOldestFirst(self):
        b = book(max_entries=3)
        b.add(a("10.0.0.1"), NOW, seen=NOW - 50)
        b.mark_success(a("10.0.0.1"), NOW - 50)
        b.add(a("10.0.0.2"), NOW, seen=NOW - 20)
        b.add(a("10.0.0.3"), NOW, seen=NOW - 30)
        b.add(a("10.0.0.4"), NOW, seen=NOW)
        self.assertEqual(
            {i.address for i in b}, {a("10.0.0.1"), a("10.0.0.2"), a("10.0.0.4")}
        )

    def test_onlySeedsLeftMeansNoRoom(self):
        b = book(max_entries=1)
        b.add(a("10.0.0.1"), NOW, seed=True)
        self.assertFalse(b.add(a("10.0.0.2"), NOW))
        self.assertEqual(len(b), 1)


class PersistenceTests(SynchronousTestCase):
    def test_roundTripKeepsEveryField(self):
        b = book()
        b.add(a("10.0.0.1"), NOW, seen=NOW - 1, seed=True)
        b.add(a("2001:db8::1", 7), NOW, seen=NOW - 2)
        b.mark_attempt(a("2001:db8::1", 7), NOW - 3)
        b.mark_failure(a("2001:db8::1", 7), NOW - 3)
        b.mark_success(a("10.0.0.1"), NOW - 4)
        again = AddressBook.from_json(b.to_json())
        self.assertEqual(sorted(again, key=lambda i: i.address), sorted(b, key=lambda i: i.address))
        again.check()

    def test_structurallyWrongDataIsRefused(self):
        for bad in (None, [], {"version": 2, "addresses": []}, {"version": 1}, {"version": 1, "addresses": {}}):
            self.assertRaises(AddressBookError, AddressBook.from_json, bad)

    def test_badEntriesAreSkipped(self):
        data = {
            "version": 1,
            "addresses": [
                {"addr": "nonsense"},
                {"addr": "10.0.0.1:5000", "last_seen": -5},
                {"addr": "10.0.0.2:5000", "attempts": True},
                {"addr": "0.0.0.0:5000"},
                {"addr": "10.0.0.3:5000", "seed": "yes"},
                "10.0.0.4:5000",
                {"last_seen": 5},
                {"addr": "10.0.0.9:5000", "last_seen": 5, "attempts": 1},
            ],
        }
        restored = AddressBook.from_json(data)
        self.assertEqual([i.address for i in restored], [a("10.0.0.9")])
        restored.check()


class CheckTests(SynchronousTestCase):
    def test_detectsWrongKey(self):
        b = book()
        b.add(a("10.0.0.1"), NOW)
        b._entries[a("10.0.0.2")] = b._entries.pop(a("10.0.0.1"))
        self.assertRaises(AddressBookError, b.check)

    def test_detectsNegativeAttempts(self):
        b = book()
        b.add(a("10.0.0.1"), NOW)
        b.get(a("10.0.0.1")).attempts = -1
        self.assertRaises(AddressBookError, b.check)

    def test_detectsOverfilling(self):
        b = book(max_entries=1)
        b.add(a("10.0.0.1"), NOW)
        b._entries[a("10.0.0.2")] = AddressInfo(a("10.0.0.2"))
        self.assertRaises(AddressBookError, b.check)
