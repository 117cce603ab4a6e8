"""
Inbound eviction: each protection rule, the choice among the unprotected,
determinism, and an eclipse attacker flooding the inbound slots.
"""

from __future__ import annotations

import random
import zlib

from twisted.trial.unittest import SynchronousTestCase

from bitp2p.eviction import EvictionCandidate, evictable, select_to_evict

T0 = 1_800_000_000.0
# Keyed groups: test candidates < fillers < shield, so that only the shield
# wins the net group rule.
SHIELD_GROUP = 10**12
FILLER_GROUP = 10**9


def cand(
    id: object,
    connected_at: float,
    ping: float | None = None,
    group: int | None = None,
    local: bool = False,
    addr: float = 0.0,
) -> EvictionCandidate:
    """
    A candidate; by default in a group of its own (derived from its id).
    """
    if group is None:
        group = zlib.crc32(repr(id).encode()) % FILLER_GROUP
    return EvictionCandidate(id, connected_at, ping, group, local, addr)


def byAge(count: int, **kwargs) -> list[EvictionCandidate]:
    """
    C{count} candidates, id C{i} connected at C{T0 + i} (0 the oldest), each
    in its own group, the highest groups going to the oldest, no ping, no
    addresses: every rule then protects the oldest it can.
    """
    return [cand(i, T0 + i, group=FILLER_GROUP - i, **kwargs) for i in range(count)]


def shielded(tested: list[EvictionCandidate]) -> list[EvictionCandidate]:
    """
    C{tested} plus 16 candidates that take all the protections of rules 1 to
    3, and as many older candidates as C{tested} that take the older half:
    exactly C{tested} is then left unprotected (when none is local).
    """
    oldest = min(c.connected_at for c in tested)
    shield = (
        [cand(f"g{i}", T0 + 10**6 + i, group=SHIELD_GROUP + i) for i in range(4)]
        + [cand(f"p{i}", T0 + 10**6 + i, ping=0.001 * (i + 1)) for i in range(8)]
        + [cand(f"a{i}", T0 + 10**6 + i, addr=T0 + i) for i in range(4)]
    )
    fillers = [
        cand(f"f{i}", oldest - 1000 - i, group=FILLER_GROUP + i) for i in range(len(tested))
    ]
    return shield + fillers + tested


def drain(candidates: list[EvictionCandidate]) -> tuple[list[object], list[EvictionCandidate]]:
    """
    Evict one candidate after another until nobody is evictable.

    @return: the ids evicted, in order, and the candidates left.
    """
    left = list(candidates)
    evicted = []
    while (victim := select_to_evict(left)) is not None:
        evicted.append(victim)
        left = [c for c in left if c.id != victim]
    return evicted, left


def ids(candidates: list[EvictionCandidate]) -> set[object]:
    return {c.id for c in candidates}


class CandidateTests(SynchronousTestCase):
    def test_fieldsAndDefaults(self):
        c = EvictionCandidate("peer", T0, None, 7, False)
        self.assertEqual(
            (c.id, c.connected_at, c.min_ping_s, c.keyed_net_group, c.is_local, c.last_addr_time),
            ("peer", T0, None, 7, False, 0.0),
        )
        self.assertRaises(AttributeError, setattr, c, "connected_at", T0 + 1)


class TooFewTests(SynchronousTestCase):
    def test_noCandidates(self):
        self.assertIsNone(select_to_evict([]))
        self.assertEqual(evictable([]), [])

    def test_sixteenOrFewerAreAllProtected(self):
        for count in range(1, 17):
            self.assertIsNone(select_to_evict(byAge(count)), count)

    def test_seventeenthIsEvictable(self):
        # 16 protected by rules 1 to 3, half of the one left is none.
        self.assertEqual(select_to_evict(byAge(17)), 16)

    def test_twentyCandidates(self):
        # As Bitcoin Core: 16 protected by rules 1 to 3, half of the other 4
        # by uptime, and one of the last 2 is evicted.
        candidates = byAge(20)
        self.assertEqual(ids(evictable(candidates)), {18, 19})
        self.assertEqual(select_to_evict(candidates), 19)

    def test_drainStopsAtSixteen(self):
        evicted, left = drain(byAge(40))
        self.assertEqual(len(left), 16)
        self.assertEqual(evicted, list(range(39, 15, -1)))


