"""
An eclipse attack on one node, on an in-memory network (bitp2p.testing).

How many of the victim's outbound slots stay with honest peers across
restarts, with the address manager (bitp2p/addrman.py) and with the simple
address book of bitp2p 0.1 (bitp2p/addrbook.py).

The network: C{--honest} honest nodes, each on its own public IPv4 address in
a /16 of its own (20.0.0.1, 20.1.0.1, ...), each seeded with up to three of
the nodes started before it, all started within the first minute, default
settings. After C{--form} simulated seconds the victim (99.1.0.1, in a /16
of its own, with a data directory) starts, seeded with three honest nodes,
and runs C{--join} seconds on the honest network alone.

The attacker controls C{--groups} /16 networks (66.1.0.0/16, 66.2.0.0/16,
...) and floods the victim with addresses inside them
(C{--addresses} distinct ones, every one of which answers: a listener that
does the handshake, answers pings, and answers C{getaddr} with 1000 more
attacker addresses, all with fresh times). It speaks the wire protocol
itself (JSON lines, no bitp2p code): from each of its groups it keeps
dialing the victim from fresh addresses, C{--conns} connections per group
at a time, to take as many inbound slots as it can; each connection sends
an C{addr} of 1000 attacker addresses as soon as its handshake is done, and
another every C{--flood-interval} seconds. The victim's per-peer token
bucket lets few of those in (1 at once, then 0.1 a second); the answer of
an attacker listener to the victim's own C{getaddr} (whenever a feeler or an
outbound connection reaches one) is let in whole. Reported: the attacker
addresses sent to the victim, those it accepted (let past the token buckets
and handed to its address manager; about half through each way), and those
in its tables at the end, next to how many of the honest nodes it still
knows.

After C{--attack} seconds of that, the victim is restarted C{--restarts}
times: stopped (it saves peers.json and anchors.json), down for C{--down}
seconds, started again from the same data directory, and run C{--run}
seconds with the attacker still at it; then its outbound peers are counted,
honest or attacker. Variants: the address manager with anchors (the
default node), without anchors (anchors.json deleted before each start),
and the simple address book, with and without anchors. Everything else is
the same, seeded, run for run.

The bound: a node makes at most one automatic outbound connection per
network group, so an attacker holding K groups holds at most K of the
C{max_outbound} slots; once the slots are filled, at least
C{max_outbound - K} go to honest peers (4 of 8 for K = 4). What differs
between the address managers is whether the others are filled, whether
from honest peers, and what the victim still knows of the honest network.

One line per variant, then a comparison line:

    python bench/eclipse.py [--quick] [--honest 80] [--groups 4]
        [--addresses 48000] [--restarts 3] [--variants addrman simple ...]

At scale (C{--scale N}): the honest network is C{bench/scale.py}'s (N nodes,
1 in 5 reachable, over C{--network-groups} /16 groups, lognormal latency,
DNS seeds; formed over C{--form}, 600 s by default), and one victim per
attacker share (C{--shares}, of the network's /16 groups: 1 % and 10 %) and
variant (addrman and simple by default) joins it, each with its own
attacker, all at once (join 600 s, attack 1800 s, then the restarts, 600 s
each):

    python bench/eclipse.py --scale 10000 [--shares 0.01 0.1] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time

from twisted.internet.protocol import ClientFactory, Factory
from twisted.protocols.basic import LineReceiver

from bitp2p.testing import EPOCH_2026, MemoryNetwork

PORT = 5000
VICTIM_IP = "99.1.0.1"
ATTACKER_FIRST_OCTET = 66
ADDR_MAX = 1000  # entries in one addr message (the protocol's maximum)
TICK_S = 30.0  # how often the attacker tops up its connections and floods

VARIANTS = {
    # name: (address_manager, anchors kept)
    "addrman": ("addrman", True),
    "addrman-noanchors": ("addrman", False),
    "simple": ("simple", True),
    "simple-noanchors": ("simple", False),
}
LABELS = {
    "addrman": "addrman",
    "addrman-noanchors": "addrman without anchors",
    "simple": "simple",
    "simple-noanchors": "simple without anchors",
}


def honest_ip(i: int) -> str:
    return f"{20 + i // 250}.{i % 250}.0.1"


def attacker_ip(group: int, j: int) -> str:
    """
    The C{j}-th address of the attacker's C{group}-th /16 (0-based; 250
    groups under each first octet from C{ATTACKER_FIRST_OCTET} on).
    """
    first = ATTACKER_FIRST_OCTET + group // 250
    return f"{first}.{group % 250 + 1}.{j // 250}.{j % 250 + 1}"


def is_attacker(host: str) -> bool:
    first = host.split(".", 1)[0]
    return first.isdigit() and ATTACKER_FIRST_OCTET <= int(first) < ATTACKER_FIRST_OCTET + 10


class AttackerProtocol(LineReceiver):
    """
    One attacker connection, either side: the handshake, pongs, and 1000
    attacker addresses for every C{getaddr}.
    """

    delimiter = b"\n"
    MAX_LENGTH = 4 * 1024 * 1024

    def __init__(
        self, attacker: Attacker, node_id: str, dialer: bool, group: int | None, to_victim: bool
    ) -> None:
        self.attacker = attacker
        self.node_id = node_id
        self.dialer = dialer
        self.group = group
        self.to_victim = to_victim
        self.sentVersion = self.gotVersion = self.gotVerack = False
        self.established = False
        self.nextFlood = 0.0

    def sendMessage(self, message: dict) -> None:
        self.sendLine(json.dumps(message, separators=(",", ":")).encode())

    def sendVersion(self) -> None:
        self.sentVersion = True
        self.sendMessage(
            {
                "type": "version",
                "node_id": self.node_id,
                "port": PORT,
                "user_agent": "/attacker:1/",
                "timestamp": int(self.attacker.net.seconds()),
            }
        )

    def sendAddresses(self) -> None:
        self.sendMessage({"type": "addr", "peers": self.attacker.batch(ADDR_MAX, self.to_victim)})

    def connectionMade(self) -> None:
        self.attacker.connected(self)
        if self.dialer:
            self.sendVersion()

    def lineReceived(self, line: bytes) -> None:
        if not line.strip():
            return
        message = json.loads(line)
        kind = message.get("type")
        if kind == "version":
            if not self.sentVersion:
                self.sendVersion()
            self.sendMessage({"type": "verack"})
            self.gotVersion = True
        elif kind == "verack":
            self.gotVerack = True
        elif kind == "ping":
            self.sendMessage({"type": "pong", "nonce": message["nonce"]})
        elif kind == "getaddr":
            self.sendAddresses()
        if not self.established and self.gotVersion and self.gotVerack:
            self.established = True
            self.attacker.established(self)

    def connectionLost(self, reason) -> None:
        self.attacker.lost(self)


class _ListenerFactory(Factory):
    """
    Every attacker address listens with this factory: whoever dials it gets
    an attacker that answers.
    """

    noisy = False

    def __init__(self, attacker: Attacker) -> None:
        self.attacker = attacker
        self.count = 0

    def buildProtocol(self, addr):
        self.count += 1
        return AttackerProtocol(
            self.attacker,
            f"atk-l{self.count}",
            dialer=False,
            group=None,
            to_victim=addr.host == self.attacker.victim[0],
        )


class _DialFactory(ClientFactory):
    """
    One attacker connection to the victim, from one attacker address.
    """

    noisy = False

    def __init__(self, attacker: Attacker, group: int, ip: str) -> None:
        self.attacker, self.group, self.ip = attacker, group, ip

    def buildProtocol(self, addr):
        node_id = "atk-c-" + self.ip.replace(".", "-")
        return AttackerProtocol(
            self.attacker, node_id, dialer=True, group=self.group, to_victim=True
        )

    def clientConnectionFailed(self, connector, reason) -> None:
        self.attacker.refused(self.group)


class Attacker:
    """
    The attacker: C{groups} /16 networks, C{addresses} addresses in them
    (interleaved over the groups), a listener on every one, and connections
    to the victim, C{conns} per group at a time.

    @ivar sent: addresses sent to the victim in addr messages.
    @ivar sent_others: addresses sent to others (honest nodes that learned
        attacker addresses from the victim and dialed them).
    @ivar refusals: connections to the victim refused.
    """

    def __init__(
        self,
        net: MemoryNetwork,
        groups: int,
        addresses: int,
        conns: int,
        flood_interval_s: float,
        victim: tuple[str, int],
        rng: random.Random,
        first_group: int = 0,
    ) -> None:
        self.net = net
        self.rng = rng
        self.groups = groups
        self.first_group = first_group
        self.conns = conns
        self.flood_interval_s = flood_interval_s
        self.victim = victim
        per_group = -(-addresses // groups)
        if per_group > 250 * 256:
            raise ValueError(f"at most {250 * 256} addresses per group")
        self.per_group = per_group
        self.pool = [
            f"{attacker_ip(first_group + i % groups, i // groups)}:{PORT}"
            for i in range(addresses)
        ]
        self.sent = self.sent_others = 0
        self.refusals = 0
        self.nextIp = [0] * groups
        self.pending = [0] * groups
        self.live: list[dict[AttackerProtocol, None]] = [{} for _ in range(groups)]
        self.running = False
        factory = _ListenerFactory(self)
        for entry in self.pool:
            net.listenTCP(PORT, factory, interface=entry.rsplit(":", 1)[0])

    def batch(self, n: int, to_victim: bool) -> list[dict]:
        """
        C{n} addresses drawn from the pool, as fresh addr entries (random,
        so that whatever part of a message the victim's rate limit lets in
        is news).
        """
        now = int(self.net.seconds())
        entries = [
            {"addr": address, "time": now}
            for address in self.rng.sample(self.pool, min(n, len(self.pool)))
        ]
        if to_victim:
            self.sent += len(entries)
        else:
            self.sent_others += len(entries)
        return entries

    def start(self) -> None:
        self.running = True
        self._tick()

    def stop(self) -> None:
        self.running = False

    def _tick(self) -> None:
        if not self.running:
            return
        now = self.net.seconds()
        for group in range(self.groups):
            for _ in range(self.conns - len(self.live[group]) - self.pending[group]):
                self._dial(group)
            for proto in self.live[group]:
                if proto.established and now >= proto.nextFlood:
                    self._flood(proto)
        self.net.callLater(TICK_S, self._tick)

    def _dial(self, group: int) -> None:
        # A fresh address of the group for every connection.
        ip = attacker_ip(self.first_group + group, self.nextIp[group] % self.per_group)
        self.nextIp[group] += 1
        self.pending[group] += 1
        host, port = self.victim
        self.net.host(ip).connectTCP(host, port, _DialFactory(self, group, ip))

    def _flood(self, proto: AttackerProtocol) -> None:
        proto.nextFlood = self.net.seconds() + self.flood_interval_s
        proto.sendAddresses()

    def refused(self, group: int) -> None:
        self.pending[group] -= 1
        self.refusals += 1

    def connected(self, proto: AttackerProtocol) -> None:
        if proto.group is not None:
            self.pending[proto.group] -= 1
            self.live[proto.group][proto] = None

    def established(self, proto: AttackerProtocol) -> None:
        if proto.group is not None:
            self._flood(proto)

    def lost(self, proto: AttackerProtocol) -> None:
        if proto.group is not None:
            self.live[proto.group].pop(proto, None)


def split(node, kind) -> tuple[int, int]:
    """
    A node's established peers of one L{ConnectionType}: (honest, attacker).
    """
    peers = [peer for peer in node.peers() if peer.kind is kind]
    attacker = sum(is_attacker(peer.remote) for peer in peers)
    return len(peers) - attacker, attacker


def run(
    variant: str = "addrman",
    honest: int = 80,
    groups: int = 4,
    addresses: int = 48000,
    conns: int = 20,
    restarts: int = 3,
    form_s: float = 900.0,
    join_s: float = 1200.0,
    attack_s: float = 3600.0,
    down_s: float = 60.0,
    run_s: float = 900.0,
    flood_interval_s: float = 600.0,
    seed: int = 1,
    quiet: bool = True,
) -> dict:
    """
    Run one variant of the attack (see the module docstring) and return
    its figures.
    """
    from bitp2p import Node, NodeConfig
    from bitp2p.constants import ANCHORS_FILE
    from bitp2p.peer import ConnectionType

    address_manager, anchors = VARIANTS[variant]
    rng = random.Random(seed)
    net = MemoryNetwork(start=EPOCH_2026)
    nodes = []
    for i in range(honest):
        seeds = tuple(f"{honest_ip(j)}:{PORT}" for j in rng.sample(range(i), min(3, i)))
        config = NodeConfig(port=PORT, interface=honest_ip(i), seeds=seeds, node_id=f"h{i}")
        node = Node(config, reactor=net.host(honest_ip(i)), rng=random.Random(seed * 100003 + i))
        nodes.append(node)
        net.callLater(60.0 * i / honest, node.startService)
    honest_addresses = {f"{honest_ip(i)}:{PORT}" for i in range(honest)}
    victim_seeds = tuple(
        f"{honest_ip(j)}:{PORT}" for j in rng.sample(range(honest), min(3, honest))
    )
    datadir = tempfile.mkdtemp(prefix="bitp2p-eclipse-")
    starts = [0]
    # Attacker addresses the victim took past each connection's token
    # bucket (what it handed its address manager), from attacker
    # connections inbound, and from attacker listeners it dialed (the
    # answers to its getaddr).
    accepted = {"inbound": 0, "dialed": 0}

    def new_victim():
        config = NodeConfig(
            port=PORT,
            interface=VICTIM_IP,
            seeds=victim_seeds,
            node_id="victim",
            datadir=datadir,
            address_manager=address_manager,
        )
        starts[0] += 1
        victim = Node(
            config, reactor=net.host(VICTIM_IP), rng=random.Random(seed * 7919 + starts[0])
        )
        received = victim.discovery.addressesReceived

        def counting(peer, entries, relay):
            if is_attacker(peer.remote):
                kind = "inbound" if peer.kind is ConnectionType.INBOUND else "dialed"
                accepted[kind] += sum(1 for address, _ in entries if is_attacker(address.host))
            return received(peer, entries, relay)

        victim.discovery.addressesReceived = counting  # measurement only: the relay calls it
        victim.startService()
        return victim

    def say(text: str) -> None:
        if not quiet:
            print(f"  [{variant} t={(net.now - EPOCH_2026) / 60:.0f} min] {text}", flush=True)

    try:
        net.advance(form_s)
        victim = new_victim()
        net.advance(join_s)
        before = split(victim, ConnectionType.OUTBOUND)
        say(f"joined: outbound honest/attacker {before}, knows {len(victim.book)} addresses")
        attacker = Attacker(
            net, groups, addresses, conns, flood_interval_s, (VICTIM_IP, PORT),
            random.Random(seed * 31 + 7),
        )
        attacker.start()
        net.advance(attack_s)
        under_attack = split(victim, ConnectionType.OUTBOUND)
        say(
            f"attacked: outbound honest/attacker {under_attack}, inbound honest/attacker "
            f"{split(victim, ConnectionType.INBOUND)}, {attacker.sent:,} addresses sent, "
            f"accepted {accepted}, book {len(victim.book):,}"
        )
        honest_out, attacker_out, attacker_in, honest_in = [], [], [], []
        for r in range(restarts):
            victim.stopService()
            net.advance(down_s)
            path = os.path.join(datadir, ANCHORS_FILE)
            if not anchors and os.path.exists(path):
                os.remove(path)
            victim = new_victim()
            net.advance(run_s)
            h, a = split(victim, ConnectionType.OUTBOUND)
            hi, ai = split(victim, ConnectionType.INBOUND)
            honest_out.append(h)
            attacker_out.append(a)
            honest_in.append(hi)
            attacker_in.append(ai)
            say(
                f"restart {r + 1}: outbound honest {h}, attacker {a}; inbound honest {hi}, "
                f"attacker {ai}; accepted {accepted}; attacker addresses sent to others "
                f"{attacker.sent_others:,}"
            )
        book = victim.book
        known = [str(info.address) for info in book]
        attacker_known = [info for info in book if is_attacker(info.address.host)]
        config = victim.config
        result = {
            "variant": variant,
            "max_outbound": config.outbound_slots,
            "groups": groups,
            "bound": config.outbound_slots - groups,
            "before": before,
            "under_attack": under_attack,
            "honest_outbound": honest_out,
            "attacker_outbound": attacker_out,
            "honest_inbound": honest_in,
            "attacker_inbound": attacker_in,
            "inbound_slots": config.inbound_slots,
            "inbound_group_cap": config.inbound_group_cap,
            "refused": attacker.refusals,
            "sent": attacker.sent,
            "accepted": accepted["inbound"] + accepted["dialed"],
            "accepted_inbound": accepted["inbound"],
            "accepted_dialed": accepted["dialed"],
            "book_size": len(known),
            "attacker_in_book": len(attacker_known),
            "attacker_tried": sum(1 for info in attacker_known if info.in_tried),
            "honest_in_book": len(honest_addresses.intersection(known)),
            "honest_tried": sum(
                1 for info in book if str(info.address) in honest_addresses and info.in_tried
            ),
            "honest": honest,
        }
        attacker.stop()
        victim.stopService()
        for node in nodes:
            node.stopService()
        net.advance(1.0)
        return result
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


def _list(values: list[int]) -> str:
    return ", ".join(str(v) for v in values)


def summary(r: dict) -> str:
    """
    The one-line report of a variant (the README quotes these figures).
    """
    return (
        f"eclipse {LABELS[r['variant']]}: honest outbound after restarts "
        f"{_list(r['honest_outbound'])} of {r['max_outbound']} (bound {r['bound']}); "
        f"attacker outbound {_list(r['attacker_outbound'])}; "
        f"attacker inbound {_list(r['attacker_inbound'])} of {r['inbound_slots']} "
        f"(cap {r['inbound_group_cap']} per group, {r['refused']:,} refused); "
        f"attacker addresses sent {r['sent']:,}, accepted {r['accepted']:,}, "
        f"in the victim's book {r['attacker_in_book']:,} "
        f"({r['attacker_tried']:,} tried); "
        f"honest addresses kept {r['honest_in_book']} of {r['honest']} "
        f"({r['honest_tried']} tried)"
    )


def comparison(results: list[dict]) -> str:
    def mean(values: list[int]) -> str:
        return f"{sum(values) / len(values):.1f}"

    return (
        "eclipse comparison: honest outbound (mean over restarts, of "
        f"{results[0]['max_outbound']}, bound {results[0]['bound']}) "
        + ", ".join(f"{LABELS[r['variant']]} {mean(r['honest_outbound'])}" for r in results)
        + "; honest addresses kept (of "
        f"{results[0]['honest']}) "
        + ", ".join(f"{LABELS[r['variant']]} {r['honest_in_book']}" for r in results)
    )


def run_at_scale(
    size: int,
    shares: tuple[float, ...] = (0.01, 0.1),
    variants: tuple[str, ...] = ("addrman", "simple"),
    reachable: float = 0.2,
    network_groups: int = 1000,
    addresses: int = 48000,
    conns: int = 20,
    restarts: int = 3,
    form_s: float = 600.0,
    join_s: float = 600.0,
    attack_s: float = 1800.0,
    down_s: float = 60.0,
    run_s: float = 600.0,
    flood_interval_s: float = 600.0,
    seed: int = 1,
    quiet: bool = True,
) -> list[dict]:
    """
    The attack inside a Bitcoin-like network of C{size} nodes (as
    C{bench/scale.py} builds it: C{reachable} of them listen, spread over
    C{network_groups} /16 groups, lognormal latency, DNS seeds): one victim
    per attacker share and variant, all in the same network, each with its
    own attacker holding C{share} of the network's /16 groups (at least
    one; the groups of different attackers are apart), started, attacked
    and restarted together. Returns one result per victim.
    """
    import scale

    from bitp2p import Node, NodeConfig
    from bitp2p.constants import ANCHORS_FILE
    from bitp2p.peer import ConnectionType

    args = argparse.Namespace(
        nodes=size, reachable=reachable, seeds=10, groups=network_groups, seed=seed,
        latency_spread=True, gc_freeze=False,
    )
    sim = scale.Scale(args)
    net = sim.net
    rng = sim.rng
    count = max(args.seeds, round(size * reachable))
    reachable_set = set(range(args.seeds)) | set(
        rng.sample(range(args.seeds, size), count - args.seeds)
    )
    seeds = (f"{scale.SEED_NAME}:{PORT}",)
    for i in range(size):
        sim.addNode(i in reachable_set, seeds)
    net.addName(scale.SEED_NAME, *(node.config.interface for node in sim.nodes[: args.seeds]))
    for i, node in enumerate(sim.nodes):
        at = 0.0 if i < args.seeds else form_s * (i - args.seeds) / max(1, size - args.seeds)
        net.callLater(at, sim.start, node)
    honest_addresses = {
        f"{node.config.interface}:{PORT}" for node in sim.nodes if sim.reachable[node]
    }

    plans = []
    first_group = 0
    for k, (share, variant) in enumerate((s, v) for s in shares for v in variants):
        groups = max(1, round(share * network_groups))
        address_manager, anchors = VARIANTS[variant]
        plans.append({
            "share": share, "variant": variant, "groups": groups, "first_group": first_group,
            "ip": f"99.{k + 1}.0.1", "address_manager": address_manager, "anchors": anchors,
            "datadir": tempfile.mkdtemp(prefix="bitp2p-eclipse-"), "starts": 0,
        })
        first_group += groups

    def new_victim(plan: dict) -> Node:
        plan["starts"] += 1
        config = NodeConfig(
            port=PORT, interface=plan["ip"], seeds=seeds, node_id=f"victim-{plan['first_group']}",
            datadir=plan["datadir"], address_manager=plan["address_manager"],
        )
        victim = Node(
            config, reactor=net.host(plan["ip"]),
            rng=random.Random(seed * 7919 + 101 * plan["starts"] + plan["first_group"]),
        )
        victim.startService()
        return victim

    def say(text: str) -> None:
        if not quiet:
            print(f"  [scale t={(net.now - EPOCH_2026) / 60:.0f} min] {text}", flush=True)

    try:
        net.advance(form_s)
        say(f"formed: {len(sim.running)} nodes running")
        victims = [new_victim(plan) for plan in plans]
        net.advance(join_s)
        for plan, victim in zip(plans, victims):
            plan["before"] = split(victim, ConnectionType.OUTBOUND)
            plan["attacker"] = Attacker(
                net, plan["groups"], addresses, conns, flood_interval_s, (plan["ip"], PORT),
                random.Random(seed * 31 + plan["first_group"]), first_group=plan["first_group"],
            )
            plan["attacker"].start()
        say("joined: " + ", ".join(f"{p['variant']} {p['share']:g} {p['before']}" for p in plans))
        net.advance(attack_s)
        for plan, victim in zip(plans, victims):
            plan["under_attack"] = split(victim, ConnectionType.OUTBOUND)
            plan.update(honest_outbound=[], attacker_outbound=[], attacker_inbound=[])
        for r in range(restarts):
            for victim in victims:
                victim.stopService()
            net.advance(down_s)
            for plan in plans:
                path = os.path.join(plan["datadir"], ANCHORS_FILE)
                if not plan["anchors"] and os.path.exists(path):
                    os.remove(path)
            victims = [new_victim(plan) for plan in plans]
            net.advance(run_s)
            for plan, victim in zip(plans, victims):
                h, a = split(victim, ConnectionType.OUTBOUND)
                plan["honest_outbound"].append(h)
                plan["attacker_outbound"].append(a)
                plan["attacker_inbound"].append(split(victim, ConnectionType.INBOUND)[1])
            say(f"restart {r + 1}: " + ", ".join(
                f"{p['variant']} {p['share']:g} {p['honest_outbound'][-1]}" for p in plans
            ))
        results = []
        for plan, victim in zip(plans, victims):
            book = victim.book
            known = {str(info.address) for info in book}
            results.append({
                "size": size,
                "reachable": count,
                "network_groups": network_groups,
                "share": plan["share"],
                "variant": plan["variant"],
                "groups": plan["groups"],
                "max_outbound": victim.config.outbound_slots,
                "before": plan["before"],
                "under_attack": plan["under_attack"],
                "honest_outbound": plan["honest_outbound"],
                "attacker_outbound": plan["attacker_outbound"],
                "attacker_inbound": plan["attacker_inbound"],
                "sent": plan["attacker"].sent,
                "book_size": len(known),
                "attacker_in_book": sum(1 for info in book if is_attacker(info.address.host)),
                "honest_in_book": len(honest_addresses & known),
                "honest": len(honest_addresses),
            })
            plan["attacker"].stop()
            victim.stopService()
        return results
    finally:
        for plan in plans:
            shutil.rmtree(plan["datadir"], ignore_errors=True)


def scale_summary(r: dict) -> str:
    """
    The one-line report of one victim of L{run_at_scale}.
    """
    return (
        f"eclipse at scale N={r['size']:,} ({r['reachable']:,} reachable), attacker "
        f"{100 * r['share']:g} % of {r['network_groups']} /16 groups ({r['groups']}), "
        f"{LABELS[r['variant']]}: honest outbound before the attack {r['before'][0]}, "
        f"after restarts {_list(r['honest_outbound'])} of {r['max_outbound']}; attacker "
        f"outbound {_list(r['attacker_outbound'])}, inbound {_list(r['attacker_inbound'])}; "
        f"attacker addresses sent {r['sent']:,}, in the victim's book {r['attacker_in_book']:,} "
        f"of {r['book_size']:,}; honest reachable addresses known {r['honest_in_book']:,} "
        f"of {r['honest']:,}"
    )


QUICK = dict(
    honest=30, addresses=12000, conns=16, restarts=2,
    form_s=600.0, join_s=900.0, attack_s=1800.0, run_s=600.0,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true",
                        help="a reduced run: " + ", ".join(f"{k}={v:g}" for k, v in QUICK.items()))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--honest", type=int, help="honest nodes (80)")
    parser.add_argument("--groups", type=int, help="attacker /16 groups, K (4)")
    parser.add_argument("--addresses", type=int, help="distinct attacker addresses (48000)")
    parser.add_argument("--conns", type=int, help="attacker connections kept per group (20)")
    parser.add_argument("--restarts", type=int, help="victim restarts (3)")
    parser.add_argument("--form", dest="form_s", type=float,
                        help="simulated seconds the honest network forms before the victim "
                        "starts (900)")
    parser.add_argument("--join", dest="join_s", type=float,
                        help="simulated seconds the victim runs before the attack (1200)")
    parser.add_argument("--attack", dest="attack_s", type=float,
                        help="simulated seconds of attack before the first restart (3600)")
    parser.add_argument("--down", dest="down_s", type=float,
                        help="simulated seconds the victim is down at each restart (60)")
    parser.add_argument("--run", dest="run_s", type=float,
                        help="simulated seconds the victim runs after each restart (900)")
    parser.add_argument("--flood-interval", dest="flood_interval_s", type=float,
                        help="seconds between two addr floods of one attacker connection (600)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="print progress")
    parser.add_argument("--scale", type=int, default=None, metavar="N",
                        help="the attack inside a Bitcoin-like network of N nodes "
                        "(bench/scale.py's), one victim per --shares and variant")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.01, 0.1],
                        help="--scale: the attacker's shares of the network's /16 groups")
    parser.add_argument("--network-groups", type=int, default=1000,
                        help="--scale: /16 groups the honest nodes spread over")
    parser.add_argument("--reachable", type=float, default=0.2,
                        help="--scale: fraction of the honest nodes that listen")
    args = parser.parse_args()
    if args.scale is not None:
        params = {}
        for name in ("addresses", "conns", "restarts", "form_s", "join_s", "attack_s",
                     "down_s", "run_s", "flood_interval_s"):
            value = getattr(args, name)
            if value is not None:
                params[name] = value
        variants = tuple(args.variants) if args.variants != list(VARIANTS) else ("addrman", "simple")
        started = time.process_time()
        for r in run_at_scale(
            args.scale, tuple(args.shares), variants, args.reachable, args.network_groups,
            seed=args.seed, quiet=not args.verbose, **params,
        ):
            print(scale_summary(r), flush=True)
        print(f"  ({time.process_time() - started:.0f} s CPU)", flush=True)
        return
    params = dict(QUICK) if args.quick else {}
    for name in ("honest", "groups", "addresses", "conns", "restarts", "form_s", "join_s",
                 "attack_s", "down_s", "run_s", "flood_interval_s"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    results = []
    for variant in args.variants:
        started = time.process_time()
        r = run(variant, seed=args.seed, quiet=not args.verbose, **params)
        results.append(r)
        print(summary(r), flush=True)
        if args.verbose:
            print(f"  ({time.process_time() - started:.1f} s CPU)", flush=True)
    if len(results) > 1:
        print(comparison(results))


if __name__ == "__main__":
    main()
