"""
The address book: which peer addresses a node knows, and whom to dial next.

This module does address bookkeeping and selection only, as Bitcoin Core's
addrman does; connection policy (how many to dial, when, what is excluded)
lives in L{bitp2p.node}. Nothing here does I/O or reads a clock: every method
that needs the time takes C{now} (unix seconds), and all randomness comes
from the injected C{random.Random}, so behaviour is reproducible in tests.

What is stored, per address (L{AddressInfo}): when it was last seen alive
(from gossip C{time} or our own successful connection), when we last tried
it, when it last worked, how many attempts failed since, and whether it is a
bootstrap seed.

Backoff: after C{n} failed attempts an address is not tried again before
C{RETRY_BASE_S * 2**(n-1)} seconds (capped at C{RETRY_MAX_S}) have passed
since the last try, so a dead seed is retried every 2, 4, 8 ... seconds up to
every 10 minutes, never in a tight loop.

Selection (L{AddressBook.select}): among ready addresses not excluded, those
outside the network groups already used (IPv4 /16, IPv6 /32) come first, so
outbound connections spread over networks (an eclipse attacker must control
many groups); if none is left, any group will do. Addresses that worked
before are chosen with probability 0.8 when there are also untried ones, and
within each set an address with C{n} failures weighs C{1/(1+n)}.

Getaddr answers (L{AddressBook.sample}) share only addresses that are not
"terrible": not seen for 30 days, too far in the future, or failing many
times without ever working.

When the book is full, adding evicts one non-seed entry: a terrible one if
any, else the never-successful one seen longest ago, else the one seen
longest ago. L{AddressBook.check} re-verifies the invariants.
"""

from __future__ import annotations

import random
from typing import Any, Collection, Iterator

import attrs

from bitp2p.address import Address, AddressError, is_routable, parse_address
from bitp2p.constants import (
    ADDR_FUTURE_SLACK_S,
    ADDR_HORIZON_S,
    ADDR_MAX_FAILURES,
    ADDRBOOK_MAX_ENTRIES,
    RETRY_BASE_S,
    RETRY_MAX_S,
)

