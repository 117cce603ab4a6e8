"""
The outbound filler: the node's automatic outbound connections (Bitcoin
Core's C{ThreadOpenConnections}).

Each maintenance round, L{OutboundFiller.fill} tops the C{max_outbound}
slots up: first with the anchors (the outbound peers of the last run, so an
attacker who filled the address tables while we were down does not choose
our first peers), then with addresses drawn from the address manager, never
two in one network group, never a banned, discouraged, busy or own address,
never one this node cannot reach (onion, I2P, CJDNS: bitp2p has no proxy;
Bitcoin Core's C{IsReachable} check), and not one in its retry backoff (spread per node, L{spread}). Once every
slot is held by a connection, a feeler (one at a time, about every
C{feeler_interval_s}) tests an address of the "new" table, or the old entry
of a pending "tried" collision; one that answers is promoted to "tried".
While the node is still learning (L{Learning}), that test is an address
fetch instead, and while it learns fast, one comes about every
C{FAST_FETCH_INTERVAL_S}, to an address of either table.

It gets addresses through the C{select} and C{selectCollision} callables
(the address manager's), dials through the connection manager, and knows
nothing of messages.
"""

from __future__ import annotations

import enum
import hashlib
import random
from typing import TYPE_CHECKING, Callable

from twisted.logger import Logger
from twisted.python.failure import Failure

from bitp2p.address import Address, is_reachable
from bitp2p.backoff import retry_delay
from bitp2p.constants import (
    FAST_FETCH_INTERVAL_S,
    OUTBOUND_SELECT_TRIES,
    RECENT_TRY_S,
    RECENT_TRY_TRIES,
)
from bitp2p.endpoints import Target
from bitp2p.errors import failureReason
from bitp2p.peer import SHORT_LIVED, ConnectionType

if TYPE_CHECKING:
    from bitp2p.banman import BanMan
    from bitp2p.config import NodeConfig
    from bitp2p.interfaces import AddressInfo, IConnections
    from bitp2p.peer import Peer

log = Logger()


class Learning(enum.Enum):
    """
    How much a node is still learning addresses, which sets what its
    address tests are (protocol 1.1 lets a feeler ask nothing):

      - DONE: nothing new came for a while: a plain feeler, about every
        C{feeler_interval_s}, to an address of the "new" table;
      - SLOW: a C{getaddr} answer grew its table lately (gossip does
        not count): an address fetch in its place (it
        asks C{getaddr} and closes after the answer);
      - FAST: its table is small and answers still grow it: a fetch about
        every C{FAST_FETCH_INTERVAL_S}, to an address of either table (in
        a small network one answer is a whole table, and the peers whose
        tables are complete may all be tried ones).
    """

    DONE = "done"
    SLOW = "slow"
    FAST = "fast"


