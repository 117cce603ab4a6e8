"""
How many addresses an attacker holding K /16 groups places in a node's
address manager per minute, and how often one outbound selection then
picks one of them (issue 16, item 5; the measure Bitcoin Core's addrman
design is argued with).

Driven directly, seeded, on a simulated clock: the node's real address relay
(L{bitp2p.discovery.AddressRelay}, with its per-connection token bucket and
its rules for what is stored) in front of a real address manager
(L{bitp2p.addrman.AddrMan}); no sockets, no other part of the node.

The victim's table before the attack: C{--honest} (2,000) honest addresses,
each in a /16 of its own, heard over the last day from C{--sources} (50)
honest peers, one to three each, and C{--tried} (300) of them connected to
(moved to the tried table).

The attacker holds K /16 networks (100.0.0.0/16, 100.1.0.0/16, ...).
From them it makes C{--rate} (40) new inbound connections a second in all
(the issue's probe did about 40), round robin over its groups, each from a
fresh address of its group; each connection sends one C{addr} of 1000 fresh
addresses and closes. Besides, it holds as many inbound connections as the
node lets it keep (the per-group cap, 14 at the default limits, times K, at
most 113 of the 117 inbound slots), each of which sends such an C{addr}
every 10 s, as soon as its bucket holds a token. What it announces:

  - C{own}: fresh addresses inside its own K groups: addresses it can
    answer on, so that a dial to one of them is a connection to the
    attacker (the eclipse attack);
  - C{any}: fresh addresses anywhere (in /16s of their own, not held by
    anyone): pollution, each dial to one of them wasted (what the issue's
    probe sent).

Reported for each K and each kind, after 1, 10 and 60 minutes: the
attacker's entries in the table (placed: taken into a new bucket; the
first minute's count is its rate at the start, before the buckets it
reaches fill up), the probability that one outbound selection
(C{AddrMan.select}, Bitcoin Core's: the new or the tried table with equal
chance, then a non-empty bucket, uniformly) picks an attacker address, and
the attacker's share of a fresh C{getaddr} answer. With C{--before}, the
same with the bucket of a new connection starting at 10 tokens, as it did
before issue 16's fix.

Not modelled: honest addresses learned during the attack, and attacker
addresses promoted to the tried table (only a dial can do that: a feeler
about every 2 minutes, or an outbound connection; C{bench/eclipse.py} has
the whole node, feelers and restarts).

    python bench/addrplace.py [--groups 1 4 16 64 256] [--kinds own any]
        [--rate 40] [--minutes 60] [--before]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock

import bitp2p.discovery as discovery
from bitp2p.address import Address
from bitp2p.addrman import AddrMan
from bitp2p.config import NodeConfig
from bitp2p.constants import ADDR_INITIAL_TOKENS, ADDR_TIME_PENALTY_S, MAX_ADDR_ENTRIES
from bitp2p.peer import ConnectionType, Direction

START = 1_700_000_000.0
PORT = 8333
INBOUND_SLOTS = 117  # 125 connections less 8 outbound
GROUP_CAP = INBOUND_SLOTS // 8  # 14: inbound connections from one /16 at once
HELD_MAX = INBOUND_SLOTS - 4  # room left for the churning connections
HELD_EVERY_S = 10  # a held connection's addr, once its bucket has a token
ATTACKER_FIRST_OCTET = 100
CHECKPOINTS_MIN = (1, 10, 60)
SELECTIONS = 20_000


def attacker_ip(group: int, n: int) -> str:
    """
    The C{n}-th address of the attacker's C{group}-th /16 (0-based).
    """
    first, second = divmod(group, 256)
    n %= 250 * 250
    return f"{ATTACKER_FIRST_OCTET + first}.{second}.{n // 250}.{n % 250 + 1}"


def is_attacker_own(host: str) -> bool:
    return ATTACKER_FIRST_OCTET <= int(host.split(".", 1)[0]) < ATTACKER_FIRST_OCTET + 10


def anywhere_ip(n: int) -> str:
    """
    The C{n}-th of the fresh addresses announced anywhere: 150.0.0.1,
    150.1.0.1, ..., 199.249.0.1, then 150.0.1.1, ...: the first 12,500 in
    /16s of their own.
    """
    first, second = divmod(n % 12_500, 250)
    third, fourth = divmod(n // 12_500, 250)
    return f"{150 + first}.{second}.{third % 250}.{fourth % 250 + 1}"


def is_anywhere(host: str) -> bool:
    return 150 <= int(host.split(".", 1)[0]) < 200


class FreshEntries(Sequence):
    """
    One C{addr} of C{size} fresh addresses, made only as far as they are
    read: the relay's token bucket reads the first few and drops the rest,
    so the bench does not build a thousand addresses to throw them away.
    """

    def __init__(self, make, size: int, seen: int) -> None:
        self._make, self._size, self._seen = make, size, seen

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        if not 0 <= index < self._size:
            raise IndexError(index)
        return (self._make(), self._seen)


class _Peer:
    """
    What the address relay reads of a connection.
    """

    direction = Direction.INBOUND
    kind = ConnectionType.INBOUND
    address = None  # it announced no listening port
    node_id = None

    def __init__(self, host: str, now: float) -> None:
        self.remote_address = IPv4Address("TCP", host, 40000)
        self.connected_at = now

    def __str__(self) -> str:
        return self.remote_address.host


class _Connections:
    """
    The connection manager as the relay sees it: no other peer (nothing is
    relayed), no listening address.
    """

    ownAddresses: frozenset = frozenset()
    listeningAddress = None

    def peers(self) -> list:
        return []

    def isOwn(self, address: Address) -> bool:
        return False

    def addOwn(self, address: Address) -> None:
        pass


class _NoBans:
    def is_banned(self, host: str, now: float) -> bool:
        return False

    def is_discouraged(self, host: str, now: float) -> bool:
        return False


def honest_table(rng: random.Random, honest: int, sources: int, tried: int, now: float) -> AddrMan:
    book = AddrMan(random.Random(rng.getrandbits(64)))
    groups = rng.sample(range(40 * 250), honest + sources)
    hosts = [f"{20 + g // 250}.{g % 250}.{rng.randrange(250)}.{rng.randrange(1, 250)}" for g in groups]
    addresses = [Address.of(host, PORT) for host in hosts[:honest]]
    peers = [Address.of(host, PORT) for host in hosts[honest:]]
    for address in addresses:
        for source in rng.sample(peers, rng.randint(1, 3)):
            seen = now - rng.uniform(0, 86400)
            book.add([(address, seen)], source, now, ADDR_TIME_PENALTY_S)
    for address in rng.sample(addresses, tried):
        book.good(address, now - rng.uniform(0, 86400), test_before_evict=False)
    return book


def measure(book: AddrMan, now: float, attacker, rng_seed: int) -> dict:
    entries = list(book)
    ours = sum(1 for info in entries if attacker(info.address.host))
    picks = 0
    for _ in range(SELECTIONS):
        info = book.select(now)
        picks += info is not None and attacker(info.address.host)
    answer = book.get_addr(now)
    return {
        "attacker": ours,
        "attacker_tried": sum(1 for info in entries if info.in_tried and attacker(info.address.host)),
        "size": len(entries),
        "new": book.size_new,
        "select": picks / SELECTIONS,
        "getaddr": sum(1 for info in answer if attacker(info.address.host)) / max(1, len(answer)),
    }


def run(
    groups: int,
    kind: str = "own",
    rate: float = 40.0,
    minutes: int = 60,
    honest: int = 2000,
    sources: int = 50,
    tried: int = 300,
    initial_tokens: float = ADDR_INITIAL_TOKENS,
    hold: bool = True,
    seed: int = 1,
) -> dict:
    """
    One attack (see the module docstring); the figures at each checkpoint.
    """
    rng = random.Random(seed)
    clock = Clock()
    clock.advance(START)
    book = honest_table(rng, honest, sources, tried, START)
    honest_entries = len(book)
    config = NodeConfig(seeds=())
    relay = discovery.AddressRelay(
        config,
        reactor=clock,
        connections=_Connections(),
        book=lambda: book,
        bans=lambda: _NoBans(),
        relayKey=b"k" * 32,
        onNewAddresses=lambda learned: None,
        onAnswer=lambda peer: None,
        maintain=lambda: None,
        running=lambda: True,
    )
    counter = iter(range(10**9))
    if kind == "own":
        attacker = is_attacker_own

        used = [0] * groups

        def fresh() -> Address:
            # The address groups in turn, a turn for each source group
            # (connections go round the groups too), so that every (source
            # group, address group) pair, and so every new bucket the
            # attacker can reach, gets its share.
            group = (next(counter) // groups) % groups
            used[group] += 1
            return Address.of(attacker_ip(group, used[group]), PORT)
    else:
        attacker = is_anywhere

        def fresh() -> Address:
            return Address.of(anywhere_ip(next(counter)), PORT)

    sources_used = [0] * groups

    def connect(group: int) -> _Peer:
        host = attacker_ip(group, sources_used[group])
        sources_used[group] += 1
        return _Peer(host, clock.seconds())

    def send(peer: _Peer) -> None:
        relay.addrReceived(peer, FreshEntries(fresh, MAX_ADDR_ENTRIES, int(clock.seconds())))

    # The bucket a new connection starts with: bitp2p's, or the old 10.
    saved = discovery.ADDR_INITIAL_TOKENS
    discovery.ADDR_INITIAL_TOKENS = initial_tokens
    try:
        held = (
            [connect(i % groups) for i in range(min(GROUP_CAP * groups, HELD_MAX))]
            if hold
            else []
        )
        for peer in held:
            send(peer)
        figures = {}
        churn = 0
        for second in range(minutes * 60):
            base = START + second
            due = int(rate * (second + 1)) - int(rate * second)
            for j in range(due):
                clock.advance(base + j / max(due, 1) - clock.seconds())
                peer = connect(churn % groups)
                churn += 1
                send(peer)
                relay.peerClosed(peer, None)
            clock.advance(base + 1 - clock.seconds())
            if (second + 1) % HELD_EVERY_S == 0:
                for peer in held:
                    send(peer)
            if (second + 1) % 60 == 0 and (second + 1) // 60 in CHECKPOINTS_MIN:
                figures[(second + 1) // 60] = measure(book, clock.seconds(), attacker, seed)
    finally:
        discovery.ADDR_INITIAL_TOKENS = saved
    return {
        "groups": groups,
        "kind": kind,
        "rate": rate,
        "held": len(held),
        "connections": churn,
        "initial_tokens": initial_tokens,
        "honest_entries": honest_entries,
        "figures": figures,
    }


def row(r: dict) -> str:
    f = r["figures"]
    marks = [m for m in CHECKPOINTS_MIN if m in f]
    placed = " / ".join(f"{f[m]['attacker']:,}" for m in marks)
    select = " / ".join(f"{100 * f[m]['select']:.1f}" for m in marks)
    getaddr = f"{100 * f[marks[-1]]['getaddr']:.1f}"
    return (
        f"K={r['groups']:<4} {r['kind']:<4} tokens {r['initial_tokens']:g}: "
        f"attacker entries after {'/'.join(map(str, marks))} min {placed}; "
        f"outbound selection picks one {select} %; "
        f"getaddr answer {getaddr} % the attacker's "
        f"(table {f[marks[-1]]['size']:,}, {r['honest_entries']:,} honest; "
        f"{r['connections']:,} connections, {r['held']} held)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 4, 16, 64, 256],
                        help="the attacker's /16 groups, K (1 4 16 64 256)")
    parser.add_argument("--kinds", nargs="+", choices=("own", "any"), default=["own", "any"],
                        help="what it announces: addresses in its groups, or anywhere")
    parser.add_argument("--rate", type=float, default=40.0,
                        help="new attacker connections a second, in all (40)")
    parser.add_argument("--minutes", type=int, default=60, choices=CHECKPOINTS_MIN)
    parser.add_argument("--no-hold", dest="hold", action="store_false",
                        help="no held connections, only the churn")
    parser.add_argument("--before", action="store_true",
                        help="also with 10 tokens for a new connection (before the fix)")
    parser.add_argument("--honest", type=int, default=2000)
    parser.add_argument("--tried", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    tokens = [ADDR_INITIAL_TOKENS] + ([10] if args.before else [])
    for kind in args.kinds:
        for k in args.groups:
            for initial in tokens:
                started = time.process_time()
                r = run(k, kind, args.rate, args.minutes, honest=args.honest, tried=args.tried,
                        initial_tokens=initial, hold=args.hold, seed=args.seed)
                print(row(r) + f" [{time.process_time() - started:.0f} s CPU]", flush=True)


if __name__ == "__main__":
    main()