# Chance that select() picks among addresses that worked before, when there
# are also addresses that never did.
WORKED_PREFERENCE = 0.8
# Never-successful addresses with this many failures are not shared.
NEVER_WORKED_MAX_FAILURES = 3


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
    seed: bool = False

    def is_terrible(self, now: float) -> bool:
        """
        Not worth sharing: a seed never is; otherwise an address seen too
        long ago (or never), too far in the future, or failing repeatedly.
        """
        if self.seed:
            return False
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
    Known addresses, keyed by L{Address}.
    """

    def __init__(
        self, rng: random.Random | None = None, max_entries: int = ADDRBOOK_MAX_ENTRIES
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._max = max_entries
        self._entries: dict[Address, AddressInfo] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, address: object) -> bool:
        return address in self._entries

    def __iter__(self) -> Iterator[AddressInfo]:
        return iter(list(self._entries.values()))

    def get(self, address: Address) -> AddressInfo | None:
        return self._entries.get(address)

    def add(
        self, address: Address, now: float, seen: float | None = None, seed: bool = False
    ) -> bool:
        """
        Learn an address.

        @param seen: when it was last seen alive, if known.
        @return: whether this was news worth relaying: the address is new, or
            C{seen} is later than what the book had. Unroutable addresses are
            refused (C{False}).
        """
        if not is_routable(address):
            return False
        if seen is not None and seen > now + ADDR_FUTURE_SLACK_S:
            seen = now
        info = self._entries.get(address)
        if info is None:
            if len(self._entries) >= self._max and not self._evict(now):
                return False
            self._entries[address] = AddressInfo(
                address, last_seen=seen if seen is not None else 0.0, seed=seed
            )
            return True
        if seed:
            info.seed = True
        if seen is not None and seen > info.last_seen:
            info.last_seen = seen
            return True
        return False

    def remove(self, address: Address) -> None:
        self._entries.pop(address, None)

    def _info(self, address: Address) -> AddressInfo | None:
        info = self._entries.get(address)
        if info is None and self.add(address, 0.0):
            info = self._entries[address]
        return info

    def mark_attempt(self, address: Address, now: float) -> None:
        """
        We started dialing C{address}.
        """
        info = self._info(address)
        if info is not None:
            info.last_tried = now

    def mark_success(self, address: Address, now: float) -> None:
        """
        A connection to C{address} completed its handshake.
        """
        info = self._info(address)
        if info is not None:
            info.last_success = info.last_seen = now
            info.attempts = 0

    def mark_failure(self, address: Address, now: float) -> None:
        """
        An attempt to reach C{address} failed.
        """
        info = self._info(address)
        if info is not None:
            info.attempts += 1
            if info.last_tried == 0:
                info.last_tried = now

    def retry_delay(self, attempts: int) -> float:
        """
        Seconds to wait after the last try, given the failures so far.
        """
        if attempts <= 0:
            return 0.0
        return float(min(RETRY_BASE_S * 2 ** min(attempts - 1, 32), RETRY_MAX_S))

    def _readyAt(self, info: AddressInfo) -> float:
        return info.last_tried + self.retry_delay(info.attempts)

    def is_ready(self, address: Address, now: float) -> bool:
        info = self._entries.get(address)
        return info is not None and now >= self._readyAt(info)

    def next_ready_time(self, now: float, exclude: Collection[Address] = ()) -> float | None:
        """
        The earliest time a non-excluded entry may be dialed, or L{None}.
        """
        times = [self._readyAt(i) for a, i in self._entries.items() if a not in exclude]
        return max(now, min(times)) if times else None

    def select(
        self,
        now: float,
        exclude: Collection[Address] = (),
        exclude_groups: Collection[str] = (),
    ) -> Address | None:
        """
        Choose one address to dial, or L{None} if nothing is eligible.
        """
        from bitp2p.address import network_group

        ready = [
            info
            for address, info in self._entries.items()
            if now >= self._readyAt(info) and address not in exclude
        ]
        if not ready:
            return None
        if exclude_groups:
            spread = [i for i in ready if network_group(i.address) not in exclude_groups]
            if spread:
                ready = spread
        worked = [i for i in ready if i.last_success > 0]
        untried = [i for i in ready if i.last_success == 0]
        if worked and untried:
            pool = worked if self._rng.random() < WORKED_PREFERENCE else untried
        else:
            pool = worked or untried
        weights = [1.0 / (1 + i.attempts) for i in pool]
        return self._rng.choices(pool, weights)[0].address

    def sample(self, count: int, now: float) -> list[AddressInfo]:
        """
        A random sample of at most C{count} entries believed reachable.
        """
        good = [i for i in self._entries.values() if not i.is_terrible(now)]
        if len(good) <= count:
            self._rng.shuffle(good)
            return good
        return self._rng.sample(good, count)

    def _evict(self, now: float) -> bool:
        candidates = [i for i in self._entries.values() if not i.seed]
        if not candidates:
            return False
        terrible = [i for i in candidates if i.is_terrible(now)]
        if terrible:
            victim = min(terrible, key=lambda i: i.last_seen)
        else:
            never = [i for i in candidates if i.last_success == 0]
            victim = min(never or candidates, key=lambda i: i.last_seen)
        del self._entries[victim.address]
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
                    "seed": i.seed,
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
            if info is not None and len(book._entries) < max_entries:
                book._entries[info.address] = info
        return book


def _infoFrom(item: object) -> AddressInfo | None:
    if not isinstance(item, dict):
        return None
    try:
        address = parse_address(item["addr"])
        times = [item.get(k, 0) for k in ("last_seen", "last_tried", "last_success")]
        attempts = item.get("attempts", 0)
        seed = item.get("seed", False)
    except (KeyError, AddressError):
        return None
    if not is_routable(address):
        return None
    if any(isinstance(t, bool) or not isinstance(t, (int, float)) or not t >= 0 for t in times):
        return None
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        return None
    if not isinstance(seed, bool):
        return None
    return AddressInfo(address, float(times[0]), float(times[1]), float(times[2]), attempts, seed)