class NetGroupRuleTests(SynchronousTestCase):
    def test_fourHighestGroupsNeverEvicted(self):
        candidates = byAge(40)
        # The 4 youngest, otherwise the first to go, get the highest groups.
        high = [cand(f"high{i}", T0 + 1000 + i, group=SHIELD_GROUP + i) for i in range(4)]
        evicted, left = drain(candidates + high)
        self.assertEqual(len(left), 16)
        self.assertTrue(ids(high) <= ids(left))
        self.assertFalse(ids(high) & set(evicted))
        self.assertEqual(select_to_evict(candidates + high), 39)

    def test_onlyFourProtectedFromOneGroup(self):
        # Rule 1 protects candidates, not groups: with the highest group
        # holding 6 members, only the 4 oldest of them are protected.
        candidates = byAge(40)
        high = [cand(f"high{i}", T0 + 1000 + i, group=SHIELD_GROUP) for i in range(6)]
        unprotected = ids(evictable(candidates + high))
        self.assertEqual(unprotected & ids(high), {"high4", "high5"})
        self.assertEqual(select_to_evict(candidates + high), "high5")


class PingRuleTests(SynchronousTestCase):
    def test_eightFastestNeverEvicted(self):
        candidates = byAge(40)
        fast = [cand(f"fast{i}", T0 + 1000 + i, ping=0.01 * (i + 1)) for i in range(8)]
        slow = [cand(f"slow{i}", T0 + 2000 + i, ping=0.5 + i) for i in range(4)]
        evicted, left = drain(candidates + fast + slow)
        self.assertTrue(ids(fast) <= ids(left))
        self.assertTrue(ids(slow) <= set(evicted))
        self.assertEqual(select_to_evict(candidates + fast + slow), "slow3")

    def test_neverMeasuredCountsAsSlowest(self):
        # Everyone of byAge has no ping; the 8 young ones measured, however
        # slowly, win the rule.
        candidates = byAge(40)
        measured = [cand(f"m{i}", T0 + 1000 + i, ping=30.0 + i) for i in range(8)]
        self.assertFalse(ids(measured) & ids(evictable(candidates + measured)))
        extra = cand("m8", T0 + 1010, ping=100.0)
        self.assertEqual(select_to_evict(candidates + measured + [extra]), "m8")

    def test_equalPingsProtectTheOlder(self):
        candidates = [cand(i, T0 + i, ping=0.1) for i in range(20)]
        # 4 highest groups are anywhere; of the rest, the 8 oldest win the
        # ping rule, then the 4 oldest left the addr rule.
        left = ids(evictable(candidates))
        self.assertEqual(len(left), 2)
        self.assertTrue(all(i >= 14 for i in left), left)


class AddrTimeRuleTests(SynchronousTestCase):
    def test_fourMostRecentAddressSendersNeverEvicted(self):
        candidates = byAge(40)
        senders = [cand(f"s{i}", T0 + 1000 + i, addr=T0 + 500 + i) for i in range(6)]
        protected = {"s2", "s3", "s4", "s5"}
        evicted, left = drain(candidates + senders)
        self.assertTrue(protected <= ids(left))
        self.assertEqual(set(evicted) & ids(senders), {"s0", "s1"})

    def test_withoutSendersTheOlderAreProtected(self):
        # As Bitcoin Core: the rule protects 4 even if nobody sent anything,
        # the ones connected longest.
        candidates = [cand(i, T0 + i, group=FILLER_GROUP + 100 - i) for i in range(17)]
        # Rule 1 takes 0-3, rule 2 (no pings) 4-11, rule 3 12-15.
        self.assertEqual(ids(evictable(candidates)), {16})