class OutboundFiller:
    """
    Fills the automatic outbound slots, and runs the feelers.

    @param select: C{select(now, new_only)}: an address to try, drawn from
        the address manager, or L{None}.
    @param selectCollision: C{selectCollision(now)}: the old entry of a
        pending "tried" collision to test, or L{None}.
    @param spreadKey: the secret that keys the retry spread.
    @param learning: C{learning(now)}: the node's L{Learning} now.
    @ivar anchors: the anchors not dialed yet.
    @ivar feeler: the address a feeler is testing, or L{None}.
    """

    def __init__(
        self,
        config: NodeConfig,
        reactor,
        rng: random.Random,
        connections: IConnections,
        bans: Callable[[], BanMan],
        select: Callable[[float, bool], AddressInfo | None],
        selectCollision: Callable[[float], AddressInfo | None],
        spreadKey: bytes,
        learning: Callable[[float], Learning] = lambda now: Learning.DONE,
    ) -> None:
        self._config = config
        self._learning = learning
        self._reactor = reactor
        self._rng = rng
        self._connections = connections
        self._bans = bans
        self._select = select
        self._selectCollision = selectCollision
        self._spreadKey = spreadKey
        self.anchors: list[Address] = []
        self.feeler: Address | None = None
        self._nextFeeler = 0.0

    def start(self, now: float, anchors: list[Address]) -> None:
        self.anchors = list(anchors)
        self._nextFeeler = now + self._feelerDelay(self._learning(now))

    def _feelerDelay(self, learning: Learning) -> float:
        if learning is Learning.FAST:
            # Evenly spread, not exponential: a node must not wait minutes
            # by chance while it is the one missing addresses.
            return FAST_FETCH_INTERVAL_S * self._rng.uniform(0.5, 1.5)
        return self._rng.expovariate(1.0 / self._config.feeler_interval_s)

    def fill(self, now: float) -> None:
        """
        The round's outbound work (see the module docstring).
        """
        connections = self._connections
        slots = self._config.outbound_slots
        connected = connections.count(ConnectionType.OUTBOUND)
        pending = sum(kind is ConnectionType.OUTBOUND for _, kind in connections.dialingKinds())
        # Feelers only once every outbound slot is held by a connection
        # (not a dial in progress), as in Bitcoin Core.
        feeler = 0 < slots <= connected and now >= self._nextFeeler and self.feeler is None
        if connected + pending >= slots and not feeler:
            return  # the usual round of a settled node: nothing to do
        busy = connections.busyAddresses()
        groups = connections.outboundGroups()
        missing = slots - connected - pending
        while missing > 0 and self.anchors:
            address = self.anchors.pop(0)
            key = connections.diversityKey(address)
            if self.dialable(address, busy, now) and key not in groups:
                self._dial(address, ConnectionType.OUTBOUND, busy, groups)
                missing -= 1
        tries = 0
        while missing > 0 and tries < OUTBOUND_SELECT_TRIES:
            tries += 1
            info = self._select(now, False)
            if info is None:
                break
            if not self.eligible(info, busy, now, tries):
                continue
            key = connections.diversityKey(info.address)
            if key is not None and key in groups:
                continue
            self._dial(info.address, ConnectionType.OUTBOUND, busy, groups)
            missing -= 1
        if feeler:
            learning = self._learning(now)
            self._nextFeeler = now + self._feelerDelay(learning)
            self._startFeeler(now, busy, learning)

    def dialable(self, address: Address, busy: set[Address], now: float) -> bool:
        """
        Whether C{address} may be dialed at all: reachable (L{is_reachable}),
        not busy, not ours, not banned or discouraged.
        """
        if not is_reachable(address):
            return False
        bans = self._bans()
        return not (
            address in busy
            or self._connections.isOwn(address)
            or bans.is_banned(address.host, now)
            or bans.is_discouraged(address.host, now)
        )

    def eligible(self, info: AddressInfo, busy: set[Address], now: float, tries: int) -> bool:
        """
        Whether an address drawn from the book may be dialed now: dialable,
        out of its retry backoff, and (for the first draws of a round) not
        tried in the last 10 minutes.
        """
        if not self.dialable(info.address, busy, now):
            return False
        if info.failures:
            elapsed, delay = now - info.last_tried, retry_delay(info.failures)
            # (The spread, a hash, only matters in the second half.)
            if elapsed < delay and (elapsed < delay / 2 or elapsed < delay * self.spread(info)):
                return False
        return not (now - info.last_tried < RECENT_TRY_S and tries < RECENT_TRY_TRIES)

    def spread(self, info: AddressInfo) -> float:
        """
        A factor in [0.5, 1) for the retry delay of one try of one address,
        fixed for that try (a keyed hash of the address and the time of the
        try), different on every node. Without it, every node that lost
        its links across a cut at the same moment retries them at the same
        moments, in waves ever further apart: a heal just after a wave
        waited for the next one (up to the 10 minute maximum). Spread, the
        retries of many nodes come every few seconds.
        """
        key = f"{info.address} {info.last_tried!r}".encode()
        digest = hashlib.blake2b(key, key=self._spreadKey, digest_size=8).digest()
        return 0.5 + int.from_bytes(digest, "big") / 2**65

    def _dial(
        self, address: Address, kind: ConnectionType, busy: set[Address], groups: set[str]
    ) -> None:
        busy.add(address)
        key = self._connections.diversityKey(address)
        if key is not None and kind is ConnectionType.OUTBOUND:
            groups.add(key)
        log.debug("Dialing {address} ({kind})", address=address, kind=kind.value)
        self._connections.dial(Target(address.host, address.port), kind).addErrback(
            self._dialFailed, address
        )

    def _startFeeler(self, now: float, busy: set[Address], learning: Learning) -> None:
        """
        Test one address: the old entry of a pending "tried" collision if
        there is one, else one from the "new" table (from either table while
        the node learns fast).
        """
        info = self._selectCollision(now)
        kind = ConnectionType.FEELER
        if info is not None and self.dialable(info.address, busy, now):
            self.feeler = info.address
        else:
            # While the node is still learning addresses, the test of a new
            # one is an address fetch (protocol 1.1: it asks getaddr, takes
            # the answer, closes), which proves the address alive as a
            # feeler does; once nothing new comes, a plain feeler, which
            # asks nothing. (A tried collision's old entry is only tested.)
            if learning is not Learning.DONE:
                kind = ConnectionType.ADDR_FETCH
            newOnly = learning is not Learning.FAST
            for tries in range(1, OUTBOUND_SELECT_TRIES + 1):
                info = self._select(now, newOnly)
                if info is None:
                    return
                if self.eligible(info, busy, now, tries):
                    self.feeler = info.address
                    break
            else:
                return
        self._dial(self.feeler, kind, busy, set())

    def _dialFailed(self, failure: Failure, address: Address) -> None:
        if address == self.feeler:
            self.feeler = None
        log.debug(
            "Could not connect to {address}: {error}",
            address=address,
            error=failureReason(failure),
        )

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        if peer.kind in SHORT_LIVED and peer.dialed == self.feeler:
            self.feeler = None


__all__ = ["Learning", "OutboundFiller"]
