"""
The address manager: a port of Bitcoin Core's addrman (C{src/addrman.cpp},
C{AddrManImpl}), which decides which peer addresses a node remembers and
which one it dials next, in a way an attacker flooding it with addresses
cannot easily take over.

Like Bitcoin Core's, this module does address bookkeeping and selection only;
connection policy (how many to dial, when, what is excluded) lives in
L{bitp2p.node}. Nothing here does I/O or reads a clock: every method that
needs the time takes C{now} (unix seconds), and all randomness comes from the
injected C{random.Random}, so behaviour is reproducible in tests.

Tables: every known address (L{AddrInfo}) is in exactly one of two tables of
fixed-size buckets (C{ADDRMAN_BUCKET_SIZE} slots each). The I{new} table
(C{ADDRMAN_NEW_BUCKET_COUNT} buckets) holds addresses we heard of but never
reached; one address may sit in up to C{ADDRMAN_NEW_BUCKETS_PER_ADDRESS} new
buckets (its C{ref_count}), having been heard of from several sources. The
I{tried} table (C{ADDRMAN_TRIED_BUCKET_COUNT} buckets) holds addresses we
connected to successfully, each in a single slot. Nothing is ever added when
its slot is taken, except by the replacement rules below, so the tables, and
memory, stay bounded.

Bucketing: where an address goes is a keyed hash (BLAKE2b with a secret
32-byte key drawn at creation and kept across restarts), so an attacker
cannot aim at slots. An address heard from a source lands in one of at most
C{ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP} (64) new buckets chosen by the pair
(address group, source group), groups being IPv4 /16 or IPv6 /32 networks:
one source network can fill at most 64 of the 1024 new buckets, however many
addresses it sends. An address of one group lands in one of at most
C{ADDRMAN_TRIED_BUCKETS_PER_GROUP} (8) tried buckets. The slot inside a bucket
is a hash of (table, bucket, address). In the new table a slot holding
another address is taken over only if that address is terrible, or it also
sits in other buckets while the newcomer sits in none; an address that ends
up in no bucket is forgotten. Hearing again of a known address puts it in a
further bucket with probability C{1/2**ref_count} only, and only if the news
is fresher (its C{last_seen} is then refreshed at most hourly, daily for
addresses not seen in the last day, less the penalty of the relay).

Selection (L{AddrMan.select}): with equal chance the new or the tried table
(unless one is empty, or only new addresses are wanted), then a random
non-empty bucket and a random position in it, scanning forward to the first
occupied slot; that entry is taken with probability C{chance * factor}, else
the factor grows by 1.2 and the draw is repeated. C{chance} is 1, times 0.01
if it was tried in the last 10 minutes, times C{0.66**min(attempts, 8)}.
Attempts (L{AddrMan.attempt}) count at most once between two successful
connections to any address, so a node that is offline for a while does not
ruin its whole table.

Terrible entries (L{AddrInfo.is_terrible}), which are neither shared nor
protected when their slot is wanted: never one tried in the last minute;
otherwise one seen more than 10 minutes in the future, never seen or not
seen for C{ADDRMAN_HORIZON_S} (30 days), never successful after
C{ADDRMAN_RETRIES} (3) attempts, or with C{ADDRMAN_MAX_FAILURES} (10)
attempts and no success for C{ADDRMAN_MIN_FAIL_S} (a week).

Collisions: when an address that worked (L{AddrMan.good}) would move into a
tried slot held by another address, the move waits (up to
C{ADDRMAN_SET_TRIED_COLLISION_SIZE} pending ones) and the node is asked to
test the old occupant (L{AddrMan.select_tried_collision}).
L{AddrMan.resolve_collisions} then keeps the old one if it worked in the
last C{ADDRMAN_REPLACEMENT_S} (4 hours), and replaces it if it was tried
in that time, more than a minute ago, without success, or if the test did
not happen within C{ADDRMAN_TEST_WINDOW_S} (40 minutes). A tried entry
replaced goes back to the new table, into the bucket of its first source.

Getaddr answers (L{AddrMan.get_addr}) are a random sample, drawn by a partial
Fisher-Yates shuffle over the list of all entries, of at most
C{GETADDR_MAX_PCT} percent of the table (at least C{GETADDR_MIN_COUNT} if
there are that many, at most C{GETADDR_MAX_REPLY}), leaving terrible entries
out.

Persistence (L{AddrMan.to_json}, L{AddrMan.from_json}): the key, the table
geometry and every entry with its new buckets are saved. On load with the
same geometry entries go back to the slots they had; otherwise (or when a
slot is taken) they are re-bucketed from their first source, as Bitcoin Core
does when its bucketing changes. Bad single entries are skipped.
L{AddrMan.check} re-verifies every invariant (Bitcoin Core's
C{CheckAddrman}).

Not in Bitcoin Core: L{AddrInfo.failures} (consecutive failed dials, for the
node's retry backoff), L{AddrMan.failed} and L{AddrMan.remove}.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from typing import Any, Callable, Iterable, Iterator

import attrs

from bitp2p.address import Address, AddressError, is_routable, network_group, parse_address
from bitp2p.constants import (
    ADDRESS_CACHE_SIZE,
    ADDRMAN_BUCKET_SIZE,
    ADDRMAN_HORIZON_S,
    ADDRMAN_MAX_FAILURES,
    ADDRMAN_MIN_FAIL_S,
    ADDRMAN_NEW_BUCKET_COUNT,
    ADDRMAN_NEW_BUCKETS_PER_ADDRESS,
    ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP,
    ADDRMAN_REPLACEMENT_S,
    ADDRMAN_RETRIES,
    ADDRMAN_SET_TRIED_COLLISION_SIZE,
    ADDRMAN_TEST_WINDOW_S,
    ADDRMAN_TRIED_BUCKET_COUNT,
    ADDRMAN_TRIED_BUCKETS_PER_GROUP,
    GETADDR_MAX_PCT,
    GETADDR_MAX_REPLY,
    GETADDR_MIN_COUNT,
)

KEY_BYTES = 32
# An entry tried this recently is never terrible (Bitcoin: 1 min).
_RECENT_TRY_S = 60
# last_seen further than this in the future makes an entry terrible.
_FUTURE_TERRIBLE_S = 10 * 60
# Tried this recently: chance() is multiplied by _RECENT_TRY_FACTOR.
_RECENT_CHANCE_S = 10 * 60
_RECENT_TRY_FACTOR = 0.01
_ATTEMPT_FACTOR = 0.66
_MAX_ATTEMPT_PENALTIES = 8
# add(): an address whose time is this recent is "currently online" and has
# its last_seen refreshed hourly, others daily.
_ONLINE_S = 24 * 3600
_ONLINE_UPDATE_S = 3600
_OFFLINE_UPDATE_S = 24 * 3600
# connected(): last_seen is refreshed at most this often.
_CONNECTED_UPDATE_S = 20 * 60
# resolve_collisions(): an old tried entry gets this long to answer a test.
_COLLISION_GRACE_S = 60
# select(): rounds before giving up on the acceptance test (the chance factor
# grows 1.2x per round, so fewer than 60 are ever needed).
_SELECT_MAX_ROUNDS = 10_000
_CHANCE_BITS = 30
_CHANCE_SCALE = 1 << _CHANCE_BITS
# chance()'s attempt penalties, 0.66 ** attempts for attempts 0..8.
_ATTEMPT_CHANCES = tuple(_ATTEMPT_FACTOR**a for a in range(_MAX_ATTEMPT_PENALTIES + 1))


# The numbers every address manager keeps by the thousand (bucket numbers,
# positions in the list of all entries, indexes of non-empty buckets), as
# one shared object each: an int above 256 is otherwise an object of its
# own (28 bytes) wherever it is stored, and a simulation runs thousands of
# nodes of thousands of entries. Grown on demand by _sharedInts.
_INTS: list[int] = []


def _sharedInts(n: int) -> list[int]:
    """
    The list of shared ints, holding at least C{0 .. n - 1} (C{_INTS[i]}
    is C{i}).
    """
    if len(_INTS) < n:
        _INTS.extend(range(len(_INTS), max(n, 2 * len(_INTS))))
    return _INTS


@functools.lru_cache(maxsize=None)
def _bitsOf(bucket_size: int) -> tuple[int, ...]:
    """
    The masks of one position, C{1 << pos} for each position of a bucket,
    shared (like L{_INTS}): most buckets hold a single entry.
    """
    return tuple(1 << pos for pos in range(bucket_size))


class AddrManError(ValueError):
    """
    An invariant of the address manager is broken (L{AddrMan.check}), or
    saved data is structurally unusable (L{AddrMan.from_json}).
    """


@attrs.define(slots=True, eq=False, weakref_slot=False)
class AddrInfo:
    """
    What the address manager knows of one address.

    @ivar address: the address.
    @ivar source: the address of the peer that first told us of it (for our
        own dials and seeds: the address itself); its group picks the new
        bucket the entry returns to when evicted from the tried table.
    @ivar last_seen: when it was last heard to be alive (Bitcoin's C{nTime}:
        the time a peer gave, less the 2-hour penalty of a relayed address).
    @ivar heard: when this node last heard of it (a peer's C{addr}, a seed,
        its own dial), by its own clock, since it started (0.0: not since;
        not in Bitcoin Core, not saved). What a person asks of an address
        (the dashboard's "heard"); no decision reads it.
    @ivar last_tried: when we last tried to connect (Bitcoin's C{m_last_try}).
    @ivar last_count_attempt: when an attempt was last counted.
    @ivar last_success: when a connection to it last worked.
    @ivar attempts: attempts since the last success, counted at most once
        between two successes with any address (see L{AddrMan.attempt}).
    @ivar failures: consecutive failed dials since the last success (not in
        Bitcoin Core; for the node's retry backoff).
    @ivar ref_count: how many new buckets hold it (0 when in tried).
    @ivar in_tried: whether it is in the tried table.
    @ivar _pos: the address manager's bookkeeping: the entry's index in
        its list of all entries (Bitcoin's C{nRandomPos}).
    @ivar _refs: the address manager's bookkeeping: the new buckets that
        hold the entry, kept as L{_refsSet} reads them (see
        L{AddrMan._put_new}).
    """

    address: Address
    source: Address
    last_seen: float = 0.0
    last_tried: float = 0.0
    last_count_attempt: float = 0.0
    last_success: float = 0.0
    heard: float = 0.0
    attempts: int = 0
    failures: int = 0
    ref_count: int = 0
    in_tried: bool = False
    # Kept here rather than in maps of the address manager: a few thousand
    # entries per node, on every node of a simulated network.
    _pos: int = attrs.field(init=False, default=0, repr=False)
    _refs: int | tuple[int, ...] | set[int] | None = attrs.field(
        init=False, default=None, repr=False
    )

    def is_terrible(self, now: float) -> bool:
        """
        Whether the entry is not worth keeping or sharing (Bitcoin's
        C{IsTerrible}).

        @param now: the current time.
        """
        if now - self.last_tried <= _RECENT_TRY_S:
            return False
        if self.last_seen > now + _FUTURE_TERRIBLE_S:
            return True
        if self.last_seen == 0 or now - self.last_seen > ADDRMAN_HORIZON_S:
            return True
        if self.last_success == 0 and self.attempts >= ADDRMAN_RETRIES:
            return True
        if now - self.last_success > ADDRMAN_MIN_FAIL_S and self.attempts >= ADDRMAN_MAX_FAILURES:
            return True
        return False

    def chance(self, now: float) -> float:
        """
        The relative chance of being selected (Bitcoin's C{GetChance}).

        @param now: the current time.
        @return: 1.0, times 0.01 if tried in the last 10 minutes, times
            C{0.66 ** min(attempts, 8)}.
        """
        chance = 1.0
        if now - self.last_tried < _RECENT_CHANCE_S:
            chance *= _RECENT_TRY_FACTOR
        return chance * _ATTEMPT_FACTOR ** min(self.attempts, _MAX_ATTEMPT_PENALTIES)


# The longest history of additions and removals kept for an entry's new
# buckets (see AddrMan._put_new) before it is replaced by the set itself.
_REFS_HISTORY = 12


def _refsSet(refs: int | tuple[int, ...] | set[int] | None) -> set[int]:
    """
    The set of new buckets an entry's C{_refs} stand for, as it would be had
    it been kept all along: none (L{None}); a bucket number, the set of
    that one bucket; a tuple, a history of additions of buckets C{b >= 0}
    and removals of C{~b < 0} to replay on an empty set; or that set
    itself (not a copy).
    """
    if refs is None:
        return set()
    if type(refs) is int:
        return {refs}
    if type(refs) is tuple:
        buckets: set[int] = set()
        for op in refs:
            if op >= 0:
                buckets.add(op)
            else:
                buckets.discard(~op)
        return buckets
    return refs


class _Table:
    """
    One table of buckets (Bitcoin's C{vvNew} or C{vvTried}), stored sparsely
    and compactly: each non-empty bucket is one tuple C{(mask, entry, ...)},
    C{mask} having bit C{pos} set for each occupied position and the
    entries following in position order (the entry at C{pos} is the one
    after as many entries as C{mask} has bits below C{pos}); empty buckets
    are absent. The list of non-empty buckets is kept so that one can be
    drawn uniformly in O(1).

    A bucket holds a handful of entries at most (a few thousand addresses
    over 1024 buckets), so a tuple rebuilt on each change costs less, in
    memory and time, than a dictionary per bucket or per slot.
    """

    __slots__ = ("bucket_count", "bucket_size", "buckets", "count", "_nonempty", "_index", "_bits")

    def __init__(self, bucket_count: int, bucket_size: int) -> None:
        self.bucket_count = bucket_count
        self.bucket_size = bucket_size
        self._bits = _bitsOf(bucket_size)
        _sharedInts(bucket_count)  # its bucket numbers and indexes
        self.buckets: dict[int, tuple[Any, ...]] = {}
        self.count = 0  # occupied slots
        self._nonempty: list[int] = []
        self._index: dict[int, int] = {}

    def get(self, bucket: int, pos: int) -> AddrInfo | None:
        held = self.buckets.get(bucket)
        if held is None:
            return None
        mask = held[0]
        bit = 1 << pos
        if not mask & bit:
            return None
        return held[1 + (mask & (bit - 1)).bit_count()]

    def put(self, bucket: int, pos: int, info: AddrInfo) -> None:
        """
        Fill an empty slot.
        """
        bit = self._bits[pos]
        held = self.buckets.get(bucket)
        if held is None:
            self.buckets[bucket] = (bit, info)
            self._index[bucket] = _INTS[len(self._nonempty)]
            self._nonempty.append(bucket)
        else:
            mask = held[0]
            if mask & bit:
                raise KeyError(f"slot [{bucket}][{pos}] is taken")
            i = 1 + (mask & (bit - 1)).bit_count()
            self.buckets[bucket] = (mask | bit, *held[1:i], info, *held[i:])
        self.count += 1

    def clear(self, bucket: int, pos: int) -> None:
        """
        Empty an occupied slot.
        """
        held = self.buckets[bucket]
        mask = held[0]
        bit = 1 << pos
        if not mask & bit:
            raise KeyError(f"slot [{bucket}][{pos}] is empty")
        self.count -= 1
        mask ^= bit
        if mask:
            if len(held) == 3:  # one left: its shared mask
                mask = self._bits[mask.bit_length() - 1]
            i = 1 + (mask & (bit - 1)).bit_count()
            self.buckets[bucket] = (mask, *held[1:i], *held[i + 1 :])
            return
        del self.buckets[bucket]
        index = self._index.pop(bucket)
        last = self._nonempty.pop()
        if last != bucket:
            self._nonempty[index] = last
            self._index[last] = index

    def random_bucket(self, rng: random.Random) -> int:
        """
        A uniformly chosen non-empty bucket (the table must not be empty).
        """
        return self._nonempty[rng.randrange(len(self._nonempty))]

    def first_from(self, bucket: int, initial: int) -> AddrInfo:
        """
        The entry of the first occupied slot of a non-empty C{bucket} at or
        after position C{initial}, wrapping around at the end.
        """
        held = self.buckets[bucket]
        above = held[0] >> initial
        # No bit at or above initial: the first entry; else the one after
        # the entries below initial.
        return held[len(held) - above.bit_count()] if above else held[1]

    def slots(self) -> Iterator[tuple[int, int, AddrInfo]]:
        """
        Every occupied slot, as C{(bucket, position, entry)}.
        """
        for bucket, held in self.buckets.items():
            mask = held[0]
            for info in held[1:]:
                low = mask & -mask
                yield bucket, low.bit_length() - 1, info
                mask ^= low

    def check(self, name: str) -> None:
        """
        Verify the table's own bookkeeping.

        @raise AddrManError: if it is inconsistent.
        """
        if sorted(self._nonempty) != sorted(self.buckets) or len(self._index) != len(
            self._nonempty
        ):
            raise AddrManError(f"{name} table: list of non-empty buckets is wrong")
        for index, bucket in enumerate(self._nonempty):
            if self._index.get(bucket) != index:
                raise AddrManError(f"{name} table: bucket {bucket} has a wrong index")
        count = 0
        for bucket, held in self.buckets.items():
            if not 0 <= bucket < self.bucket_count:
                raise AddrManError(f"{name} table: bucket {bucket} out of range")
            mask = held[0]
            if not mask:
                raise AddrManError(f"{name} table: empty bucket {bucket} is listed")
            if mask >> self.bucket_size or mask < 0:
                raise AddrManError(f"{name} table: position out of range in bucket {bucket}")
            if mask.bit_count() != len(held) - 1:
                raise AddrManError(f"{name} table: bucket {bucket} holds a wrong number of entries")
            count += len(held) - 1
        if count != self.count:
            raise AddrManError(f"{name} table: counts {self.count} slots, holds {count}")


def _isPlainRandom(rng: random.Random) -> bool:
    """
    Whether C{rng.randrange(n)} is C{random.Random}'s own: C{getrandbits}
    of C{n.bit_length()} bits until one is below C{n}, which L{AddrMan}'s
    hot paths then draw themselves, the same numbers without the calls.
    """
    cls = type(rng)
    return (
        isinstance(rng, random.Random)
        and cls.randrange is random.Random.randrange
        and getattr(cls, "_randbelow", None) is getattr(random.Random, "_randbelow_with_getrandbits", 0)
    )


# What is hashed for bucketing is a sequence of parts, each framed as its
# 4-byte length and its bytes: an address (its wire form), a network group,
# a number (8 bytes), "N" or "K". The framed parts that come back again and
# again (the same addresses, groups and bucket numbers, on every node) are
# remembered, shared by every address manager (they hold no secret).


def _framed(part: bytes) -> bytes:
    return len(part).to_bytes(4, "big") + part


@functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def _framedAddress(address: Address) -> bytes:
    return _framed(str(address).encode())


@functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def _framedGroup(group: str) -> bytes:
    return _framed(group.encode())


@functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def _framedInt(n: int) -> bytes:
    return _framed(n.to_bytes(8, "big"))


_FRAMED_NEW = _framed(b"N")
_FRAMED_TRIED = _framed(b"K")


class AddrMan:
    """
    Known addresses in a new and a tried table of buckets.
    """

    def __init__(
        self,
        rng: random.Random | None = None,
        key: bytes | None = None,
        *,
        new_buckets: int = ADDRMAN_NEW_BUCKET_COUNT,
        tried_buckets: int = ADDRMAN_TRIED_BUCKET_COUNT,
        bucket_size: int = ADDRMAN_BUCKET_SIZE,
        group_of: Callable[[Address], str] = network_group,
    ) -> None:
        """
        @param rng: the source of all randomness.
        @param key: the 32-byte bucketing secret; if L{None}, drawn from
            C{rng}.
        @param new_buckets: buckets in the new table (tests use fewer).
        @param tried_buckets: buckets in the tried table.
        @param bucket_size: slots per bucket.
        @param group_of: the network group of an address (the node makes
            its own local addresses groups of their own; see L{regroup}).
        @raise ValueError: if the key or the geometry is unusable.
        """
        for name, value in (
            ("new_buckets", new_buckets),
            ("tried_buckets", tried_buckets),
            ("bucket_size", bucket_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        self._rng = rng if rng is not None else random.Random()
        self._plainRandom = _isPlainRandom(self._rng)
        if key is None:
            key = self._rng.randbytes(KEY_BYTES)
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ValueError(f"key must be {KEY_BYTES} bytes")
        self._key = key
        self._hasher = hashlib.blake2b(key=key, digest_size=8)
        self._group_of = group_of
        self._new_count = new_buckets
        self._tried_count = tried_buckets
        self._bucket_size = bucket_size
        # Bitcoin's mapInfo/mapAddr and vRandom (each entry's nRandomPos,
        # and the new buckets it sits in, are on the entry: AddrInfo._pos,
        # AddrInfo._refs).
        self._entries: dict[Address, AddrInfo] = {}
        self._random: list[AddrInfo] = []
        self._new = _Table(new_buckets, bucket_size)
        self._tried = _Table(tried_buckets, bucket_size)
        self._n_tried = 0
        # Pending tried collisions, in insertion order (Bitcoin's
        # m_tried_collisions).
        self._collisions: dict[Address, AddrInfo] = {}
        self._last_good = 1.0

    @property
    def key(self) -> bytes:
        return self._key

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, address: object) -> bool:
        return address in self._entries

    def __iter__(self) -> Iterator[AddrInfo]:
        return iter(list(self._entries.values()))

    def get(self, address: Address) -> AddrInfo | None:
        return self._entries.get(address)

    @property
    def size_new(self) -> int:
        return len(self._entries) - self._n_tried

    @property
    def size_tried(self) -> int:
        return self._n_tried

    # Bucketing

    def _groupKey(self, address: Address) -> bytes:
        """
        The framed network group of C{address} (see L{_framed}).
        """
        return _framedGroup(self._group_of(address))

    def regroup(self, group_of: Callable[[Address], str]) -> None:
        """
        Change how addresses are grouped, moving every entry to where the
        new grouping puts it (tried entries whose slot is taken go back to
        "new"): an address manager rebuilt from its own L{to_json}.
        """
        rebuilt = type(self).from_json(
            self.to_json(),
            self._rng,
            new_buckets=self._new_count,
            tried_buckets=self._tried_count,
            bucket_size=self._bucket_size,
            group_of=group_of,
        )
        for name in rebuilt.__dict__:
            setattr(self, name, getattr(rebuilt, name))

    def _hash(self, data: bytes) -> int:
        """
        The keyed hash of C{data}, framed parts joined (BLAKE2b, 8 bytes,
        keyed with the secret: a copy of a hasher that has the key already).
        """
        hasher = self._hasher.copy()
        hasher.update(data)
        return int.from_bytes(hasher.digest(), "big")

    def _tried_bucket(self, address: Address) -> int:
        h1 = self._hash(_framedAddress(address))
        h2 = self._hash(
            self._groupKey(address) + _framedInt(h1 % ADDRMAN_TRIED_BUCKETS_PER_GROUP)
        )
        return _INTS[h2 % self._tried_count]

    def _new_bucket(self, address: Address, source: Address) -> int:
        return self._newBucketOf(self._groupKey(address), self._groupKey(source))

    def _newBucketOf(self, group: bytes, source_group: bytes) -> int:
        """
        The new bucket of an address of (framed) group C{group} heard of
        from one of C{source_group}.
        """
        h1 = self._hash(group + source_group)
        h2 = self._hash(source_group + _framedInt(h1 % ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP))
        return _INTS[h2 % self._new_count]

    def _position(self, new: bool, bucket: int, address: Address) -> int:
        return self._hash(
            (_FRAMED_NEW if new else _FRAMED_TRIED) + _framedInt(bucket) + _framedAddress(address)
        ) % (self._bucket_size)

    def _tried_slot(self, address: Address) -> tuple[int, int]:
        bucket = self._tried_bucket(address)
        return bucket, self._position(False, bucket, address)

    # Entry bookkeeping (Create, Delete, SwapRandom, ClearNew, MakeTried)

    def _create(self, info: AddrInfo) -> None:
        self._entries[info.address] = info
        info._pos = _sharedInts(len(self._random) + 1)[len(self._random)]
        self._random.append(info)
        info._refs = None

    def _swap_random(self, i: int, j: int) -> None:
        if i == j:
            return
        rnd = self._random
        a, b = rnd[i], rnd[j]
        rnd[i], rnd[j] = b, a
        a._pos = _INTS[j]
        b._pos = _INTS[i]

    def _delete(self, info: AddrInfo) -> None:
        """
        Forget an entry that is in no table slot.
        """
        address = info.address
        self._swap_random(info._pos, len(self._random) - 1)
        self._random.pop()
        del self._entries[address]
        info._refs = None
        self._collisions.pop(address, None)

    @staticmethod
    def _newBucketsOf(info: AddrInfo) -> set[int]:
        """
        The new buckets that hold C{info} (a new set).
        """
        refs = info._refs
        return set(refs) if type(refs) is set else _refsSet(refs)

    def _put_new(self, bucket: int, pos: int, info: AddrInfo) -> None:
        self._new.put(bucket, pos, info)
        self._noteRefs(info, bucket)
        info.ref_count += 1

    @staticmethod
    def _noteRefs(info: AddrInfo, op: int) -> None:
        """
        Add bucket C{op >= 0} to the new buckets of C{info}, or remove
        bucket C{~op} (C{op < 0}).

        They were a set per entry (216 bytes), whose order of iteration,
        which depends on its history of additions and removals since it
        was made or emptied, is the order L{_leave_new} empties them in, and
        so the order of the list of non-empty buckets L{select} draws from.
        So the history is what is kept (see L{_refsSet}): a single bucket
        as the bare number, then a tuple of numbers, replayed on a new set
        when the order is needed, which makes the very set it was; a long
        history (an entry that came and went in many buckets) is replaced
        by the set itself.
        """
        refs = info._refs
        if refs is None:
            info._refs = op
        elif type(refs) is int:
            info._refs = (refs, op)
        elif type(refs) is tuple and len(refs) < _REFS_HISTORY:
            info._refs = (*refs, op)
        else:
            buckets = _refsSet(refs)
            if op >= 0:
                buckets.add(op)
            else:
                buckets.discard(~op)
            info._refs = buckets

    def _clear_new(self, bucket: int, pos: int) -> None:
        """
        Empty a new-table slot, forgetting its entry if it was its last.
        """
        info = self._new.get(bucket, pos)
        if info is None:
            return
        self._new.clear(bucket, pos)
        info.ref_count -= 1
        if info.ref_count == 0:
            self._delete(info)
        else:
            self._noteRefs(info, ~bucket)

    def _leave_new(self, info: AddrInfo) -> None:
        """
        Take an entry out of every new bucket it sits in (the entry itself
        stays).
        """
        for bucket in _refsSet(info._refs):
            self._new.clear(bucket, self._position(True, bucket, info.address))
        info._refs = None
        info.ref_count = 0

    def _make_tried(self, info: AddrInfo) -> None:
        """
        Move a new entry into its tried slot, sending the entry there back to
        the new table.
        """
        address = info.address
        self._leave_new(info)
        bucket, pos = self._tried_slot(address)
        old = self._tried.get(bucket, pos)
        if old is not None:
            self._tried.clear(bucket, pos)
            old.in_tried = False
            self._n_tried -= 1
            new_bucket = self._new_bucket(old.address, old.source)
            new_pos = self._position(True, new_bucket, old.address)
            self._clear_new(new_bucket, new_pos)
            self._put_new(new_bucket, new_pos, old)
        self._tried.put(bucket, pos, info)
        info.in_tried = True
        self._n_tried += 1

    # Bitcoin's public operations

    def add(
        self,
        entries: Iterable[tuple[Address, float]],
        source: Address,
        now: float,
        penalty_s: float = 0.0,
    ) -> int:
        """
        Learn addresses from a peer (Bitcoin's C{Add}).

        @param entries: C{(address, time_seen)} pairs. Times are stored as
            given (less the penalty): clamping times in the future is the
            caller's job.
        @param source: the peer that sent them (for our own dials and seeds:
            the address itself).
        @param now: the current time.
        @param penalty_s: subtracted from the times of addresses other than
            C{source} itself.
        @return: how many were put into a new bucket. Unroutable addresses
            are skipped.
        """
        penalty = float(penalty_s)
        # The source's group, and the new bucket of each address group from
        # it, computed once for the batch (up to 1000 entries of one addr
        # message).
        source_group = self._groupKey(source)
        buckets: dict[bytes, int] = {}
        added = 0
        for address, seen in entries:
            added += self._add_single(
                address, source, float(seen), penalty, now, source_group, buckets
            )
        return added

    def _add_single(
        self,
        address: Address,
        source: Address,
        seen: float,
        penalty: float,
        now: float,
        source_group: bytes,
        buckets: dict[bytes, int],
    ) -> bool:
        if not is_routable(address):
            return False
        if address == source:
            penalty = 0.0
        info = self._entries.get(address)
        if info is not None:
            info.heard = now
            update = _ONLINE_UPDATE_S if now - seen < _ONLINE_S else _OFFLINE_UPDATE_S
            if info.last_seen < seen - update - penalty:
                info.last_seen = max(0.0, seen - penalty)
            if seen <= info.last_seen or info.in_tried:
                return False
            if info.ref_count >= ADDRMAN_NEW_BUCKETS_PER_ADDRESS:
                return False
            if info.ref_count > 0 and self._rng.randrange(1 << info.ref_count) != 0:
                return False
        else:
            info = AddrInfo(address, source, last_seen=max(0.0, seen - penalty), heard=now)
            self._create(info)
        group = self._groupKey(address)
        bucket = buckets.get(group)
        if bucket is None:
            bucket = buckets[group] = self._newBucketOf(group, source_group)
        pos = self._position(True, bucket, address)
        existing = self._new.get(bucket, pos)
        if existing is info:
            return False
        insert = existing is None or (
            existing.is_terrible(now) or (existing.ref_count > 1 and info.ref_count == 0)
        )
        if insert:
            self._clear_new(bucket, pos)
            self._put_new(bucket, pos, info)
        elif info.ref_count == 0:
            self._delete(info)
        return insert

    def good(self, address: Address, now: float, test_before_evict: bool = True) -> bool:
        """
        A connection to C{address} worked (Bitcoin's C{Good}): it moves to
        the tried table, unless its slot there is taken and
        C{test_before_evict}, in which case a tried collision is queued.

        @return: whether it was moved to the tried table.
        """
        self._last_good = now
        info = self._entries.get(address)
        if info is None:
            return False
        return self._good(info, now, test_before_evict)

    def _good(self, info: AddrInfo, now: float, test_before_evict: bool) -> bool:
        self._last_good = now
        info.last_success = now
        info.last_tried = now
        info.attempts = 0
        info.failures = 0
        # last_seen is not updated, so as not to leak who we are connected to.
        if info.in_tried or info.ref_count <= 0:
            return False
        bucket, pos = self._tried_slot(info.address)
        if test_before_evict and self._tried.get(bucket, pos) is not None:
            if len(self._collisions) < ADDRMAN_SET_TRIED_COLLISION_SIZE:
                self._collisions[info.address] = info
            return False
        self._make_tried(info)
        return True

    def attempt(self, address: Address, now: float, count_failure: bool = True) -> None:
        """
        We are trying to connect to C{address} (Bitcoin's C{Attempt}).

        @param count_failure: whether the attempt counts towards
            C{attempts}; it counts at most once since the last success with
            any address.
        """
        info = self._entries.get(address)
        if info is None:
            return
        info.last_tried = now
        if count_failure and info.last_count_attempt < self._last_good:
            info.last_count_attempt = now
            info.attempts += 1

    def failed(self, address: Address, now: float) -> None:
        """
        A dial to C{address} failed: one more consecutive failure (not in
        Bitcoin Core; L{good} resets the count).

        @param now: the current time (unused; for symmetry).
        """
        info = self._entries.get(address)
        if info is not None:
            info.failures += 1

    def connected(self, address: Address, now: float) -> None:
        """
        We are (still) connected to C{address} (Bitcoin's C{Connected}):
        refresh its C{last_seen}, at most every 20 minutes.
        """
        info = self._entries.get(address)
        if info is not None and now - info.last_seen > _CONNECTED_UPDATE_S:
            info.last_seen = now

    def select(self, now: float, new_only: bool = False) -> AddrInfo | None:
        """
        Choose an address to dial (Bitcoin's C{Select}).

        @param new_only: choose from the new table only.
        @return: the entry (not a copy), or L{None} if there is none to
            choose from.
        """
        if not self._entries:
            return None
        size_new, size_tried = self.size_new, self._n_tried
        if new_only and size_new == 0:
            return None
        if new_only or size_tried == 0:
            table = self._new
        elif size_new == 0:
            table = self._tried
        else:
            table = self._tried if self._rng.getrandbits(1) else self._new
        if self._plainRandom:
            return self._selectIn(table, now)
        size = self._bucket_size
        factor = 1.0
        candidate: AddrInfo | None = None
        for _ in range(_SELECT_MAX_ROUNDS):
            # A uniformly chosen non-empty bucket: what Bitcoin's retrying
            # on empty buckets amounts to, without the retries.
            bucket = table.random_bucket(self._rng)
            candidate = table.first_from(bucket, self._rng.randrange(size))
            threshold = factor * candidate.chance(now) * (1 << _CHANCE_BITS)
            if self._rng.getrandbits(_CHANCE_BITS) < threshold:
                return candidate
            factor *= 1.2
        return candidate

    def _selectIn(self, table: _Table, now: float) -> AddrInfo | None:
        """
        L{select}'s rounds in C{table}, for a plain C{random.Random}: the
        same rounds, drawing the very same random numbers (C{randrange(n)}
        is C{random.Random}'s C{_randbelow_with_getrandbits}: C{getrandbits}
        of C{n.bit_length()} bits until one is below C{n}), without the
        calls. Thousands of rounds are run per node-minute while most
        entries were tried in the last 10 minutes (chance 0.01), so each
        round's cost counts.
        """
        getrandbits = self._rng.getrandbits
        nonempty = table._nonempty
        buckets = table.buckets
        count = len(nonempty)  # the table does not change meanwhile
        countBits = count.bit_length()
        size = self._bucket_size
        sizeBits = size.bit_length()
        factor = 1.0
        candidate: AddrInfo | None = None
        for _ in range(_SELECT_MAX_ROUNDS):
            r = getrandbits(countBits)
            while r >= count:
                r = getrandbits(countBits)
            held = buckets[nonempty[r]]
            initial = getrandbits(sizeBits)
            while initial >= size:
                initial = getrandbits(sizeBits)
            # table.first_from(bucket, initial), inlined.
            above = held[0] >> initial
            candidate = held[len(held) - above.bit_count()] if above else held[1]
            # candidate.chance(now), inlined.
            attempts = candidate.attempts
            chance = (
                _ATTEMPT_CHANCES[attempts]
                if 0 <= attempts <= _MAX_ATTEMPT_PENALTIES
                else _ATTEMPT_FACTOR ** min(attempts, _MAX_ATTEMPT_PENALTIES)
            )
            if now - candidate.last_tried < _RECENT_CHANCE_S:
                chance = _RECENT_TRY_FACTOR * chance
            if getrandbits(_CHANCE_BITS) < factor * chance * _CHANCE_SCALE:
                return candidate
            factor *= 1.2
        return candidate

    def select_tried_collision(self, now: float) -> AddrInfo | None:
        """
        A random pending tried collision's old side (Bitcoin's
        C{SelectTriedCollision}): the tried entry the node should test.

        @param now: the current time (unused; for symmetry).
        @return: the entry occupying the tried slot wanted by a pending
            collision, or L{None}.
        """
        if not self._collisions:
            return None
        pending = list(self._collisions.items())
        address, info = pending[self._rng.randrange(len(pending))]
        if self._entries.get(address) is not info:
            del self._collisions[address]
            return None
        return self._tried.get(*self._tried_slot(address))

    def resolve_collisions(self, now: float) -> None:
        """
        Settle pending tried collisions (Bitcoin's C{ResolveCollisions}).
        """
        for address, info in list(self._collisions.items()):
            if self._collisions.get(address) is not info:
                continue  # forgotten meanwhile
            erase = False
            if self._entries.get(address) is not info:
                erase = True
            else:
                old = self._tried.get(*self._tried_slot(address))
                if old is None:
                    # The collision is not actual anymore.
                    self._good(info, now, False)
                    erase = True
                elif now - old.last_success < ADDRMAN_REPLACEMENT_S:
                    # The old one works: keep it.
                    erase = True
                elif now - old.last_tried < ADDRMAN_REPLACEMENT_S:
                    # Tried recently: replace it if it had time to answer.
                    if now - old.last_tried > _COLLISION_GRACE_S:
                        self._good(info, now, False)
                        erase = True
                elif now - info.last_success > ADDRMAN_TEST_WINDOW_S:
                    # The old one was not tested in time.
                    self._good(info, now, False)
                    erase = True
            if erase:
                self._collisions.pop(address, None)

    def get_addr(
        self,
        now: float,
        max_count: int = GETADDR_MAX_REPLY,
        max_pct: int = GETADDR_MAX_PCT,
        min_count: int = GETADDR_MIN_COUNT,
    ) -> list[AddrInfo]:
        """
        Addresses to answer a getaddr with (Bitcoin's C{GetAddr}).

        @return: up to C{min(max_count, max(len * max_pct // 100,
            min(len, min_count)))} randomly chosen entries, none terrible
            (fewer only if there are not that many non-terrible ones).
        """
        n = len(self._random)
        count = min(max_count, max(n * max_pct // 100, min(n, min_count)))
        result: list[AddrInfo] = []
        rnd = self._random
        if not self._plainRandom:
            for i in range(n):
                if len(result) >= count:
                    break
                self._swap_random(i, i + self._rng.randrange(n - i))
                info = rnd[i]
                if not info.is_terrible(now):
                    result.append(info)
            return result
        # The same, drawing what randrange(n - i) draws (see _selectIn), and
        # swapping in place (_swap_random).
        getrandbits = self._rng.getrandbits
        ints = _INTS  # covers every position (see _create)
        for i in range(n):
            if len(result) >= count:
                break
            left = n - i
            bits = left.bit_length()
            r = getrandbits(bits)
            while r >= left:
                r = getrandbits(bits)
            info = rnd[i + r]
            if r:
                other = rnd[i]
                rnd[i], rnd[i + r] = info, other
                info._pos = ints[i]
                other._pos = ints[i + r]
            if not info.is_terrible(now):
                result.append(info)
        return result

    def remove(self, address: Address) -> None:
        """
        Forget C{address} wherever it is (not in Bitcoin Core; for the node's
        own address).
        """
        info = self._entries.get(address)
        if info is None:
            return
        if info.in_tried:
            self._tried.clear(*self._tried_slot(address))
            info.in_tried = False
            self._n_tried -= 1
        else:
            self._leave_new(info)
        self._delete(info)

    # Verification

    def check(self) -> None:
        """
        Re-verify every invariant (Bitcoin's C{CheckAddrman}).

        @raise AddrManError: naming the first broken invariant.
        """
        if not isinstance(self._key, bytes) or len(self._key) != KEY_BYTES:
            raise AddrManError("the key is not 32 bytes")
        n = len(self._entries)
        if len(self._random) != n:
            raise AddrManError(f"{n} entries but {len(self._random)} in the random list")
        tried = sum(1 for i in self._entries.values() if i.in_tried)
        if tried != self._n_tried:
            raise AddrManError(f"size_tried is {self._n_tried}, {tried} entries are in tried")
        if self._tried.count != tried:
            raise AddrManError(f"{tried} tried entries but {self._tried.count} tried slots used")
        if self.size_tried > self._tried_count * self._bucket_size:
            raise AddrManError("more tried entries than tried slots")
        if self.size_new > self._new_count * self._bucket_size:
            raise AddrManError("more new entries than new slots")
        refs = 0
        for address, info in self._entries.items():
            self._check_entry(address, info)
            refs += info.ref_count
        if self._new.count != refs:
            raise AddrManError(f"reference counts sum to {refs}, {self._new.count} new slots used")
        self._tried.check("tried")
        self._new.check("new")
        for bucket, pos, info in self._tried.slots():
            if self._entries.get(info.address) is not info or not info.in_tried:
                raise AddrManError(f"tried[{bucket}][{pos}] holds {info.address}, not a tried entry")
        for bucket, pos, info in self._new.slots():
            if self._entries.get(info.address) is not info or info.in_tried:
                raise AddrManError(f"new[{bucket}][{pos}] holds {info.address}, not a new entry")
            if bucket not in self._newBucketsOf(info):
                raise AddrManError(f"new[{bucket}][{pos}] holds {info.address}, unrecorded")
        if len(self._collisions) > ADDRMAN_SET_TRIED_COLLISION_SIZE:
            raise AddrManError(f"{len(self._collisions)} tried collisions pending")
        for address, info in self._collisions.items():
            if self._entries.get(address) is not info:
                raise AddrManError(f"tried collision {address} is not an entry")
        if not (isinstance(self._last_good, (int, float)) and self._last_good >= 0):
            raise AddrManError("last_good is negative")

    def _check_entry(self, address: Address, info: AddrInfo) -> None:
        if info.address != address:
            raise AddrManError(f"entry {address} holds {info.address}")
        if not is_routable(address):
            raise AddrManError(f"unroutable address {address}")
        times = (info.last_seen, info.last_tried, info.last_count_attempt, info.last_success)
        if not all(t >= 0 for t in times):
            raise AddrManError(f"{address}: negative time")
        if info.attempts < 0 or info.failures < 0:
            raise AddrManError(f"{address}: negative counter")
        pos = info._pos
        if not 0 <= pos < len(self._random) or self._random[pos] is not info:
            raise AddrManError(f"{address}: wrong random position {pos}")
        refs = info._refs
        if not (refs is None or type(refs) in (int, tuple, set)):
            raise AddrManError(f"{address}: new buckets kept as {type(refs).__name__}")
        buckets = self._newBucketsOf(info)
        if info.in_tried:
            if info.ref_count != 0 or buckets:
                raise AddrManError(f"{address}: in tried with reference count {info.ref_count}")
            bucket, pos = self._tried_slot(address)
            if self._tried.get(bucket, pos) is not info:
                raise AddrManError(f"{address}: not at its tried slot [{bucket}][{pos}]")
            return
        if not 1 <= info.ref_count <= ADDRMAN_NEW_BUCKETS_PER_ADDRESS:
            raise AddrManError(f"{address}: reference count {info.ref_count} out of range")
        if info.ref_count != len(buckets):
            raise AddrManError(
                f"{address}: reference count {info.ref_count}, in {len(buckets)} new buckets"
            )
        for bucket in buckets:
            pos = self._position(True, bucket, address)
            if self._new.get(bucket, pos) is not info:
                raise AddrManError(f"{address}: not at its new slot [{bucket}][{pos}]")

    # Persistence

    def to_json(self) -> dict[str, Any]:
        """
        The whole state, as JSON-serialisable data for L{from_json}
        (pending tried collisions are not kept, as in Bitcoin Core).
        """
        return {
            "key": self._key.hex(),
            "new_buckets": self._new_count,
            "tried_buckets": self._tried_count,
            "bucket_size": self._bucket_size,
            "last_good": self._last_good,
            "entries": [
                {
                    "addr": str(i.address),
                    "source": str(i.source),
                    "last_seen": i.last_seen,
                    "last_tried": i.last_tried,
                    "last_count_attempt": i.last_count_attempt,
                    "last_success": i.last_success,
                    "attempts": i.attempts,
                    "failures": i.failures,
                    "tried": i.in_tried,
                    "buckets": sorted(self._newBucketsOf(i)),
                }
                for i in self._random
            ],
        }

    @classmethod
    def from_json(
        cls,
        data: object,
        rng: random.Random | None = None,
        *,
        new_buckets: int = ADDRMAN_NEW_BUCKET_COUNT,
        tried_buckets: int = ADDRMAN_TRIED_BUCKET_COUNT,
        bucket_size: int = ADDRMAN_BUCKET_SIZE,
        group_of: Callable[[Address], str] = network_group,
    ) -> AddrMan:
        """
        Rebuild an address manager from L{to_json} output.

        With the same geometry, entries return to their saved slots; with
        another (or when a slot is taken), tried entries go to their tried
        slot and new ones to the bucket of their source, and whatever finds
        its slot taken is put in the new table through its source, or
        dropped. Bad single entries are skipped.

        @raise AddrManError: if C{data} is not an object with a 32-byte hex
            C{key} and a list of C{entries}.
        """
        if not isinstance(data, dict):
            raise AddrManError("saved address manager is not an object")
        key_hex = data.get("key")
        if not isinstance(key_hex, str) or len(key_hex) != 2 * KEY_BYTES:
            raise AddrManError("saved address manager has no 32-byte key")
        try:
            key = bytes.fromhex(key_hex)
        except ValueError:
            raise AddrManError("saved address manager key is not hex") from None
        items = data.get("entries")
        if not isinstance(items, list):
            raise AddrManError("saved address manager has no list of entries")
        man = cls(
            rng,
            key,
            new_buckets=new_buckets,
            tried_buckets=tried_buckets,
            bucket_size=bucket_size,
            group_of=group_of,
        )
        saved = tuple(data.get(k) for k in ("new_buckets", "tried_buckets", "bucket_size"))
        restore = all(type(v) is int for v in saved) and saved == (
            new_buckets,
            tried_buckets,
            bucket_size,
        )
        last_good = _time(data.get("last_good", 1.0))
        if last_good is not None:
            man._last_good = last_good

        loaded: list[tuple[AddrInfo, list[int]]] = []
        for item in items:
            parsed = _entryFrom(item)
            if parsed is None or parsed[0].address in man._entries:
                continue
            info, tried, buckets = parsed
            man._create(info)
            if tried:
                bucket, pos = man._tried_slot(info.address)
                if man._tried.get(bucket, pos) is None:
                    man._tried.put(bucket, pos, info)
                    info.in_tried = True
                    man._n_tried += 1
                    continue
                buckets = []  # slot taken: into the new table via its source
            loaded.append((info, buckets if restore else []))
        for info, buckets in loaded:
            for bucket in buckets:
                if info.ref_count >= ADDRMAN_NEW_BUCKETS_PER_ADDRESS:
                    break
                if bucket in man._newBucketsOf(info) or not 0 <= bucket < new_buckets:
                    continue
                pos = man._position(True, bucket, info.address)
                if man._new.get(bucket, pos) is None:
                    man._put_new(bucket, pos, info)
        for info, _ in loaded:
            if info.ref_count == 0:
                bucket = man._new_bucket(info.address, info.source)
                pos = man._position(True, bucket, info.address)
                if man._new.get(bucket, pos) is None:
                    man._put_new(bucket, pos, info)
                else:
                    man._delete(info)
        return man


def _time(value: object) -> float | None:
    """
    A saved time or L{None} if it is not a finite non-negative number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _entryFrom(item: object) -> tuple[AddrInfo, bool, list[int]] | None:
    """
    Parse one saved entry: the entry, whether it was tried, its new buckets;
    or L{None} if anything in it is bad.
    """
    if not isinstance(item, dict):
        return None
    try:
        address = parse_address(item["addr"])
        source = parse_address(item.get("source", item["addr"]))
    except (KeyError, AddressError):
        return None
    if not is_routable(address):
        return None
    times = [
        _time(item.get(k, 0.0))
        for k in ("last_seen", "last_tried", "last_count_attempt", "last_success")
    ]
    counts = [_count(item.get(k, 0)) for k in ("attempts", "failures")]
    tried = item.get("tried", False)
    buckets = item.get("buckets", [])
    if None in times or None in counts or not isinstance(tried, bool):
        return None
    if not isinstance(buckets, list):
        return None
    valid = [b for b in buckets if type(b) is int]
    if len(valid) != len(buckets):
        return None
    last_seen, last_tried, last_count_attempt, last_success = times
    attempts, failures = counts
    info = AddrInfo(
        address,
        source,
        last_seen=last_seen,
        last_tried=last_tried,
        last_count_attempt=last_count_attempt,
        last_success=last_success,
        attempts=attempts,
        failures=failures,
    )
    return info, tried, valid