class RatioRuleTests(SynchronousTestCase):
    def test_olderHalfNeverEvicted(self):
        # 16 taken by rules 1 to 3 (the oldest), 24 left: 12 protected.
        candidates = byAge(40)
        self.assertEqual([c.id for c in evictable(candidates)], list(range(39, 27, -1)))

    def test_shieldLeavesExactlyTheTested(self):
        tested = [cand(f"t{i}", T0 + i) for i in range(10)]
        self.assertEqual(ids(evictable(shielded(tested))), ids(tested))

    def test_localPeersGetAQuarter(self):
        # 40 candidates: the 16 oldest taken by rules 1 to 3; of the 24 left
        # (ids 16-39), 12 are protected: first the 6 oldest of the 8 local
        # ones (32-39), then the 6 oldest of the rest.
        candidates = [
            cand(i, T0 + i, group=FILLER_GROUP - i, local=i >= 32) for i in range(40)
        ]
        unprotected = ids(evictable(candidates))
        # Local 32-37 reserved, then 16-21 oldest overall.
        self.assertEqual(unprotected, set(range(22, 32)) | {38, 39})
        self.assertEqual(select_to_evict(candidates), 39)

    def test_fewLocalPeersAllProtected(self):
        candidates = [
            cand(i, T0 + i, group=FILLER_GROUP - i, local=i in (38, 39)) for i in range(40)
        ]
        unprotected = ids(evictable(candidates))
        # Both local ones, then the 10 oldest of the rest (16-25).
        self.assertEqual(unprotected, set(range(26, 38)))
        self.assertEqual(select_to_evict(candidates), 37)

    def test_noLocalReservationForFewCandidates(self):
        # 19 candidates: 3 left after rules 1 to 3, 1 protected by uptime,
        # none reserved (1 // 2 == 0): the local peer is not favoured.
        candidates = [
            cand(i, T0 + i, group=FILLER_GROUP - i, local=i == 18) for i in range(19)
        ]
        self.assertEqual(ids(evictable(candidates)), {17, 18})

    def test_localReservationWithFiveLeft(self):
        # 21 candidates: 5 left, 2 protected, 1 reserved for the local one.
        candidates = [
            cand(i, T0 + i, group=FILLER_GROUP - i, local=i == 20) for i in range(21)
        ]
        self.assertEqual(ids(evictable(candidates)), {17, 18, 19})


class GroupRuleTests(SynchronousTestCase):
    def test_groupWithMostCandidatesLosesItsYoungest(self):
        tested = [
            cand("a1", T0 + 100, group=1),
            cand("a2", T0 + 300, group=1),
            cand("a3", T0 + 200, group=1),
            cand("b1", T0 + 900, group=2),
            cand("b2", T0 + 800, group=2),
            cand("c1", T0 + 1000, group=3),
        ]
        self.assertEqual(select_to_evict(shielded(tested)), "a2")

    def test_tieGoesToTheGroupWithTheYoungestMember(self):
        tested = [
            cand("a1", T0 + 100, group=1),
            cand("a2", T0 + 300, group=1),
            cand("b1", T0 + 150, group=2),
            cand("b2", T0 + 350, group=2),
            cand("c1", T0 + 1000, group=3),
        ]
        self.assertEqual(select_to_evict(shielded(tested)), "b2")
        tested[1] = cand("a2", T0 + 400, group=1)
        self.assertEqual(select_to_evict(shielded(tested)), "a2")

    def test_allGroupsOfOneLoseTheYoungest(self):
        tested = [cand(f"t{i}", T0 + (i * 37) % 11) for i in range(11)]
        youngest = max(tested, key=lambda c: c.connected_at)
        self.assertEqual(select_to_evict(shielded(tested)), youngest.id)

    def test_equalConnectionTimesBreakByInputOrder(self):
        tested = [cand(f"t{i}", T0, group=1) for i in range(4)]
        # Same group, same time: the later in the input counts as younger.
        self.assertEqual(select_to_evict(shielded(tested)), "t3")


class DeterminismTests(SynchronousTestCase):
    def randomCandidates(self, rng: random.Random, count: int) -> list[EvictionCandidate]:
        return [
            cand(
                i,
                T0 + rng.randrange(10**6),
                ping=rng.choice([None, rng.uniform(0.001, 2.0)]),
                group=rng.randrange(8),
                local=rng.random() < 0.1,
                addr=rng.choice([0.0, T0 + rng.randrange(10**6)]),
            )
            for i in range(count)
        ]

    def test_sameInputSameResult(self):
        rng = random.Random(1)
        for _ in range(50):
            candidates = self.randomCandidates(rng, rng.randrange(17, 120))
            first = select_to_evict(candidates)
            self.assertIsNotNone(first)
            self.assertEqual(select_to_evict(list(candidates)), first)
            self.assertEqual(select_to_evict(tuple(candidates)), first)

    def test_orderDoesNotMatterWithoutTies(self):
        rng = random.Random(2)
        for _ in range(50):
            count = rng.randrange(17, 120)
            times = rng.sample(range(10**6), count)
            pings = rng.sample(range(1, 10**6), count)
            candidates = [
                cand(i, T0 + times[i], ping=pings[i] / 1e6, group=rng.randrange(8),
                     local=rng.random() < 0.1, addr=T0 + times[i] + 5)
                for i in range(count)
            ]
            shuffled = list(candidates)
            rng.shuffle(shuffled)
            self.assertEqual(select_to_evict(shuffled), select_to_evict(candidates))

    def test_inputIsNotModified(self):
        candidates = self.randomCandidates(random.Random(3), 50)
        copy = list(candidates)
        select_to_evict(candidates)
        self.assertEqual(candidates, copy)


