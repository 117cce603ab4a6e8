"""
The simple address book of bitp2p 0.1, kept as a baseline.

bitp2p's address manager is L{bitp2p.addrman}, a port of Bitcoin Core's
addrman. This older book is kept, behind the same interface, so that the
eclipse test and C{bench/eclipse.py} can run the same attack against both
and show what the bucketed tables gain (C{NodeConfig(address_manager=
"simple")} selects it). It is not meant for real use.

What is stored, per address (L{AddressInfo}): when it was last seen alive,
when we last tried it, when it last worked, how many attempts failed since.
One flat table of at most C{max_entries} addresses; a new address arriving
when it is full evicts the worst 1 % of the table (terrible entries first,
then never-successful ones, then the rest, each seen longest ago first), so
a flood of fresh addresses pushes out every address that never worked.

Selection (L{AddressBook.select}): an address that worked before with
probability 0.8 when there are also untried ones, uniformly within each set,
an address with C{n} failures accepted with probability C{1/(1+n)}. Getaddr
answers (L{AddressBook.get_addr}) share up to C{max_count} entries that are
not "terrible": not seen for 30 days, too far in the future, or failing many
times without ever working. L{AddressBook.check} re-verifies the invariants.

It owns the flat table and its selection; it knows nothing of connections,
sockets or time (C{now} comes in as an argument).
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Iterator

import attrs

from bitp2p.address import Address, AddressError, is_routable, parse_address
from bitp2p.constants import (
    ADDRBOOK_MAX_ENTRIES,
    ADDR_FUTURE_SLACK_S,
    ADDR_HORIZON_S,
    ADDR_MAX_FAILURES,
    GETADDR_MAX_REPLY,
    NEVER_WORKED_MAX_FAILURES,
    WORKED_PREFERENCE,
)

# Random draws select() makes before settling for its last candidate.
_SELECT_DRAWS = 64


class AddressBookError(ValueError):
    """
    A saved address book is structurally wrong, or an invariant is broken.
    """


@attrs.define
class AddressInfo:
    """
    What the book knows of one address.
    """

    address: Address
    last_seen: float = 0.0
    last_tried: float = 0.0
    last_success: float = 0.0
    attempts: int = 0
    #: when this book last heard of it, by its own clock, since the start
    #: (0.0: not since; not saved, so not compared either)
    heard: float = attrs.field(default=0.0, eq=False)

    @property
    def source(self) -> None:
        """
        Who told us of it: this book does not keep sources (L{None}).
        """
        return None

    @property
    def in_tried(self) -> bool:
        """
        Whether it worked once: this book's counterpart of the address
        manager's "tried" table.
        """
        return self.last_success > 0

    @property
    def failures(self) -> int:
        """
        Failed attempts since the last success (the node's retry backoff).
        """
        return self.attempts

    def is_terrible(self, now: float) -> bool:
        """
        Not worth sharing: an address seen too long ago (or never), too far
        in the future, or failing repeatedly.
        """
        if self.last_seen > now + ADDR_FUTURE_SLACK_S:
            return True
        if self.last_success == 0 and self.attempts >= NEVER_WORKED_MAX_FAILURES:
            return True
        if self.attempts >= ADDR_MAX_FAILURES:
            return True
        if self.last_seen == 0 or now - self.last_seen > ADDR_HORIZON_S:
            return self.last_success == 0 or now - self.last_success > ADDR_HORIZON_S
        return False


class AddressBook:
    """
    Known addresses, keyed by L{Address}, in one flat table.
    """

    def __init__(
        self, rng: random.Random | None = None, max_entries: int = ADDRBOOK_MAX_ENTRIES
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._max = max_entries
        self._entries: dict[Address, AddressInfo] = {}
        # For O(1) random choice: every address, and its index in the list.
        self._order: list[Address] = []
        self._index: dict[Address, int] = {}
        self._worked = 0  # entries with last_success > 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, address: object) -> bool:
        return address in self._entries

    def __iter__(self) -> Iterator[AddressInfo]:
        return iter(list(self._entries.values()))

    def get(self, address: Address) -> AddressInfo | None:
        return self._entries.get(address)

    @property
    def size_new(self) -> int:
        """
        Addresses that never worked (the address manager's "new" table).
        """
        return len(self._entries) - self._worked

    @property
    def size_tried(self) -> int:
        """
        Addresses that worked once (the address manager's "tried" table).
        """
        return self._worked

    def regroup(self, group_of) -> None:
        """
        Nothing to do: this book does not group addresses.
        """

    def add(
        self,
        entries: Iterable[tuple[Address, float | None]],
        source: Address | None,
        now: float,
        penalty_s: float = 0.0,
    ) -> int:
        """
        Learn addresses (C{source} and C{penalty_s} are not used: this book
        does not care who told it).

        @return: how many were news: new, or seen later than the book had.
        """
        return sum(self._addOne(address, now, seen) for address, seen in entries)

    def _addOne(self, address: Address, now: float, seen: float | None) -> bool:
        if not is_routable(address):
            return False
        if seen is not None and seen > now + ADDR_FUTURE_SLACK_S:
            seen = now
        info = self._entries.get(address)
        if info is None:
            if len(self._entries) >= self._max and not self._evict(now):
                return False
            self._insert(
                AddressInfo(address, last_seen=seen if seen is not None else 0.0, heard=now)
            )
            return True
        info.heard = now
        if seen is not None and seen > info.last_seen:
            info.last_seen = seen
            return True
        return False

    def _insert(self, info: AddressInfo) -> None:
        self._entries[info.address] = info
        self._index[info.address] = len(self._order)
        self._order.append(info.address)
        if info.last_success > 0:
            self._worked += 1

    def remove(self, address: Address) -> None:
        info = self._entries.pop(address, None)
        if info is None:
            return
        if info.last_success > 0:
            self._worked -= 1
        i = self._index.pop(address)
        last = self._order.pop()
        if last != address:
            self._order[i] = last
            self._index[last] = i

    def attempt(self, address: Address, now: float, count_failure: bool = True) -> None:
        """
        We started dialing C{address}.
        """
        info = self._entries.get(address)
        if info is not None:
            info.last_tried = now

    def good(self, address: Address, now: float, test_before_evict: bool = True) -> bool:
        """
        A connection to C{address} completed its handshake.

        @return: whether it had never worked before.
        """
        info = self._entries.get(address)
        if info is None:
            return False
        first = info.last_success == 0
        if first:
            self._worked += 1
        info.last_success = info.last_seen = info.last_tried = now
        info.attempts = 0
        return first

    def failed(self, address: Address, now: float) -> None:
        """
        An attempt to reach C{address} failed.
        """
        info = self._entries.get(address)
        if info is not None:
            info.attempts += 1

    def connected(self, address: Address, now: float) -> None:
        info = self._entries.get(address)
        if info is not None:
            info.last_seen = now

    def select(self, now: float, new_only: bool = False) -> AddressInfo | None:
        """
        Choose one address to dial, or L{None} if the book is empty.
        """
        if not self._order:
            return None
        worked = self._worked
        untried = len(self._order) - worked
        if new_only:
            if not untried:
                return None
            want_worked = False
        elif worked and untried:
            want_worked = self._rng.random() < WORKED_PREFERENCE
        else:
            want_worked = worked > 0
        candidate = None
        for _ in range(_SELECT_DRAWS):
            info = self._entries[self._order[self._rng.randrange(len(self._order))]]
            if (info.last_success > 0) is not want_worked:
                continue
            candidate = info
            if self._rng.random() < 1.0 / (1 + info.attempts):
                return info
        return candidate

    def select_tried_collision(self, now: float) -> AddressInfo | None:
        return None  # one flat table: no collisions to test

    def resolve_collisions(self, now: float) -> None:
        pass

    def get_addr(
        self,
        now: float,
        max_count: int = GETADDR_MAX_REPLY,
        max_pct: int = 100,
        min_count: int = 0,
    ) -> list[AddressInfo]:
        """
        A random sample of at most C{max_count} entries believed reachable
        (this book hands out as much as it can: C{max_pct} and
        C{min_count} are not used).
        """
        good = [i for i in self._entries.values() if not i.is_terrible(now)]
        if len(good) <= max_count:
            self._rng.shuffle(good)
            return good
        return self._rng.sample(good, max_count)

    def _evict(self, now: float) -> bool:
        """
        Make room: remove the worst 1 % of the book (terrible entries first,
        then never-successful ones, each seen longest ago first). A batch,
        so that a flood costs one sort per hundred additions, not a scan
        per addition.
        """
        if not self._entries:
            return False
        ranked = sorted(
            self._entries.values(),
            key=lambda i: (not i.is_terrible(now), i.last_success > 0, i.last_seen),
        )
        for info in ranked[: max(1, self._max // 100)]:
            self.remove(info.address)
        return True

    def check(self) -> None:
        """
        Re-verify every invariant.

        @raise AddressBookError: naming the first broken invariant.
        """
        if len(self._entries) > self._max:
            raise AddressBookError(f"{len(self._entries)} entries, more than {self._max}")
        for address, info in self._entries.items():
            if info.address != address:
                raise AddressBookError(f"entry {address} holds {info.address}")
            if not is_routable(address):
                raise AddressBookError(f"unroutable address {address}")
            if info.attempts < 0:
                raise AddressBookError(f"{address}: negative attempts")
            if min(info.last_seen, info.last_tried, info.last_success) < 0:
                raise AddressBookError(f"{address}: negative time")
            i = self._index.get(address)
            if i is None or not 0 <= i < len(self._order) or self._order[i] != address:
                raise AddressBookError(f"{address}: not at its index")
        if len(self._order) != len(self._entries) or len(self._index) != len(self._entries):
            raise AddressBookError("index out of step with the entries")
        if self._worked != sum(i.last_success > 0 for i in self._entries.values()):
            raise AddressBookError("count of entries that worked is wrong")

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "addresses": [
                {
                    "addr": str(i.address),
                    "last_seen": i.last_seen,
                    "last_tried": i.last_tried,
                    "last_success": i.last_success,
                    "attempts": i.attempts,
                }
                for i in self._entries.values()
            ],
        }

    @classmethod
    def from_json(
        cls,
        data: object,
        rng: random.Random | None = None,
        max_entries: int = ADDRBOOK_MAX_ENTRIES,
    ) -> AddressBook:
        """
        Rebuild a book from L{to_json} output; bad single entries are skipped.

        @raise AddressBookError: if C{data} is structurally wrong.
        """
        if not isinstance(data, dict) or data.get("version") != 1:
            raise AddressBookError("address book is not a version 1 object")
        entries = data.get("addresses")
        if not isinstance(entries, list):
            raise AddressBookError("address book has no list of addresses")
        book = cls(rng=rng, max_entries=max_entries)
        for item in entries:
            info = _infoFrom(item)
            if (
                info is not None
                and info.address not in book._entries
                and len(book._entries) < max_entries
            ):
                book._insert(info)
        return book


def _infoFrom(item: object) -> AddressInfo | None:
    if not isinstance(item, dict):
        return None
    try:
        address = parse_address(item["addr"])
        times = [item.get(k, 0) for k in ("last_seen", "last_tried", "last_success")]
        attempts = item.get("attempts", 0)
    except (KeyError, AddressError):
        return None
    if not is_routable(address):
        return None
    if any(isinstance(t, bool) or not isinstance(t, (int, float)) or not t >= 0 for t in times):
        return None
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        return None
    return AddressInfo(address, float(times[0]), float(times[1]), float(times[2]), attempts)
