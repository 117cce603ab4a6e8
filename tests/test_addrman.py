"""
The address manager (Bitcoin Core's addrman port): adding, bucketing, the
tried table and its collisions, attempts, selection, getaddr sampling,
invariant checking and persistence, with explicit times and seeded random
sources.
"""

from __future__ import annotations

import hashlib
import json
import random

import attrs
from twisted.trial.unittest import SynchronousTestCase

import bitp2p.addrman
from bitp2p.address import Address, network_group
from bitp2p.addrman import AddrInfo, AddrMan, AddrManError, _refsSet, _Table
from bitp2p.constants import (
    ADDRMAN_HORIZON_S,
    ADDRMAN_MIN_FAIL_S,
    ADDRMAN_NEW_BUCKETS_PER_ADDRESS,
    ADDRMAN_SET_TRIED_COLLISION_SIZE,
)

NOW = 1_800_000_000.0
HOUR = 3600.0
DAY = 24 * HOUR
KEY = bytes(range(32))
SMALL = {"new_buckets": 64, "tried_buckets": 16, "bucket_size": 8}


def a(host: str, port: int = 5000) -> Address:
    return Address.of(host, port)


def in_group(group: int, host: int = 1) -> Address:
    """
    Address number C{host} (< 65536) of IPv4 /16 group number C{group}
    (< 50000), all routable.
    """
    return a(f"{11 + group // 256}.{group % 256}.{host // 256}.{host % 256}")


def sharingANewSlot(m: AddrMan, source: Address) -> tuple[Address, Address]:
    """
    Two addresses (in different groups) that C{source} would put in the
    same slot of the "new" table.
    """
    slots: dict[tuple[int, int], Address] = {}
    for g in range(10_000):
        address = in_group(g)
        bucket = m._new_bucket(address, source)
        slot = (bucket, m._position(True, bucket, address))
        if slot in slots:
            return slots[slot], address
        slots[slot] = address
    raise AssertionError("no two addresses share a slot")


def man(seed: int = 1, key: bytes = KEY, **kwargs) -> AddrMan:
    return AddrMan(rng=random.Random(seed), key=key, **kwargs)


