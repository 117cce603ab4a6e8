"""
Which inbound peer to evict when the inbound slots are full, as Bitcoin
Core's SelectNodeToEvict (src/node/eviction.cpp) decides.

A full node still admits newcomers by closing one inbound connection for
each new one (a seed must, or nodes that arrive late never learn an
address). The danger is an attacker who opens many connections to push the
honest peers out (an eclipse attack), so most peers are I{protected}, each
time by a property an attacker cannot cheaply fake, and only the rest may be
evicted:

 1. the 4 peers with the highest keyed network group: the key is the node's
    secret, so an attacker cannot tell which groups win;
 2. the 8 peers with the lowest minimum ping time (never measured counts as
    slowest): an attacker cannot fake being near;
 3. the 4 peers that most recently sent addresses new to us (Bitcoin Core:
    novel transactions and blocks): doing so takes useful work;
 4. half of those left, by connection age, of which up to a quarter goes to
    the longest-connected local (loopback) peers first (Bitcoin Core's
    "disadvantaged networks", of which bitp2p has only this one), then the
    rest to the longest-connected peers overall: an attacker would have had
    to connect before the honest peers did.

Of the peers left, those of the network group holding the most (ties:
the group whose youngest member connected last) are the likeliest attacker,
and that group's youngest member is evicted. With at most 16 candidates
everyone is protected and nobody is evicted.

Each protection step sorts the candidates so that the ones to protect come
last, then removes the last C{k} (Bitcoin Core's EraseLastKElements). Where
a property ties, the peer connected earlier is protected, and where that
ties too, the one earlier in the input: the result is a function of the
input alone. Nothing here does I/O, reads a clock or draws random numbers.

It owns the choice only, a pure function of the candidates; it knows nothing
of peers, sockets or the node (the connection manager builds the
candidates).
"""

from __future__ import annotations

from typing import Callable, Sequence

import attrs

PROTECT_BY_NET_GROUP = 4
PROTECT_BY_PING = 8
PROTECT_BY_ADDR_TIME = 4


@attrs.frozen
class EvictionCandidate:
    """
    What eviction knows of one inbound peer.

    @ivar id: whatever identifies the peer for the caller; it is only
        handed back.
    @ivar connected_at: when the connection was made (seconds).
    @ivar min_ping_s: the lowest ping round trip seen on the connection, or
        L{None} if never measured (counts as the slowest).
    @ivar keyed_net_group: a keyed hash of the peer's network group, computed
        by the node with a secret of its own.
    @ivar is_local: whether the peer is on loopback.
    @ivar last_addr_time: when the peer last sent us addresses new to us (0:
        never).
    """

    id: object
    connected_at: float
    min_ping_s: float | None
    keyed_net_group: int
    is_local: bool
    last_addr_time: float = 0.0


# A candidate with its position in the input, for deterministic tie-breaks.
_Entry = tuple[int, EvictionCandidate]
# Sort keys: larger means more deserving of protection. The last two parts
# are the tie-breaks: connected earlier, then earlier in the input.


def _byNetGroup(entry: _Entry) -> tuple:
    i, c = entry
    return (c.keyed_net_group, -c.connected_at, -i)


def _byPing(entry: _Entry) -> tuple:
    i, c = entry
    ping = float("inf") if c.min_ping_s is None else c.min_ping_s
    return (-ping, -c.connected_at, -i)


def _byAddrTime(entry: _Entry) -> tuple:
    i, c = entry
    return (c.last_addr_time, -c.connected_at, -i)


def _byLocalThenUptime(entry: _Entry) -> tuple:
    i, c = entry
    return (c.is_local, -c.connected_at, -i)


def _byUptime(entry: _Entry) -> tuple:
    i, c = entry
    return (-c.connected_at, -i)


def _isLocal(entry: _Entry) -> bool:
    return entry[1].is_local


def _eraseLastK(
    entries: list[_Entry],
    key: Callable[[_Entry], tuple],
    k: int,
    predicate: Callable[[_Entry], bool] | None = None,
) -> None:
    """
    Sort C{entries} by C{key}, then remove those of the last C{k} for which
    C{predicate} holds (all of them without one).
    """
    entries.sort(key=key)
    start = len(entries) - min(k, len(entries))
    if predicate is None:
        del entries[start:]
    else:
        entries[start:] = [e for e in entries[start:] if not predicate(e)]


def _protectByRatio(entries: list[_Entry]) -> None:
    """
    Protect half of C{entries} by connection age, up to half of those
    (a quarter of C{entries}) reserved for the oldest local peers. Leaves
    C{entries} sorted youngest first.

    This is Bitcoin Core's ProtectEvictionCandidatesByRatio with a single
    disadvantaged network, for which its loop protects exactly
    C{min(reserved, local peers)} in one pass.
    """
    total = len(entries) // 2
    reserved = total // 2
    before = len(entries)
    if reserved > 0:
        _eraseLastK(entries, _byLocalThenUptime, reserved, _isLocal)
    _eraseLastK(entries, _byUptime, total - (before - len(entries)))


def evictable(candidates: Sequence[EvictionCandidate]) -> list[EvictionCandidate]:
    """
    The candidates that no protection rule shields, youngest connection
    first (ties: the later in C{candidates} first).
    """
    entries = list(enumerate(candidates))
    _eraseLastK(entries, _byNetGroup, PROTECT_BY_NET_GROUP)
    _eraseLastK(entries, _byPing, PROTECT_BY_PING)
    _eraseLastK(entries, _byAddrTime, PROTECT_BY_ADDR_TIME)
    _protectByRatio(entries)
    return [c for _, c in entries]


def select_to_evict(candidates: Sequence[EvictionCandidate]) -> object | None:
    """
    Choose the inbound peer to evict.

    @param candidates: the inbound peers that may be evicted at all (the
        caller leaves out outbound and whitelisted ones).
    @return: the C{id} of the youngest peer of the network group holding the
        most unprotected peers (ties: the group whose youngest member
        connected last), or L{None} if every candidate is protected.
    """
    groups: dict[int, list[EvictionCandidate]] = {}
    chosen: list[EvictionCandidate] | None = None
    for candidate in evictable(candidates):
        # Youngest first, so each group's first member is its youngest, and
        # among groups of equal size and equally young youngest members the
        # first one seen wins, as in Bitcoin Core.
        group = groups.setdefault(candidate.keyed_net_group, [])
        group.append(candidate)
        if (
            chosen is None
            or len(group) > len(chosen)
            or (len(group) == len(chosen) and group[0].connected_at > chosen[0].connected_at)
        ):
            chosen = group
    return None if chosen is None else chosen[0].id