class AttackTests(SynchronousTestCase):
    """
    An attacker holding addresses in 2 network groups floods the inbound
    slots of a node whose 20 honest peers, from 20 groups, connected first.
    """

    def scenario(self, seed: int) -> tuple[list[object], list[EvictionCandidate]]:
        rng = random.Random(seed)
        honest = [
            cand(
                f"h{i}",
                T0 + i * 60,
                ping=None if i % 7 == 3 else rng.uniform(0.02, 0.3),
                group=rng.getrandbits(64),
                addr=T0 + rng.randrange(3600) if i % 5 == 0 else 0.0,
            )
            for i in range(20)
        ]
        attackerGroups = [rng.getrandbits(64), rng.getrandbits(64)]
        now = T0 + 86400
        attackers = [
            cand(
                f"x{j}",
                now - 600 + j,
                ping=rng.uniform(0.5, 3.0),
                group=attackerGroups[j % 2],
                # The attacker relays addresses new to us, to win rule 3.
                addr=now,
            )
            for j in range(80)
        ]
        peers = honest + attackers
        evicted = []
        for n in range(200):
            now += 10
            unprotected = ids(evictable(peers))
            victim = select_to_evict(peers)
            self.assertIn(victim, unprotected)
            evicted.append(victim)
            peers = [p for p in peers if p.id != victim]
            peers.append(
                cand(f"y{n}", now, ping=rng.uniform(0.5, 3.0),
                     group=attackerGroups[n % 2], addr=now)
            )
            self.assertEqual(len(peers), 100)
        return evicted, [p for p in peers if p.id in ids(honest)]

    def test_honestPeersSurvive(self):
        for seed in range(5):
            evicted, honestLeft = self.scenario(seed)
            self.assertGreaterEqual(len(honestLeft), 15, seed)
            self.assertEqual(len(evicted), 200)

    def test_protectedHonestPeersAreNeverEvicted(self):
        # Honest peers protected by rule 1, 2 or 4 at the start: those in the
        # 4 highest groups overall, the 8 fastest (every honest ping beats
        # every attacker's), and all others, being older than any attacker,
        # by the older half. None is ever evicted.
        for seed in range(5):
            evicted, honestLeft = self.scenario(seed)
            self.assertFalse([v for v in evicted if str(v).startswith("h")], seed)
            self.assertEqual(len(honestLeft), 20)

    def test_longLivedAttackersStillLoseToTheRules(self):
        # Here 30 attacker connections are older than every honest peer, so
        # they take part of the older half; the fastest honest peers are
        # still never evicted, and the rest of the older half still has
        # room for the other honest ones.
        rng = random.Random(9)
        honest = [
            cand(f"h{i}", T0 + 10_000 + i * 60, ping=rng.uniform(0.02, 0.3),
                 group=rng.getrandbits(64))
            for i in range(20)
        ]
        attackerGroups = [rng.getrandbits(64), rng.getrandbits(64)]
        old = [
            cand(f"o{j}", T0 + j, ping=rng.uniform(0.5, 3.0), group=attackerGroups[j % 2])
            for j in range(30)
        ]
        now = T0 + 86400
        young = [
            cand(f"x{j}", now - 600 + j, ping=rng.uniform(0.5, 3.0),
                 group=attackerGroups[j % 2], addr=now)
            for j in range(50)
        ]
        peers = honest + old + young
        fastestHonest = ids(sorted(honest, key=lambda c: c.min_ping_s)[:8])
        for n in range(200):
            now += 10
            victim = select_to_evict(peers)
            self.assertNotIn(victim, fastestHonest)
            peers = [p for p in peers if p.id != victim]
            peers.append(
                cand(f"y{n}", now, ping=rng.uniform(0.5, 3.0),
                     group=attackerGroups[n % 2], addr=now)
            )
        self.assertGreaterEqual(len(ids(peers) & ids(honest)), 15)