def filled(n: int, **kwargs) -> AddrMan:
    """
    An address manager with exactly C{n} fresh entries in the new table.
    """
    m = man(**kwargs)
    i = 0
    while len(m) < n:
        address = in_group(i % 5000, 1 + i // 5000)
        m.add([(address, NOW - 100)], address, NOW)
        i += 1
    return m


def tried_colliding(m: AddrMan, count: int = 2) -> list[Address]:
    """
    C{count} addresses of distinct groups sharing one tried slot.
    """
    slots: dict[tuple[int, int], list[Address]] = {}
    for g in range(100_000):
        address = in_group(g % 50_000, 1 + g // 50_000)
        same = slots.setdefault(m._tried_slot(address), [])
        same.append(address)
        if len(same) == count:
            return same
    raise AssertionError("no collision found")


def make_tried(m: AddrMan, address: Address, when: float) -> None:
    m.add([(address, when)], address, when)
    assert m.good(address, when, test_before_evict=False), address


class AddTests(SynchronousTestCase):
    def test_addNewAddress(self):
        m = man()
        source = a("10.9.9.9")
        self.assertEqual(m.add([(a("10.0.0.1"), NOW - 100)], source, NOW), 1)
        self.assertIn(a("10.0.0.1"), m)
        info = m.get(a("10.0.0.1"))
        self.assertEqual(
            (info.address, info.source, info.last_seen, info.ref_count, info.in_tried),
            (a("10.0.0.1"), source, NOW - 100, 1, False),
        )
        self.assertEqual((len(m), m.size_new, m.size_tried), (1, 1, 0))
        self.assertEqual([i.address for i in m], [a("10.0.0.1")])
        self.assertIsNone(m.get(a("10.0.0.2")))
        m.check()

    def test_addReturnsHowManyWereInserted(self):
        m = man()
        entries = [(in_group(g), NOW - 100) for g in range(50)]
        self.assertEqual(m.add(entries, a("10.9.9.9"), NOW), 50)
        self.assertEqual(m.add(entries, a("10.9.9.9"), NOW), 0)
        self.assertEqual(len(m), 50)

    def test_penaltyIsSubtracted(self):
        m = man()
        m.add([(a("10.0.0.1"), NOW - 100)], a("10.9.9.9"), NOW, penalty_s=2 * HOUR)
        self.assertEqual(m.get(a("10.0.0.1")).last_seen, NOW - 100 - 2 * HOUR)

    def test_heardIsWhenWeHeardNotTheTimeStamp(self):
        """
        C{heard} is this node's clock at the last hearing, whatever the
        time stamp (given or penalised), and a repeat hearing moves it even
        when it changes nothing else.
        """
        m = man()
        m.add([(a("10.0.0.1"), NOW - 5 * HOUR)], a("10.9.9.9"), NOW, penalty_s=2 * HOUR)
        info = m.get(a("10.0.0.1"))
        self.assertEqual((info.heard, info.last_seen), (NOW, NOW - 7 * HOUR))
        m.add([(a("10.0.0.1"), NOW - 5 * HOUR)], a("10.9.9.8"), NOW + 60, penalty_s=2 * HOUR)
        self.assertEqual((info.heard, info.last_seen), (NOW + 60, NOW - 7 * HOUR))

    def test_noPenaltyForSelfAnnouncement(self):
        m = man()
        m.add([(a("10.0.0.1"), NOW - 100)], a("10.0.0.1"), NOW, penalty_s=2 * HOUR)
        self.assertEqual(m.get(a("10.0.0.1")).last_seen, NOW - 100)

    def test_penaltyNeverMakesTimeNegative(self):
        m = man()
        m.add([(a("10.0.0.1"), 100.0)], a("10.9.9.9"), NOW, penalty_s=1000)
        self.assertEqual(m.get(a("10.0.0.1")).last_seen, 0.0)
        m.check()

    def test_futureTimeIsStoredAsGiven(self):
        m = man()
        m.add([(a("10.0.0.1"), NOW + DAY)], a("10.9.9.9"), NOW)
        self.assertEqual(m.get(a("10.0.0.1")).last_seen, NOW + DAY)

    def test_unroutableAddressesAreSkipped(self):
        m = man()
        bad = [(a("0.0.0.0"), NOW), (a("224.0.0.1"), NOW), (a("10.0.0.1", 0), NOW)]
        self.assertEqual(m.add(bad, a("10.9.9.9"), NOW), 0)
        self.assertEqual(len(m), 0)

    def test_lastSeenOfOnlineAddressUpdatedHourly(self):
        m = man()
        address, source = a("10.0.0.1"), a("10.9.9.9")
        m.add([(address, NOW - 2 * HOUR)], source, NOW)
        # Less than an hour fresher: kept.
        m.add([(address, NOW - 2 * HOUR + 3000)], source, NOW)
        self.assertEqual(m.get(address).last_seen, NOW - 2 * HOUR)
        m.add([(address, NOW - 1800)], source, NOW)
        self.assertEqual(m.get(address).last_seen, NOW - 1800)
        # The penalty counts in the comparison and in the new value.
        m.add([(address, NOW - 1800 + HOUR + 10)], source, NOW + HOUR, penalty_s=600)
        self.assertEqual(m.get(address).last_seen, NOW - 1800)
        m.add([(address, NOW - 1800 + HOUR + 700)], source, NOW + HOUR, penalty_s=600)
        self.assertEqual(m.get(address).last_seen, NOW - 1800 + HOUR + 100)

    def test_lastSeenOfOfflineAddressUpdatedDaily(self):
        m = man()
        address, source = a("10.0.0.1"), a("10.9.9.9")
        m.add([(address, NOW - 10 * DAY)], source, NOW)
        m.add([(address, NOW - 9 * DAY)], source, NOW)  # exactly a day: kept
        self.assertEqual(m.get(address).last_seen, NOW - 10 * DAY)
        m.add([(address, NOW - 8.5 * DAY)], source, NOW)
        self.assertEqual(m.get(address).last_seen, NOW - 8.5 * DAY)

    def test_firstSourceIsKept(self):
        m = man()
        address = a("10.0.0.1")
        m.add([(address, NOW - 100)], a("10.9.9.9"), NOW)
        for g in range(100):
            m.add([(address, NOW - 99 + g)], in_group(1000 + g), NOW)
        self.assertEqual(m.get(address).source, a("10.9.9.9"))
        self.assertGreater(m.get(address).ref_count, 1)

    def test_refCountGrowsStochasticallyUpToEight(self):
        m = man()
        address = a("10.0.0.1")
        history = []
        inserted = 0
        for i in range(3000):
            # Fresher each time, but by less than the hourly update interval.
            inserted += m.add([(address, NOW - 1000 + i * 0.1)], in_group(2000 + i), NOW)
            history.append(m.get(address).ref_count)
        self.assertEqual(history, sorted(history))
        self.assertEqual(max(history), ADDRMAN_NEW_BUCKETS_PER_ADDRESS)
        self.assertEqual(inserted, ADDRMAN_NEW_BUCKETS_PER_ADDRESS)
        # Harder and harder: far more than 8 tries were needed, and the
        # first doubling took fewer tries than the last.
        firsts = [history.index(k) for k in range(1, 9)]
        self.assertGreater(firsts[-1], 30)
        self.assertLess(firsts[1] - firsts[0], firsts[-1] - firsts[-2])
        self.assertEqual(len(m._newBucketsOf(m.get(address))), 8)
        m.check()

    def test_sameSlotAgainIsNotAnInsertion(self):
        m = man()
        address, source = a("10.0.0.1"), a("10.9.9.9")
        m.add([(address, NOW - 100)], source, NOW)
        # Same source: same bucket and slot; ref_count 1 means a 1/2 chance
        # of trying, and the slot holds the entry already.
        for i in range(50):
            self.assertEqual(m.add([(address, NOW - 99 + i)], source, NOW), 0)
        self.assertEqual(m.get(address).ref_count, 1)

    def test_takenSlotIsOnlyTakenOverFromTerribleOrMultiplyHeld(self):
        m = man(**SMALL)
        source = a("10.9.9.9")
        # Two addresses for one new slot from one source.
        first, second = sharingANewSlot(m, source)
        self.assertEqual(m.add([(first, NOW - 100)], source, NOW), 1)
        self.assertEqual(m.add([(second, NOW - 100)], source, NOW), 0)
        self.assertNotIn(second, m)  # in no bucket: forgotten
        # Once the holder is terrible, the newcomer takes over.
        m.get(first).last_seen = NOW - ADDRMAN_HORIZON_S - 1
        self.assertEqual(m.add([(second, NOW - 100)], source, NOW), 1)
        self.assertNotIn(first, m)
        self.assertIn(second, m)
        m.check()

    def test_multiplyHeldEntryGivesWayToUnheldOne(self):
        m = man(**SMALL)
        source = a("10.9.9.9")
        first, second = sharingANewSlot(m, source)
        m.add([(first, NOW - 100)], source, NOW)
        i = 0
        while m.get(first).ref_count < 2:
            m.add([(first, NOW - 99 + i)], in_group(20_000 + i), NOW)
            i += 1
        refs = m.get(first).ref_count
        self.assertEqual(m.add([(second, NOW - 100)], source, NOW), 1)
        self.assertEqual(m.get(first).ref_count, refs - 1)
        m.check()


class BucketingTests(SynchronousTestCase):
    def test_oneSourceGroupReachesAtMost64NewBuckets(self):
        # Also the default-geometry volume test: 20000 adds.
        m = man()
        for i in range(20_000):
            m.add([(in_group(i % 10_000, 1 + i // 10_000), NOW - 100)], a(f"10.7.{i % 256}.1"), NOW)
        buckets = set(m._new.buckets)
        self.assertLessEqual(len(buckets), 64)
        self.assertGreater(len(buckets), 50)
        self.assertLessEqual(len(m), 64 * 64)
        m.check()

    def test_manySourceGroupsReachManyNewBuckets(self):
        m = man()
        for i in range(2000):
            m.add([(in_group(i), NOW - 100)], in_group(30_000 + i % 100), NOW)
        self.assertGreater(len(m._new.buckets), 300)

    def test_oneAddressGroupReachesAtMost8TriedBuckets(self):
        m = man()
        for host in range(1, 2001):
            address = a(f"10.1.{host // 256}.{host % 256}")
            m.add([(address, NOW - 100)], address, NOW)
            m.good(address, NOW, test_before_evict=False)
        self.assertLessEqual(len(m._tried.buckets), 8)
        self.assertGreater(len(m._tried.buckets), 4)
        self.assertLessEqual(m.size_tried, 8 * 64)
        m.check()

    def test_differentKeysGiveDifferentBuckets(self):
        m1, m2, m3 = man(key=KEY), man(key=bytes(32)), man(key=KEY)
        source = a("10.9.9.9")
        addresses = [in_group(g) for g in range(200)]
        new1 = [m1._new_bucket(x, source) for x in addresses]
        new2 = [m2._new_bucket(x, source) for x in addresses]
        self.assertEqual(new1, [m3._new_bucket(x, source) for x in addresses])
        self.assertGreater(sum(x != y for x, y in zip(new1, new2)), 150)
        tried1 = [m1._tried_slot(x) for x in addresses]
        tried2 = [m2._tried_slot(x) for x in addresses]
        self.assertEqual(tried1, [m3._tried_slot(x) for x in addresses])
        self.assertGreater(sum(x != y for x, y in zip(tried1, tried2)), 150)

    def test_bucketsAreTheKeyedHashesOfTheirParts(self):
        # Where an address goes is saved (to_json): it must not move when
        # the hashing is made faster. Each hash is BLAKE2b (8 bytes, keyed)
        # of the parts, each framed as its 4-byte length and its bytes.
        def h(*parts: bytes) -> int:
            data = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
            return int.from_bytes(hashlib.blake2b(data, key=KEY, digest_size=8).digest(), "big")

        def n(i: int) -> bytes:
            return i.to_bytes(8, "big")

        m = man()
        for i in range(50):
            address, source = in_group(i, 1 + i), in_group(500 + i % 7)
            group, source_group = (str(network_group(x)).encode() for x in (address, source))
            text = str(address).encode()
            new = h(source_group, n(h(group, source_group) % 64)) % 1024
            self.assertEqual(m._new_bucket(address, source), new)
            self.assertEqual(m._position(True, new, address), h(b"N", n(new), text) % 64)
            tried = h(group, n(h(text) % 8)) % 256
            self.assertEqual(m._tried_slot(address), (tried, h(b"K", n(tried), text) % 64))

    def test_keyIsDrawnFromTheRng(self):
        m1 = AddrMan(rng=random.Random(5))
        m2 = AddrMan(rng=random.Random(5))
        m3 = AddrMan(rng=random.Random(6))
        self.assertEqual(len(m1.key), 32)
        self.assertEqual(m1.key, m2.key)
        self.assertNotEqual(m1.key, m3.key)

    def test_badConstructorArguments(self):
        self.assertRaises(ValueError, AddrMan, random.Random(1), b"short")
        self.assertRaises(ValueError, AddrMan, random.Random(1), KEY, new_buckets=0)
        self.assertRaises(ValueError, AddrMan, random.Random(1), KEY, bucket_size=True)


class TriedTests(SynchronousTestCase):
    def test_goodMovesToTried(self):
        m = man()
        address = a("10.0.0.1")
        m.add([(address, NOW - 100)], a("10.9.9.9"), NOW)
        m.attempt(address, NOW + 1)
        m.failed(address, NOW + 2)
        self.assertTrue(m.good(address, NOW + 10))
        info = m.get(address)
        self.assertEqual(
            (info.in_tried, info.ref_count, info.last_success, info.last_tried),
            (True, 0, NOW + 10, NOW + 10),
        )
        self.assertEqual((info.attempts, info.failures, info.last_seen), (0, 0, NOW - 100))
        self.assertEqual((m.size_new, m.size_tried), (0, 1))
        # Good again: stays, refreshed, but not "moved".
        self.assertFalse(m.good(address, NOW + 20))
        self.assertEqual(info.last_success, NOW + 20)
        m.check()

    def test_goodOfUnknownAddress(self):
        m = man()
        self.assertFalse(m.good(a("10.0.0.1"), NOW))
        self.assertEqual(len(m), 0)

    def test_addingATriedAddressChangesNoTable(self):
        m = man()
        address = a("10.0.0.1")
        make_tried(m, address, NOW)
        self.assertEqual(m.add([(address, NOW + 2 * HOUR)], a("10.9.9.9"), NOW + 2 * HOUR), 0)
        self.assertTrue(m.get(address).in_tried)
        self.assertEqual(m.get(address).last_seen, NOW + 2 * HOUR)
        m.check()

    def test_goodWithoutTestEvictsOldOccupantToNew(self):
        m = man(**SMALL)
        old, new = tried_colliding(m)
        make_tried(m, old, NOW - DAY)
        m.add([(new, NOW - 100)], a("10.9.9.9"), NOW)
        self.assertTrue(m.good(new, NOW, test_before_evict=False))
        self.assertTrue(m.get(new).in_tried)
        info = m.get(old)
        self.assertEqual((info.in_tried, info.ref_count), (False, 1))
        bucket = m._new_bucket(old, old)  # its own (first) source
        self.assertIs(m._new.get(bucket, m._position(True, bucket, old)), info)
        m.check()

    def test_collisionIsQueuedAndOldEntryOffered(self):
        m = man(**SMALL)
        old, new = tried_colliding(m)
        make_tried(m, old, NOW - DAY)
        m.add([(new, NOW - 100)], a("10.9.9.9"), NOW)
        self.assertIsNone(m.select_tried_collision(NOW))
        self.assertFalse(m.good(new, NOW))
        self.assertFalse(m.get(new).in_tried)
        self.assertEqual(m.get(new).last_success, NOW)
        self.assertIs(m.select_tried_collision(NOW), m.get(old))
        m.check()

    def _collision(self, old_good: float, new_good: float) -> tuple[AddrMan, Address, Address]:
        m = man(**SMALL)
        old, new = tried_colliding(m)
        make_tried(m, old, old_good)
        m.add([(new, new_good - 100)], a("10.9.9.9"), new_good)
        self.assertFalse(m.good(new, new_good))
        return m, old, new

    def test_resolveKeepsOldEntryThatWorkedRecently(self):
        m, old, new = self._collision(NOW - 3 * HOUR, NOW)
        m.resolve_collisions(NOW + 100)
        self.assertTrue(m.get(old).in_tried)
        self.assertFalse(m.get(new).in_tried)
        self.assertIsNone(m.select_tried_collision(NOW + 100))
        m.check()

    def test_resolveReplacesOldEntryThatFailedItsTest(self):
        m, old, new = self._collision(NOW - 5 * HOUR, NOW)
        m.attempt(old, NOW + 10)  # the test dial; it never succeeds
        m.resolve_collisions(NOW + 40)  # less than 60 s: still waiting
        self.assertFalse(m.get(new).in_tried)
        self.assertIs(m.select_tried_collision(NOW + 40), m.get(old))
        m.resolve_collisions(NOW + 71)
        self.assertTrue(m.get(new).in_tried)
        self.assertFalse(m.get(old).in_tried)
        self.assertIsNone(m.select_tried_collision(NOW + 71))
        m.check()

    def test_resolveKeepsOldEntryThatPassedItsTest(self):
        m, old, new = self._collision(NOW - 5 * HOUR, NOW)
        m.attempt(old, NOW + 10)
        m.good(old, NOW + 11)
        m.resolve_collisions(NOW + 100)
        self.assertTrue(m.get(old).in_tried)
        self.assertFalse(m.get(new).in_tried)
        self.assertEqual(m._collisions, {})

    def test_resolveReplacesUntestedOldEntryAfterTheTestWindow(self):
        m, old, new = self._collision(NOW - 5 * HOUR, NOW)
        m.resolve_collisions(NOW + 39 * 60)
        self.assertFalse(m.get(new).in_tried)
        m.resolve_collisions(NOW + 41 * 60)
        self.assertTrue(m.get(new).in_tried)
        self.assertFalse(m.get(old).in_tried)
        m.check()

    def test_resolveWhenCollisionIsNoLongerActual(self):
        m, old, new = self._collision(NOW - 3 * HOUR, NOW)
        m.remove(old)
        m.resolve_collisions(NOW + 1)
        self.assertTrue(m.get(new).in_tried)
        m.check()

    def test_forgottenEntryLeavesTheCollisions(self):
        m, old, new = self._collision(NOW - 3 * HOUR, NOW)
        m.remove(new)
        m.check()
        self.assertIsNone(m.select_tried_collision(NOW))
        m.resolve_collisions(NOW)
        self.assertTrue(m.get(old).in_tried)

    def test_pendingCollisionsAreBounded(self):
        m = man(**SMALL)
        pending = 0
        for g in range(3000):
            address = in_group(g)
            m.add([(address, NOW - 100)], address, NOW)
            if address not in m:
                continue
            if m._tried.get(*m._tried_slot(address)) is None:
                m.good(address, NOW, test_before_evict=False)
            else:
                self.assertFalse(m.good(address, NOW))
                pending += 1
        self.assertGreater(pending, ADDRMAN_SET_TRIED_COLLISION_SIZE)
        self.assertEqual(len(m._collisions), ADDRMAN_SET_TRIED_COLLISION_SIZE)
        m.check()


class AttemptTests(SynchronousTestCase):
    def test_attemptCountsOncePerGoodEpoch(self):
        m = man()
        x, y = a("10.0.0.1"), a("10.1.0.1")
        m.add([(x, NOW - 100), (y, NOW - 100)], a("10.9.9.9"), NOW)
        m.attempt(x, NOW)
        self.assertEqual((m.get(x).attempts, m.get(x).last_tried), (1, NOW))
        m.attempt(x, NOW + 10)
        self.assertEqual((m.get(x).attempts, m.get(x).last_tried), (1, NOW + 10))
        m.good(y, NOW + 20)
        m.attempt(x, NOW + 30)
        self.assertEqual((m.get(x).attempts, m.get(x).last_count_attempt), (2, NOW + 30))
        m.good(y, NOW + 40)
        m.attempt(x, NOW + 50, count_failure=False)
        self.assertEqual((m.get(x).attempts, m.get(x).last_tried), (2, NOW + 50))
        m.attempt(a("10.5.5.5"), NOW)  # unknown: ignored
        self.assertNotIn(a("10.5.5.5"), m)

    def test_goodOfUnknownAddressStillStartsAnEpoch(self):
        m = man()
        x = a("10.0.0.1")
        m.add([(x, NOW - 100)], a("10.9.9.9"), NOW)
        m.attempt(x, NOW)
        m.good(a("10.5.5.5"), NOW + 1)
        m.attempt(x, NOW + 2)
        self.assertEqual(m.get(x).attempts, 2)

    def test_failuresCountUntilGood(self):
        m = man()
        x = a("10.0.0.1")
        m.add([(x, NOW - 100)], a("10.9.9.9"), NOW)
        for i in range(3):
            m.failed(x, NOW + i)
        self.assertEqual(m.get(x).failures, 3)
        m.good(x, NOW + 10)
        self.assertEqual(m.get(x).failures, 0)
        m.failed(a("10.5.5.5"), NOW)  # unknown: ignored
        self.assertEqual(len(m), 1)

    def test_connectedRefreshesLastSeenEvery20Minutes(self):
        m = man()
        x = a("10.0.0.1")
        m.add([(x, NOW - 1000)], a("10.9.9.9"), NOW)
        m.connected(x, NOW)
        self.assertEqual(m.get(x).last_seen, NOW - 1000)
        m.connected(x, NOW + 201)
        self.assertEqual(m.get(x).last_seen, NOW + 201)
        m.connected(a("10.5.5.5"), NOW)
        self.assertEqual(len(m), 1)


class ChanceAndTerribleTests(SynchronousTestCase):
    def info(self, **kwargs) -> AddrInfo:
        return AddrInfo(a("10.0.0.1"), a("10.0.0.1"), **kwargs)

    def test_chance(self):
        self.assertEqual(self.info().chance(NOW), 1.0)
        self.assertAlmostEqual(self.info(last_tried=NOW - 300).chance(NOW), 0.01)
        self.assertEqual(self.info(last_tried=NOW - 600).chance(NOW), 1.0)
        self.assertAlmostEqual(self.info(attempts=3).chance(NOW), 0.66**3)
        self.assertAlmostEqual(self.info(attempts=20).chance(NOW), 0.66**8)
        self.assertAlmostEqual(
            self.info(attempts=2, last_tried=NOW - 1).chance(NOW), 0.01 * 0.66**2
        )

    def test_healthyEntryIsNotTerrible(self):
        self.assertFalse(self.info(last_seen=NOW - DAY).is_terrible(NOW))

    def test_neverSeenOrBeyondHorizon(self):
        self.assertTrue(self.info().is_terrible(NOW))
        self.assertTrue(self.info(last_seen=NOW - ADDRMAN_HORIZON_S - 1).is_terrible(NOW))
        self.assertFalse(self.info(last_seen=NOW - ADDRMAN_HORIZON_S).is_terrible(NOW))

    def test_fromTheFuture(self):
        self.assertTrue(self.info(last_seen=NOW + 601).is_terrible(NOW))
        self.assertFalse(self.info(last_seen=NOW + 600).is_terrible(NOW))

    def test_neverSucceededAfterRetries(self):
        self.assertTrue(self.info(last_seen=NOW, attempts=3).is_terrible(NOW))
        self.assertFalse(self.info(last_seen=NOW, attempts=2).is_terrible(NOW))
        self.assertFalse(
            self.info(last_seen=NOW, attempts=3, last_success=NOW - DAY).is_terrible(NOW)
        )

    def test_manyFailuresWithoutRecentSuccess(self):
        old = NOW - ADDRMAN_MIN_FAIL_S - 1
        self.assertTrue(
            self.info(last_seen=NOW, attempts=10, last_success=old).is_terrible(NOW)
        )
        self.assertFalse(
            self.info(last_seen=NOW, attempts=9, last_success=old).is_terrible(NOW)
        )
        self.assertFalse(
            self.info(last_seen=NOW, attempts=10, last_success=NOW - DAY).is_terrible(NOW)
        )

    def test_triedInTheLastMinuteIsNeverTerrible(self):
        self.assertFalse(self.info(last_tried=NOW - 60).is_terrible(NOW))
        self.assertTrue(self.info(last_tried=NOW - 61).is_terrible(NOW))
        self.assertFalse(self.info(last_seen=NOW + DAY, last_tried=NOW).is_terrible(NOW))


class SelectTests(SynchronousTestCase):
    def test_emptyTables(self):
        m = man()
        self.assertIsNone(m.select(NOW))
        self.assertIsNone(m.select(NOW, new_only=True))
        make_tried(m, a("10.0.0.1"), NOW - DAY)
        self.assertIs(m.select(NOW), m.get(a("10.0.0.1")))
        self.assertIsNone(m.select(NOW, new_only=True))

    def test_evenChoiceBetweenTables(self):
        m = man()
        for g in range(50):
            make_tried(m, in_group(g), NOW - DAY)
            m.add([(in_group(1000 + g), NOW - 100)], in_group(1000 + g), NOW)
        self.assertEqual((m.size_new, m.size_tried), (50, 50))
        picks = [m.select(NOW) for _ in range(2000)]
        tried = sum(p.in_tried for p in picks) / len(picks)
        self.assertTrue(0.4 < tried < 0.6, tried)
        self.assertGreater(len({p.address for p in picks}), 90)

    def test_newOnly(self):
        m = man()
        for g in range(20):
            make_tried(m, in_group(g), NOW - DAY)
            m.add([(in_group(1000 + g), NOW - 100)], a("10.9.9.9"), NOW)
        picks = [m.select(NOW, new_only=True) for _ in range(500)]
        self.assertFalse(any(p.in_tried for p in picks))
        self.assertEqual(len({p.address for p in picks}), 20)

    def test_fewerAttemptsPreferred(self):
        m = man()
        good, bad = a("10.0.0.1"), a("10.1.0.1")
        m.add([(good, NOW - 100), (bad, NOW - 100)], a("10.9.9.9"), NOW)
        m.get(bad).attempts = 8
        picks = [m.select(NOW).address for _ in range(2000)]
        self.assertGreater(picks.count(good) / len(picks), 0.8)
        self.assertGreater(picks.count(bad), 0)

    def test_recentlyTriedAvoided(self):
        m = man()
        fresh, recent = a("10.0.0.1"), a("10.1.0.1")
        m.add([(fresh, NOW - 100), (recent, NOW - 100)], a("10.9.9.9"), NOW)
        m.attempt(recent, NOW - 60)
        picks = [m.select(NOW).address for _ in range(2000)]
        self.assertGreater(picks.count(fresh) / len(picks), 0.9)

    def test_selectionIsReproducible(self):
        def run() -> list[Address]:
            m = filled(200)
            return [m.select(NOW).address for _ in range(100)]

        self.assertEqual(run(), run())

    def test_loneUnlikelyEntryIsStillSelected(self):
        m = man()
        m.add([(a("10.0.0.1"), NOW - 100)], a("10.9.9.9"), NOW)
        m.get(a("10.0.0.1")).attempts = 100
        m.attempt(a("10.0.0.1"), NOW)
        self.assertEqual(m.select(NOW).address, a("10.0.0.1"))


class _OwnRandrange(random.Random):
    """
    A C{random.Random} with a C{randrange} of its own (the same numbers):
    the address manager cannot draw for it, and calls its methods.
    """

    def randrange(self, *args):
        return super().randrange(*args)


class DrawingTests(SynchronousTestCase):
    """
    With a plain C{random.Random} the address manager draws its random
    numbers itself (C{getrandbits}, as C{randrange} would); with any other
    source it calls its methods. Both must give the same results.
    """

    def test_sameAsCallingRandrange(self):
        def run(rng: random.Random) -> tuple[object, list[object]]:
            m = AddrMan(rng=rng, key=KEY, new_buckets=16, tried_buckets=4, bucket_size=8)
            self.assertEqual(m._plainRandom, type(rng) is random.Random)
            stats = _randomOperations(m, random.Random(7), 3000)
            picks = [m.select(NOW + 30 * DAY + i) for i in range(300)]
            return (m.to_json(), stats), [p.address if p else None for p in picks]

        plain, own = run(random.Random(3)), run(_OwnRandrange(3))
        self.assertEqual(plain, own)
        self.assertGreater(len(set(plain[1])), 10)


class GetAddrTests(SynchronousTestCase):
    def test_countFormula(self):
        for size, expected in ((5, 5), (50, 50), (300, 100), (1000, 230), (10_000, 1000)):
            m = filled(size)
            got = m.get_addr(NOW)
            self.assertEqual(len(got), expected, size)
            self.assertEqual(len({i.address for i in got}), expected)
            m.check()

    def test_parameters(self):
        m = filled(300)
        self.assertEqual(len(m.get_addr(NOW, max_count=10)), 10)
        self.assertEqual(len(m.get_addr(NOW, max_pct=50)), 150)
        self.assertEqual(len(m.get_addr(NOW, min_count=0)), 69)
        self.assertEqual(man().get_addr(NOW), [])

    def test_terribleEntriesLeftOut(self):
        m = filled(50)
        terrible = set()
        for info in list(m)[:20]:
            info.last_seen = 0.0
            terrible.add(info.address)
        got = m.get_addr(NOW)
        self.assertEqual(len(got), 30)
        self.assertFalse(terrible & {i.address for i in got})
        m.check()

    def test_sampleIsRandom(self):
        m = filled(1000)
        first = [i.address for i in m.get_addr(NOW)]
        second = [i.address for i in m.get_addr(NOW)]
        self.assertNotEqual(first, second)
        self.assertLess(len(set(first) & set(second)), 150)
        m.check()


class RemoveTests(SynchronousTestCase):
    def test_removeFromNewTriedAndUnknown(self):
        m = man()
        x, y, z = a("10.0.0.1"), a("10.1.0.1"), a("10.2.0.1")
        m.add([(x, NOW - 100), (z, NOW - 100)], a("10.9.9.9"), NOW)
        i = 0
        while m.get(x).ref_count < 3:
            m.add([(x, NOW - 99 + i)], in_group(3000 + i), NOW)
            i += 1
        make_tried(m, y, NOW)
        m.remove(x)
        m.remove(y)
        m.remove(a("10.5.5.5"))
        self.assertEqual([i.address for i in m], [z])
        self.assertEqual((m.size_new, m.size_tried), (1, 0))
        self.assertEqual(m._new.count, 1)
        m.check()


def _randomOperations(m: AddrMan, rng: random.Random, count: int) -> dict[str, int]:
    """
    Random adds, goods, attempts, selections... on C{m}, checking its
    invariants every 100 operations; returns how often interesting things
    happened.
    """
    now = NOW
    stats = {"tried": 0, "collisions": 0, "resolved": 0, "removed": 0}
    pool = [in_group(rng.randrange(300), rng.randrange(1, 4)) for _ in range(600)]
    for n in range(count):
        now += rng.uniform(0, 120)
        op = rng.random()
        if op < 0.35:
            batch = [(rng.choice(pool), now - rng.uniform(-100, 40 * DAY)) for _ in range(5)]
            source = rng.choice(pool)
            m.add(batch, source, now, penalty_s=rng.choice([0, 2 * HOUR]))
        elif op < 0.5:
            known = list(m)
            if known:
                stats["tried"] += m.good(rng.choice(known).address, now, rng.random() < 0.7)
        elif op < 0.65:
            info = m.select(now, new_only=rng.random() < 0.2)
            if info is not None:
                m.attempt(info.address, now, rng.random() < 0.9)
                if rng.random() < 0.5:
                    m.failed(info.address, now)
                else:
                    m.connected(info.address, now)
        elif op < 0.75:
            if m.select_tried_collision(now) is not None:
                stats["collisions"] += 1
            before = len(m._collisions)
            m.resolve_collisions(now)
            stats["resolved"] += before - len(m._collisions)
        elif op < 0.85:
            m.get_addr(now)
        elif op < 0.88:
            known = list(m)
            if known:
                m.remove(rng.choice(known).address)
                stats["removed"] += 1
        else:
            m.attempt(rng.choice(pool), now)
        if n % 100 == 0:
            m.check()
    m.check()
    return stats


class _ShadowSets(AddrMan):
    """
    An address manager that also keeps each entry's new buckets as the
    address manager once did: one plain set per entry, from its creation
    to its deletion, added to, discarded from and cleared in step.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shadow: dict[Address, set[int]] = {}

    def _create(self, info):
        super()._create(info)
        self.shadow[info.address] = set()

    def _delete(self, info):
        super()._delete(info)
        del self.shadow[info.address]

    def _put_new(self, bucket, pos, info):
        super()._put_new(bucket, pos, info)
        self.shadow[info.address].add(bucket)

    def _clear_new(self, bucket, pos):
        info = self._new.get(bucket, pos)
        if info is not None:
            self.shadow[info.address].discard(bucket)
        super()._clear_new(bucket, pos)

    def _leave_new(self, info):
        super()._leave_new(info)
        self.shadow[info.address].clear()


class StorageTests(SynchronousTestCase):
    """
    How the tables and entries are stored (compactly) does not change what
    the address manager does.
    """

    def test_tableAgainstAPlainMapping(self):
        size = 16
        table = _Table(8, size)
        model: dict[tuple[int, int], object] = {}
        rng = random.Random(5)
        for n in range(4000):
            bucket, pos = rng.randrange(8), rng.randrange(size)
            if (bucket, pos) in model:
                table.clear(bucket, pos)
                del model[bucket, pos]
            else:
                info = object()
                table.put(bucket, pos, info)
                model[bucket, pos] = info
            if n % 50:
                continue
            table.check("test")
            self.assertEqual(table.count, len(model))
            self.assertEqual(set(table.buckets), {b for b, _ in model})
            self.assertEqual(
                sorted((b, p, id(i)) for b, p, i in table.slots()),
                sorted((b, p, id(i)) for (b, p), i in model.items()),
            )
            for b in range(8):
                for p in range(size):
                    self.assertIs(table.get(b, p), model.get((b, p)))
                held = [p for bb, p in model if bb == b]
                for initial in range(size) if held else ():
                    # The first occupied slot at or after initial, wrapping.
                    first = min(held, key=lambda p: (p - initial) % size)
                    self.assertIs(table.first_from(b, initial), model[b, first])

    def test_takenSlotIsNotOverwritten(self):
        table = _Table(2, 8)
        table.put(1, 3, "x")
        self.assertRaises(KeyError, table.put, 1, 3, "y")
        self.assertRaises(KeyError, table.clear, 1, 4)
        self.assertEqual(table.get(1, 3), "x")

    def test_newBucketsIterateAsTheirOwnSetDid(self):
        """
        An entry's new buckets are emptied (L{AddrMan._leave_new}) in the
        order a set of its own, with the same history, iterates in: that
        order is the order of the list of non-empty buckets, so of the
        draws of L{AddrMan.select}.
        """
        # A short history, so that some become sets (see AddrMan._noteRefs).
        self.patch(bitp2p.addrman, "_REFS_HISTORY", 4)
        m = _ShadowSets(rng=random.Random(4), key=KEY, new_buckets=32, tried_buckets=8, bucket_size=8)
        _randomOperations(m, random.Random(12), 3000)
        rng = random.Random(2)
        multiple = 0
        kinds = set()
        for n in range(3000):
            # The same addresses from many sources: entries in several
            # buckets, some of them emptied and refilled.
            address = in_group(rng.randrange(40))
            m.add([(address, NOW + n)], in_group(1000 + rng.randrange(500)), NOW + n)
            if rng.random() < 0.05:
                m.good(rng.choice(list(m)).address, NOW + n, False)
            if n % 10:
                continue
            for info in m:
                order = list(_refsSet(info._refs))
                self.assertEqual(order, list(m.shadow[info.address]))
                multiple += len(order) > 1
                kinds.add(type(info._refs))
        self.assertGreater(multiple, 1000)
        # Every way of keeping them was met (a long history: a set).
        self.assertEqual(kinds, {type(None), int, tuple, set})
        m.check()


class CheckTests(SynchronousTestCase):
    def test_invariantsHoldUnderRandomOperations(self):
        m = man(seed=7, **SMALL)
        stats = _randomOperations(m, random.Random(99), 5000)
        self.assertGreater(stats["tried"], 50)
        self.assertGreater(stats["collisions"], 5)
        self.assertGreater(stats["resolved"], 5)
        self.assertGreater(m.size_new, 50)
        self.assertGreater(m.size_tried, 20)
        self.assertTrue(any(i.ref_count > 1 for i in m))
        restored = AddrMan.from_json(json.loads(json.dumps(m.to_json())), **SMALL)
        restored.check()
        self.assertEqual(restored.to_json(), m.to_json())

    def corrupt(self, f, message: str) -> None:
        m = man(**SMALL)
        _randomOperations(m, random.Random(3), 800)
        f(m)
        error = self.assertRaises(AddrManError, m.check)
        self.assertIn(message, str(error))

    def test_detectsWrongRefCount(self):
        def f(m):
            next(i for i in m if not i.in_tried).ref_count += 1

        self.corrupt(f, "reference count")

    def test_detectsNewEntryAtWrongPosition(self):
        def f(m):
            for bucket, pos, info in list(m._new.slots()):
                other = (pos + 1) % m._bucket_size
                if m._new.get(bucket, other) is None:
                    m._new.clear(bucket, pos)
                    m._new.put(bucket, other, info)
                    return
            raise AssertionError("no free neighbour")

        self.corrupt(f, "not at its new slot")

    def test_detectsTriedEntryAtWrongPosition(self):
        def f(m):
            for bucket, pos, info in list(m._tried.slots()):
                other = (bucket + 1) % 16
                if m._tried.get(other, pos) is None:
                    m._tried.clear(bucket, pos)
                    m._tried.put(other, pos, info)
                    return
            raise AssertionError("no free slot")

        self.corrupt(f, "not at its tried slot")

    def test_detectsWrongRandomIndex(self):
        def f(m):
            x, y = m._random[0], m._random[1]
            x._pos, y._pos = y._pos, x._pos

        self.corrupt(f, "random position")

    def test_detectsWrongTriedCount(self):
        def f(m):
            m._n_tried += 1

        self.corrupt(f, "size_tried")

    def test_detectsTriedEntryWithReferences(self):
        def f(m):
            next(i for i in m if i.in_tried).ref_count = 1

        self.corrupt(f, "in tried with reference count")

    def test_detectsNegativeCounterAndTime(self):
        def f(m):
            next(iter(m)).attempts = -1

        self.corrupt(f, "negative counter")

        def g(m):
            next(iter(m)).last_tried = -5.0

        self.corrupt(g, "negative time")

    def test_detectsUnroutableAddress(self):
        m = man()
        m.add([(a("10.0.0.1"), NOW)], a("10.0.0.1"), NOW)
        m.get(a("10.0.0.1")).address = a("0.0.0.0")
        self.assertRaises(AddrManError, m.check)

    def test_detectsBadKey(self):
        m = man()
        m._key = b"short"
        self.assertIn("key", str(self.assertRaises(AddrManError, m.check)))

    def test_detectsStaleCollision(self):
        def f(m):
            m._collisions[a("10.200.0.1")] = AddrInfo(a("10.200.0.1"), a("10.200.0.1"))

        self.corrupt(f, "tried collision")


class PersistenceTests(SynchronousTestCase):
    def state(self) -> AddrMan:
        m = man(seed=11, **SMALL)
        _randomOperations(m, random.Random(12), 1500)
        return m

    def test_roundTripKeepsEveryField(self):
        m = self.state()
        data = json.loads(json.dumps(m.to_json()))
        restored = AddrMan.from_json(data, rng=random.Random(1), **SMALL)
        restored.check()
        self.assertEqual(restored.key, m.key)
        self.assertEqual((restored.size_new, restored.size_tried), (m.size_new, m.size_tried))
        self.assertEqual(restored._last_good, m._last_good)
        # Not the bookkeeping, nor heard (this run's clock, not saved).
        fields = [f.name for f in attrs.fields(AddrInfo) if f.init and f.name != "heard"]
        self.assertIn("failures", fields)
        for info in m:
            other = restored.get(info.address)
            for field in fields:
                self.assertEqual(getattr(other, field), getattr(info, field), field)
            self.assertEqual(restored._newBucketsOf(other), m._newBucketsOf(info))
            self.assertEqual(other.heard, 0.0)
        self.assertEqual(restored.to_json(), m.to_json())
        self.assertEqual(
            sorted((b, p, i.address) for b, p, i in restored._new.slots()),
            sorted((b, p, i.address) for b, p, i in m._new.slots()),
        )

    def test_structurallyWrongDataIsRefused(self):
        good = man().to_json()
        for bad in (
            None,
            [],
            "x",
            {},
            {**good, "key": None},
            {**good, "key": "ab" * 31},
            {**good, "key": "zz" * 32},
            {**good, "entries": None},
            {**good, "entries": {}},
        ):
            self.assertRaises(AddrManError, AddrMan.from_json, bad)
        AddrMan.from_json(good).check()

    def test_badEntriesAreSkipped(self):
        base = {"addr": "10.0.0.1:5000", "source": "10.9.9.9:5000", "last_seen": NOW - 100}
        bad = [
            "10.0.0.2:5000",
            {},
            {**base, "addr": "10.0.0.3"},
            {**base, "addr": 5},
            {**base, "addr": "0.0.0.0:5000"},
            {**base, "addr": "10.0.0.4:5000", "source": "nope"},
            {**base, "addr": "10.0.0.5:5000", "last_seen": "now"},
            {**base, "addr": "10.0.0.6:5000", "last_seen": -1},
            {**base, "addr": "10.0.0.7:5000", "last_tried": float("nan")},
            {**base, "addr": "10.0.0.8:5000", "last_success": True},
            {**base, "addr": "10.0.0.9:5000", "attempts": 1.5},
            {**base, "addr": "10.0.0.10:5000", "failures": -2},
            {**base, "addr": "10.0.0.11:5000", "tried": "yes"},
            {**base, "addr": "10.0.0.12:5000", "buckets": 3},
            {**base, "addr": "10.0.0.13:5000", "buckets": ["1"]},
            {**base, "addr": "10.0.0.14:5000", "last_seen": 10**400},
            {**base, "addr": "10.0.0.15:5000", "attempts": False},
        ]
        data = {"key": KEY.hex(), "entries": [*bad, base, {**base, "last_seen": 5.0}]}
        m = AddrMan.from_json(data, rng=random.Random(1))
        m.check()
        self.assertEqual([i.address for i in m], [a("10.0.0.1")])
        info = m.get(a("10.0.0.1"))
        self.assertEqual((info.source, info.last_seen, info.ref_count), (a("10.9.9.9"), NOW - 100, 1))
        # Minimal entry: source defaults to the address itself.
        m = AddrMan.from_json({"key": KEY.hex(), "entries": [{"addr": "10.0.0.1:5000"}]})
        self.assertEqual(m.get(a("10.0.0.1")).source, a("10.0.0.1"))

    def test_newEntryWithoutBucketsIsRebucketedFromSource(self):
        m = man(**SMALL)
        m.add([(a("10.0.0.1"), NOW - 100)], a("10.9.9.9"), NOW)
        data = m.to_json()
        data["entries"][0]["buckets"] = [999, -1]  # out of range: ignored
        restored = AddrMan.from_json(data, **SMALL)
        restored.check()
        self.assertEqual(
            restored._newBucketsOf(restored.get(a("10.0.0.1"))), m._newBucketsOf(m.get(a("10.0.0.1")))
        )

    def test_geometryChangeRebuckets(self):
        m = self.state()
        data = m.to_json()
        big = AddrMan.from_json(data, rng=random.Random(2))
        big.check()
        for info in big:
            if info.in_tried:
                continue
            self.assertEqual(info.ref_count, 1)
            bucket = big._new_bucket(info.address, info.source)
            self.assertEqual(big._newBucketsOf(info), {bucket})
        # Everything fits in the larger tables (bar rare slot clashes).
        self.assertGreater(len(big), 0.9 * len(m))
        self.assertEqual(big.size_tried, m.size_tried)
        back = AddrMan.from_json(big.to_json(), rng=random.Random(3), **SMALL)
        back.check()
        self.assertEqual({i.address for i in back if i.in_tried}, {i.address for i in m if i.in_tried})

    def test_triedEntryWhoseSlotIsTakenGoesToNew(self):
        m = man(**SMALL)
        old, new = tried_colliding(m)
        make_tried(m, old, NOW - DAY)
        make_tried(m, a("10.0.0.1"), NOW - DAY)
        data = m.to_json()
        entry = dict(next(e for e in data["entries"] if e["addr"] == str(old)), addr=str(new))
        entry["source"] = str(new)
        data["entries"].append(entry)
        restored = AddrMan.from_json(data, **SMALL)
        restored.check()
        self.assertTrue(restored.get(old).in_tried)
        self.assertFalse(restored.get(new).in_tried)
        self.assertEqual(restored.get(new).ref_count, 1)

    def test_duplicateEntriesKeepTheFirst(self):
        m = man()
        m.add([(a("10.0.0.1"), NOW - 100)], a("10.9.9.9"), NOW)
        data = m.to_json()
        data["entries"].append(dict(data["entries"][0], last_seen=5.0))
        restored = AddrMan.from_json(data)
        restored.check()
        self.assertEqual(len(restored), 1)
        self.assertEqual(restored.get(a("10.0.0.1")).last_seen, NOW - 100)
