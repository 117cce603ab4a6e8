"""
A Bitcoin-like network of N real bitp2p nodes on the in-memory network
(bitp2p.testing), for one simulated hour with churn, and what it costs.

Every node is the real L{bitp2p.Node} with the default L{NodeConfig}; only
C{port} (5000), C{interface} and the machine (its own address, see
L{ipOf}: C{--groups} /16 groups of public IPv4 space, 1,000 by default),
C{node_id}, C{seeds} and C{listen} differ. A fraction C{--reachable} (0.2,
as about 1 in 5 Bitcoin nodes) listens; the others run with
C{NodeConfig(listen=False)}: they open no listening port, announce port 0
in C{version} and never advertise themselves, so nobody learns their
address or dials them, and they dial out as any node. The seeds are the
first C{--seeds} reachable nodes behind one DNS name
(L{MemoryNetwork.addName}), which every node has as its only seed, as
Bitcoin's DNS seeds; they never leave.

The nodes join over C{--warmup} simulated minutes (the seeds first). Then
the measured C{--hours}: C{--churn} of the nodes (a fraction per hour) leave,
at evenly spaced moments, half of them cleanly (C{stopService}) and half as
a crash (the machine goes down: L{MemoryNetwork.hostDown}, and the node
stops with nothing reaching the network), and as many new nodes join, each
on a new address, reachable with the same probability. One-way latency per
pair of machines is drawn from a hash of the pair, lognormal around 50 ms
clipped to 5-300 ms (L{lognormalLatency}, the network's latency model).

Measured: for every node that joins, the time from its start to its 8
outbound slots full (distribution, for the warm-up's nodes and for the
newcomers after it); every simulated minute the graph of established
connections among running nodes (components, largest; and components among
the nodes up C{SETTLED_S} or more); for each reachable
newcomer, every simulated minute of its first hour, the fraction of the
running reachable nodes whose address manager holds its address (the curve,
and how many reach 90 %); per node per minute the messages (lines) and
bytes sent and the CPU spent (the process's CPU, less the harness's own
sampling and the profiled window, divided by the running nodes); the wall
time and peak RSS. A C{cProfile} window of C{--profile} simulated seconds,
C{--profile-at} minutes into the measured hour, splits the time between the
simulator (bitp2p/testing), the node (the rest of bitp2p), Twisted, the
standard library and this harness (a builtin's time counted where its
caller is), and lists the top functions; a negative C{--profile-at} puts
the window in the warm-up instead (ending that many minutes before its
end), where joining nodes cost the most.

The garbage collector is kept off the objects that exist after the nodes
are built and after the warm-up (C{gc.freeze}, C{--no-gc-freeze} to
leave it alone): see L{freeze}.

C{--relay core}: the counterfactual of Bitcoin Core's address relay for
comparison, every fresh address to 2 peers (the node's flood of an address
new to it to every full outbound peer switched off, for this process
only: L{relayAsCore}).

C{--small}: N reachable nodes (100 by default then) all started within the
first minute from one seed, reporting when every node knows every other
node's address (100 %) and the graph is connected.

Cost, measured on a shared 2-core machine (CPU seconds of this process;
docs/benchmarks.rst, section 10, has the figures): N = 1000, 7 to 9
minutes of CPU for the warm-up, the hour and a 30-minute tail; N = 10,000,
47 minutes for the warm-up alone and 8 GiB, so the hour does not fit in
30 minutes with today's node code: the default N is 1000, and
C{--nodes 10000} runs, slowly.

    python bench/scale.py [--nodes 1000] [--reachable 0.2] [--warmup 10]
        [--hours 1] [--churn 0.1] [--tail 0] [--profile 120] [--json OUT]
        [--plot scale.png]
    python bench/scale.py --small [--nodes 100] [--limit 30]
    python bench/scale.py --compare small.json n100.json n1000.json n10000.json
        [--plot docs/scale.png]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import random
import resource
import statistics
import sys
import time

from bitp2p import Node, NodeConfig
from bitp2p.address import Address
from bitp2p.peer import ConnectionType
from bitp2p.testing import EPOCH_2026, MemoryNetwork, lognormalLatency

PORT = 5000
SEED_NAME = "seed.scale.example"
MILESTONES_MIN = (1, 5, 10, 30, 60)
OUTBOUND = ConnectionType.OUTBOUND


SETTLED_S = 10.0
"""A node up this long has dialed: the graph "among settled nodes" leaves
out those that joined within it (see L{Scale.components})."""


def ipOf(i: int, groups: int) -> str:
    """
    The address of the C{i}-th node: C{groups} /16 groups taken in turn, in
    public IPv4 space (11.0.0.0 up: no private range, which a node treats as
    its own local network when in its own /16).
    """
    group, host = i % groups, i // groups
    return f"{11 + group // 250}.{group % 250}.{host // 250}.{1 + host % 250}"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Scale:
    """
    The network of one run: its nodes, who is running and reachable, and
    what has been measured.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        # The clock reads as a date (EPOCH_2026): at 0, addresses heard
        # second-hand would be "never seen" for two simulated hours.
        self.net = MemoryNetwork(
            latencyModel=lognormalLatency(seed=args.seed) if args.latency_spread else None,
            start=EPOCH_2026,
        )
        self.nodes: list[Node] = []
        self.reachable: dict[Node, bool] = {}
        self.joinedAt: dict[Node, float] = {}
        self.fullAt: dict[Node, float] = {}
        self.pendingFull: set[Node] = set()
        self.running: set[Node] = set()
        self.harnessCpu = 0.0

    def addNode(self, reachable: bool, seeds: tuple[str, ...]) -> Node:
        i = len(self.nodes)
        ip = ipOf(i, self.args.groups)
        config = NodeConfig(port=PORT, interface=ip, node_id=f"n{i}", seeds=seeds, listen=reachable)
        node = Node(config, reactor=self.net.host(ip), rng=random.Random(self.args.seed * 10**7 + i))
        self.nodes.append(node)
        self.reachable[node] = reachable
        return node

    def start(self, node: Node) -> None:
        node.startService()
        self.running.add(node)
        self.joinedAt[node] = self.net.now
        self.pendingFull.add(node)

    def leave(self, node: Node, crash: bool) -> None:
        self.running.discard(node)
        self.pendingFull.discard(node)
        if crash:
            self.net.hostDown(self.net.host(node.config.interface).ip)
        node.stopService()

    def checkFull(self) -> None:
        now = self.net.now
        done = [
            node
            for node in self.pendingFull
            if sum(1 for p in node.peers() if p.kind is OUTBOUND) >= node.config.outbound_slots
        ]
        for node in done:
            self.pendingFull.discard(node)
            self.fullAt[node] = now - self.joinedAt[node]

    def components(self, settledOnly: bool = False) -> list[int]:
        """
        The sizes of the connected components of the established
        connections among running nodes, largest first; with
        C{settledOnly}, among those up for C{SETTLED_S} or more (a node
        that joined at the instant of the sample has not dialed yet: it is
        a component of its own).
        """
        running = self.running
        if settledOnly:
            since = self.net.now - SETTLED_S
            running = [node for node in running if self.joinedAt[node] <= since]
        byId = {node.node_id: node for node in running}
        seen: set[str] = set()
        sizes = []
        for node in running:
            if node.node_id in seen:
                continue
            seen.add(node.node_id)
            todo, size = [node], 1
            while todo:
                for peer in todo.pop().peers():
                    other = byId.get(peer.node_id)
                    if other is not None and peer.node_id not in seen:
                        seen.add(peer.node_id)
                        todo.append(other)
                        size += 1
            sizes.append(size)
        return sorted(sizes, reverse=True)

    def knownBy(self, address: Address, exclude: Node) -> float:
        """
        The fraction of the running reachable nodes (but C{exclude}) whose
        address manager holds C{address}.
        """
        holders = total = 0
        for node in self.running:
            if node is exclude or not self.reachable[node]:
                continue
            total += 1
            if address in node.book:
                holders += 1
        return holders / total if total else 0.0


def fullSummary(times: list[float]) -> dict:
    return {
        "count": len(times),
        "median_s": percentile(times, 0.5),
        "p90_s": percentile(times, 0.9),
        "max_s": max(times) if times else None,
    }


def profileSplit(profiler: cProfile.Profile, top: int = 15) -> tuple[dict, list]:
    """
    The profiled time by where it was spent, and the C{top} functions by
    own time. A builtin's time (C{~}) goes to its callers' places, in
    proportion to the time it spent under each.
    """
    import pstats

    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    testing = os.sep + os.path.join("bitp2p", "testing") + os.sep
    node = os.sep + "bitp2p" + os.sep
    twisted = os.sep + "twisted" + os.sep
    bench = os.sep + "bench" + os.sep

    def place(filename: str) -> str:
        if testing in filename:
            return "simulator"
        if node in filename:
            return "node"
        if twisted in filename:
            return "twisted"
        if bench in filename:
            return "harness"
        return "stdlib"

    split = {"simulator": 0.0, "node": 0.0, "twisted": 0.0, "stdlib": 0.0, "harness": 0.0}
    rows = []
    for (filename, line, name), (cc, nc, tt, ct, callers) in stats.items():
        if filename == "~":
            total = sum(c[2] for c in callers.values()) or 1.0
            for (cf, _, _), c in callers.items():
                split[place(cf) if cf != "~" else "stdlib"] += tt * c[2] / total
            main = max(callers.items(), key=lambda item: item[1][2], default=None)
            where = place(main[0][0]) if main is not None and main[0][0] != "~" else "stdlib"
            label = f"{name} (builtin)"
        else:
            where = place(filename)
            split[where] += tt
            short = filename.split("site-packages" + os.sep)[-1].split("wt-scale" + os.sep)[-1]
            label = f"{short}:{line} {name}"
        rows.append((tt, nc, where, label))
    rows.sort(reverse=True)
    return split, [
        {"own_s": round(tt, 3), "calls": nc, "place": where, "function": label}
        for tt, nc, where, label in rows[:top]
    ]


def runLarge(args: argparse.Namespace) -> dict:
    wallStart, cpuStart = time.monotonic(), time.process_time()
    sim = Scale(args)
    net = sim.net
    rng = sim.rng
    n = args.nodes
    reachableCount = max(args.seeds, round(n * args.reachable))
    reachableSet = set(range(args.seeds)) | set(
        rng.sample(range(args.seeds, n), reachableCount - args.seeds)
    )
    seeds = (f"{SEED_NAME}:{PORT}",)
    for i in range(n):
        sim.addNode(i in reachableSet, seeds)
    seedNodes = sim.nodes[: args.seeds]
    net.addName(SEED_NAME, *(node.config.interface for node in seedNodes))
    warmup = 60 * args.warmup
    for i, node in enumerate(sim.nodes):
        at = 0.0 if i < args.seeds else warmup * (i - args.seeds) / max(1, n - args.seeds)
        net.callLater(at, sim.start, node)
    built = time.monotonic() - wallStart
    freeze(args)
    print(
        f"N={n}: {reachableCount} reachable ({args.seeds} seeds behind {SEED_NAME}), "
        f"{n - reachableCount} unreachable (listen=False), {args.groups} /16 groups; "
        f"built in {built:.1f} s wall",
        flush=True,
    )

    minutes: list[dict] = []
    curves: dict[Node, list[float]] = {}

    def mark() -> dict:
        return {
            "t": net.now - EPOCH_2026,
            "messages": net.messagesSent,
            "bytes": net.bytesSent,
            "cpu": time.process_time() - sim.harnessCpu,
            "running": len(sim.running),
        }

    def sampleMinute(phase: str) -> None:
        t0 = time.process_time()
        sizes = sim.components()
        m = mark()
        m.update(
            phase=phase, components=len(sizes), largest=sizes[0] if sizes else 0,
            settled=len(sim.components(settledOnly=True)),
        )
        minutes.append(m)
        sim.harnessCpu += time.process_time() - t0

    def sampleNewcomer(node: Node, address: Address) -> None:
        if node not in sim.running:
            return
        t0 = time.process_time()
        curves[node].append(sim.knownBy(address, node))
        if len(curves[node]) < 60:
            net.callLater(60, sampleNewcomer, node, address)
        sim.harnessCpu += time.process_time() - t0

    def join() -> None:
        node = sim.addNode(rng.random() < args.reachable, seeds)
        sim.start(node)
        if sim.reachable[node]:
            curves[node] = []
            net.callLater(60, sampleNewcomer, node, node.listeningAddress)

    def leave(crash: bool) -> None:
        candidates = [node for node in sim.running if node not in seedNodes]
        sim.leave(rng.choice(sorted(candidates, key=lambda node: node.node_id)), crash)

    def run(seconds: float, phase: str) -> None:
        end = net.now + seconds
        while net.now < end - 1e-9:
            net.advance(min(1.0, end - net.now))
            t0 = time.process_time()
            if sim.pendingFull:
                sim.checkFull()
            sim.harnessCpu += time.process_time() - t0
            if int(round(net.now)) % 60 == 0:
                sampleMinute(phase)
                if not args.quiet and int(round(net.now)) % 600 == 0:
                    last = minutes[-1]
                    print(
                        f"  t={(net.now - EPOCH_2026) / 60:.0f} min: {last['running']} running, "
                        f"{last['components']} component(s), largest {last['largest']}; "
                        f"wall {time.monotonic() - wallStart:.0f} s, "
                        f"CPU {time.process_time() - cpuStart:.0f} s, "
                        f"RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB",
                        flush=True,
                    )

    profiler = cProfile.Profile()
    profiled = {"cpu": 0.0, "sim": 0.0}

    def runProfiled(seconds: float, phase: str) -> None:
        cpu0, t0 = time.process_time(), net.now
        profiler.enable()
        run(seconds, phase)
        profiler.disable()
        profiled["cpu"] += time.process_time() - cpu0
        profiled["sim"] += net.now - t0

    sampleMinute("start")
    if args.profile_at < 0:
        # The window in the warm-up, ending |profile_at| minutes before its end.
        window = min(args.profile, warmup)
        before = max(0.0, warmup + 60 * args.profile_at - window)
        run(before, "warmup")
        runProfiled(window, "warmup")
        run(warmup - (net.now - EPOCH_2026), "warmup")
    else:
        run(warmup, "warmup")
    warmupNodes = list(sim.nodes)
    warmupPending = len(sim.pendingFull)
    freeze(args)
    warmupEnd = mark()
    warmupWall = time.monotonic() - wallStart

    # Churn: as many leave as join, at evenly spaced moments over the hours.
    hour = 3600 * args.hours
    events = round(args.churn * n * args.hours)
    for k in range(events):
        at = hour * (k + 0.5) / events
        net.callLater(at, leave, k % 2 == 1)
        net.callLater(at, join)
    newcomersFrom = len(sim.nodes)

    if args.profile_at >= 0:
        # (As late as the window still fits in a shorter hour.)
        profileAt = min(60 * args.profile_at, max(0.0, hour - args.profile))
        run(profileAt, "hour")
        runProfiled(min(args.profile, hour - profileAt), "hour")
    run(hour - (net.now - EPOCH_2026 - warmupEnd["t"]), "hour")
    profiledCpu = profiled["cpu"] if args.profile_at >= 0 else 0.0
    profiledSim = profiled["sim"] if args.profile_at >= 0 else 0.0
    hourEnd = mark()
    if args.tail:
        run(60 * args.tail, "tail")
    stopped = mark()

    newcomers = sim.nodes[newcomersFrom:]
    # (A warm-up node that joined in its last seconds fills its slots in
    # the hour: counted with its time; not full is at the hour's end.)
    warmupFull = [sim.fullAt[node] for node in warmupNodes if node in sim.fullAt]
    warmupNever = sum(1 for node in warmupNodes if node in sim.pendingFull)
    newcomerFull = [sim.fullAt[node] for node in newcomers if node in sim.fullAt]
    neverFull = [node for node in newcomers if node not in sim.fullAt]
    nodeMinutes = sum(
        m["running"] for m in minutes if m["phase"] == "hour"
    ) or 1
    hourMinutes = [m for m in minutes if m["phase"] == "hour"]
    span = (hourEnd["t"] - warmupEnd["t"]) / 60
    meanRunning = nodeMinutes / max(1, len(hourMinutes))
    cpuHour = hourEnd["cpu"] - warmupEnd["cpu"] - profiledCpu
    cpuMinutes = span - profiledSim / 60
    curveMean = []
    for age in range(60):
        values = [c[age] for c in curves.values() if len(c) > age]
        if values:
            curveMean.append((age + 1, statistics.mean(values), min(values), len(values)))
    reached90 = [
        next((age + 1 for age, f in enumerate(c) if f >= 0.9), None) for c in curves.values() if c
    ]
    split, top = profileSplit(profiler)
    result = {
        "mode": "large",
        "n": n,
        "reachable": reachableCount,
        "seeds": args.seeds,
        "groups": args.groups,
        "warmup_min": args.warmup,
        "hours": args.hours,
        "churn": args.churn,
        "left": events,
        "joined": len(newcomers),
        "outbound_full_warmup": {
            **fullSummary(warmupFull), "not_full": warmupNever, "pending_at_warmup_end": warmupPending,
        },
        "outbound_full_newcomers": {**fullSummary(newcomerFull), "not_full": len(neverFull)},
        "components_max": max(m["components"] for m in minutes if m["phase"] != "start"),
        "components_hour_max": max((m["components"] for m in hourMinutes), default=None),
        "components_settled_hour_max": max((m["settled"] for m in hourMinutes), default=None),
        "largest_min_share": min(
            (m["largest"] / m["running"] for m in hourMinutes if m["running"]), default=None
        ),
        "newcomer_curve": curveMean,
        "newcomer_milestones": {
            str(age): next(({"mean": c[1], "min": c[2], "count": c[3]} for c in curveMean
                            if c[0] == age), None)
            for age in MILESTONES_MIN
        },
        "newcomers_reachable": len(curves),
        "newcomers_reaching_90": sum(1 for r in reached90 if r is not None),
        "newcomers_minutes_to_90_median": percentile([r for r in reached90 if r], 0.5),
        "warmup_per_node_minute": perNodeMinute(minutes[0], warmupEnd, n / 2),
        "per_node_minute": {
            "messages": (hourEnd["messages"] - warmupEnd["messages"]) / (meanRunning * span),
            "bytes": (hourEnd["bytes"] - warmupEnd["bytes"]) / (meanRunning * span),
            "cpu_ms": 1000 * cpuHour / (meanRunning * cpuMinutes),
        },
        "wall_s": time.monotonic() - wallStart,
        "warmup_wall_s": warmupWall,
        "cpu_s": time.process_time() - cpuStart,
        "harness_cpu_s": sim.harnessCpu,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "profile": {
            "phase": "warm-up" if args.profile_at < 0 else "hour",
            "simulated_s": profiled["sim"],
            "cpu_s": profiled["cpu"],
            "split_s": split,
            "top": top,
        },
        "minutes": minutes,
    }
    del stopped
    return result


def freeze(args: argparse.Namespace) -> None:
    """
    Keep the cyclic garbage collector off what exists now (C{--gc-freeze}):
    one process holds every node's objects, so each full collection walks
    N nodes' worth (a real node walks its own); what becomes garbage later
    in a frozen cycle is never freed, which the peak RSS shows.
    """
    if args.gc_freeze:
        gc.collect()
        gc.freeze()


def perNodeMinute(start: dict, end: dict, meanRunning: float) -> dict:
    minutes = (end["t"] - start["t"]) / 60 or 1
    return {
        "messages": (end["messages"] - start["messages"]) / (meanRunning * minutes),
        "bytes": (end["bytes"] - start["bytes"]) / (meanRunning * minutes),
        "cpu_ms": 1000 * (end["cpu"] - start["cpu"]) / (meanRunning * minutes),
    }


def windowPerNodeMinute(r: dict, first: int, last: int) -> dict | None:
    """
    Messages, bytes and CPU per running node per minute over minutes
    C{first} to C{last} of a run's measured hour (from its samples, one a
    minute: the mean over those minutes of each minute's count over the
    nodes running), or L{None} if the run did not measure that far. Runs
    of different lengths compare over the same window.
    """
    hour = [m for m in r.get("minutes", ()) if m["phase"] != "start"]
    start = next((i for i, m in enumerate(hour) if m["phase"] == "hour"), None)
    if start is None or start + last - 1 >= len(hour) or first >= last:
        return None
    rows = []
    for i in range(start + first, start + last):
        before, now = hour[i - 1], hour[i]
        running = now["running"] or 1
        rows.append((
            (now["messages"] - before["messages"]) / running,
            (now["bytes"] - before["bytes"]) / running,
            1000 * (now["cpu"] - before["cpu"]) / running,
        ))
    return {
        key: sum(row[k] for row in rows) / len(rows)
        for k, key in enumerate(("messages", "bytes", "cpu_ms"))
    }


def runSmall(args: argparse.Namespace) -> dict:
    """
    N reachable nodes started within the first minute from one seed (behind
    the DNS name); when does every node know every other?
    """
    wallStart = time.monotonic()
    args.reachable, args.seeds = 1.0, 1
    sim = Scale(args)
    net = sim.net
    n = args.nodes
    seeds = (f"{SEED_NAME}:{PORT}",)
    for i in range(n):
        sim.addNode(True, seeds)
    net.addName(SEED_NAME, sim.nodes[0].config.interface)
    for i, node in enumerate(sim.nodes):
        net.callLater(60.0 * i / n, sim.start, node)
    addresses = [Address.of(node.config.interface, PORT) for node in sim.nodes]
    curve = []
    allAt = None
    step = 5.0
    while net.now - EPOCH_2026 < 60 * args.limit:
        net.advance(step)
        sim.checkFull()
        if len(sim.running) < n:
            continue
        known = [
            sum(1 for a in addresses if a in node.book and a != own) / (n - 1)
            for node, own in zip(sim.nodes, addresses)
        ]
        curve.append((net.now - EPOCH_2026, statistics.mean(known), min(known)))
        if min(known) >= 1.0 and len(sim.components()) == 1:
            allAt = net.now - EPOCH_2026
            break
    full = list(sim.fullAt.values())
    return {
        "mode": "small",
        "n": n,
        "all_know_all_s": allAt,
        "limit_min": args.limit,
        "last": curve[-1] if curve else None,
        "curve": curve,
        "outbound_full": {**fullSummary(full), "not_full": len(sim.pendingFull)},
        "wall_s": time.monotonic() - wallStart,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f} s"


def report(r: dict) -> None:
    if r["mode"] == "small":
        last = r["last"]
        when = (
            f"in {r['all_know_all_s'] / 60:.1f} simulated min"
            if r["all_know_all_s"] is not None
            else f"not within {r['limit_min']:g} simulated min "
            f"(then mean {last[1]:.3f}, least-informed {last[2]:.3f})"
            if last
            else "never all running"
        )
        o = r["outbound_full"]
        print(
            f"small N={r['n']}: every node knows every other (100 %) and the graph is connected "
            f"{when}; outbound slots full median {fmt(o['median_s'])}, p90 {fmt(o['p90_s'])}, "
            f"max {fmt(o['max_s'])} ({o['not_full']} never full); wall {r['wall_s']:.1f} s, "
            f"peak RSS {r['peak_rss_mib']:,.0f} MiB"
        )
        return
    w, c = r["outbound_full_warmup"], r["outbound_full_newcomers"]
    print(
        f"N={r['n']}: outbound slots full after joining: warm-up nodes median {fmt(w['median_s'])}, "
        f"p90 {fmt(w['p90_s'])}, max {fmt(w['max_s'])} ({w.get('pending_at_warmup_end', '-')} not "
        f"full at its end, {w['not_full']} at the hour's end); "
        f"newcomers ({c['count'] + c['not_full']}) median {fmt(c['median_s'])}, "
        f"p90 {fmt(c['p90_s'])}, max {fmt(c['max_s'])} ({c['not_full']} never full)"
    )
    print(
        f"N={r['n']}: churn {r['left']} left and {r['joined']} joined; components at most "
        f"{r['components_hour_max']} during the hour (largest at least "
        f"{100 * (r['largest_min_share'] or 0):.1f} % of the running nodes); among the nodes up "
        f"{SETTLED_S:g} s or more, at most {r.get('components_settled_hour_max')}"
    )
    ms = ", ".join(
        f"{age} min {100 * v['mean']:.1f} % (min {100 * v['min']:.1f} %, {v['count']})"
        if v else f"{age} min -"
        for age, v in r["newcomer_milestones"].items()
    )
    print(
        f"N={r['n']}: a reachable newcomer's address known to the running reachable nodes "
        f"(mean, least, newcomers measured): {ms}; {r['newcomers_reaching_90']} of "
        f"{r['newcomers_reachable']} reached 90 % (median "
        f"{r['newcomers_minutes_to_90_median'] or '-'} min)"
    )
    p, wu = r["per_node_minute"], r["warmup_per_node_minute"]
    print(
        f"N={r['n']}: per node per minute, measured hour: {p['messages']:.0f} messages, "
        f"{p['bytes']:,.0f} bytes, {p['cpu_ms']:.1f} ms CPU; warm-up: {wu['messages']:.0f} "
        f"messages, {wu['bytes']:,.0f} bytes, {wu['cpu_ms']:.1f} ms CPU"
    )
    print(
        f"N={r['n']}: wall {r['wall_s']:.0f} s (warm-up {r['warmup_wall_s']:.0f} s), CPU "
        f"{r['cpu_s']:.0f} s (harness sampling {r['harness_cpu_s']:.1f} s), peak RSS "
        f"{r['peak_rss_mib']:,.0f} MiB"
    )
    prof = r["profile"]
    if not prof["simulated_s"]:
        return
    total = sum(prof["split_s"].values()) or 1.0
    print(
        f"N={r['n']}: profile of {prof['simulated_s']:.0f} simulated s of the {prof['phase']} "
        f"({prof['cpu_s']:.1f} s CPU "
        "under cProfile): "
        + ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in prof["split_s"].items())
    )
    for row in prof["top"]:
        print(f"    {row['own_s']:8.3f} s {row['calls']:>10,} calls  {row['place']:<9} {row['function']}")


def plot(r: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if r["mode"] == "small":
        fig, ax = plt.subplots(figsize=(7, 4))
        t = [p[0] / 60 for p in r["curve"]]
        ax.plot(t, [p[1] for p in r["curve"]], label="mean")
        ax.plot(t, [p[2] for p in r["curve"]], "--", label="least-informed node")
        ax.set_xlabel("simulated minutes")
        ax.set_ylabel("fraction of the other nodes known")
        ax.set_title(f"bitp2p discovery, {r['n']} nodes from one seed")
    else:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
        curve = r["newcomer_curve"]
        ax.plot([c[0] for c in curve], [c[1] for c in curve], label="mean")
        ax.plot([c[0] for c in curve], [c[2] for c in curve], "--", label="least")
        ax.axhline(0.9, color="grey", linewidth=0.8)
        ax.set_xlabel("minutes since the newcomer joined")
        ax.set_ylabel("fraction of reachable nodes knowing its address")
        ax.set_title(f"N={r['n']}: a reachable newcomer's address", fontsize=10)
        minutes = [m for m in r["minutes"] if m["phase"] != "start"]
        ax2.plot([m["t"] / 60 for m in minutes], [m["components"] for m in minutes], label="components")
        ax2.set_xlabel("simulated minutes")
        ax2.set_ylabel("connected components")
        ax2.set_title("connection graph during warm-up and churn", fontsize=10)
        ax2.set_ylim(bottom=0)
    for a in fig.axes:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def compare(paths: list[str], plotPath: str | None) -> None:
    """
    The figures of several runs (their C{--json} files) side by side: one
    table (the discovery goals and the per-node cost), the growth of the
    cost against the smallest N, and, if asked, one PNG with the newcomer
    curves of every N and the cost per node against N.
    """
    runs = [json.load(open(path)) for path in paths]
    small = [r for r in runs if r["mode"] == "small"]
    large = sorted(
        (r for r in runs if r["mode"] == "large"), key=lambda r: (r["n"], r.get("relay") == "core")
    )
    for r in small:
        print(
            f"small N={r['n']}: every node knows every other after "
            f"{fmt(r['all_know_all_s'])} (goal: 2 min)"
        )
    rows = [(
        "N", "reachable", "outbound full p90 / max (newcomers)", "components (largest share); settled",
        "newcomer known at 1 / 10 / 60 min", "reached 90 %", "msgs / bytes / CPU ms per node-min",
        "wall / CPU / RSS",
    )]
    for r in large:
        c = r["outbound_full_newcomers"]
        m = r["newcomer_milestones"]

        def pct(age: str) -> str:
            v = m.get(age) or m.get(int(age))
            return f"{100 * v['mean']:.0f} %" if v else "-"

        p = r["per_node_minute"]
        rows.append((
            label(r), f"{r['reachable']:,}",
            f"{fmt(c['p90_s'])} / {fmt(c['max_s'])} ({c['not_full']} never)",
            f"{r['components_hour_max']} ({100 * (r['largest_min_share'] or 0):.1f} %)"
            + (
                f"; {r['components_settled_hour_max']} up {SETTLED_S:g} s"
                if r.get("components_settled_hour_max") is not None else ""
            ),
            f"{pct('1')} / {pct('10')} / {pct('60')}",
            f"{r['newcomers_reaching_90']} of {r['newcomers_reachable']}",
            f"{p['messages']:.0f} / {p['bytes']:,.0f} / {p['cpu_ms']:.1f}",
            f"{r['wall_s'] / 60:.0f} min / {r['cpu_s'] / 60:.0f} min / "
            f"{r['peak_rss_mib'] / 1024:.1f} GiB",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "  ".join("=" * w for w in widths)
    print(rule)
    for k, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if k == 0:
            print(rule)
    print(rule)
    flood = [r for r in large if r.get("relay") != "core"]
    # The window every run measured: the whole hour, or the first minutes
    # of it when a run measured less (its figures would otherwise be of
    # the network's first minutes against the others' whole hour).
    window = min((round(r.get("hours", 1) * 60) for r in flood), default=60)
    windows = {
        id(r): (windowPerNodeMinute(r, 1, window), windowPerNodeMinute(r, max(1, window - 4), window))
        for r in flood
    }
    useWindow = window < 60 and all(w[0] for w in windows.values())
    if len(flood) > 1:
        base = flood[0]
        for r in flood[1:]:
            b, p = base["per_node_minute"], r["per_node_minute"]
            print(
                f"growth N={base['n']:,} -> N={r['n']:,}: per node messages "
                f"x{p['messages'] / b['messages']:.2f}, bytes x{p['bytes'] / b['bytes']:.2f}, "
                f"CPU x{p['cpu_ms'] / b['cpu_ms']:.2f} (each over its measured hour)"
            )
        if useWindow:
            for k, what in ((0, f"minutes 1 to {window}"), (1, f"minutes {max(1, window - 4)} to {window}")):
                cells = ", ".join(
                    f"N={r['n']:,} {w[k]['messages']:.0f} / {w[k]['bytes']:,.0f} / {w[k]['cpu_ms']:.1f}"
                    for r in flood
                    for w in [windows[id(r)]]
                )
                print(f"same window, {what} of the hour (msgs / bytes / CPU ms per node-min): {cells}")
    if plotPath:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        for r in large:
            curve = r["newcomer_curve"]
            ax.plot([c[0] for c in curve], [c[1] for c in curve], label=f"N={label(r)} mean")
            ax.plot([c[0] for c in curve], [c[2] for c in curve], "--", linewidth=0.8,
                    label=f"N={label(r)} least")
        ax.axhline(0.9, color="grey", linewidth=0.8)
        ax.set_xlabel("minutes since a reachable newcomer joined")
        ax.set_ylabel("fraction of reachable nodes knowing its address")
        ax.set_ylim(0, 1.02)
        ax.set_title("a newcomer's address, with churn and 4 in 5 nodes unreachable", fontsize=10)
        ns = [r["n"] for r in flood]
        for key, name in (("messages", "messages"), ("bytes", "bytes / 100"), ("cpu_ms", "CPU ms x 10")):
            factor = {"bytes": 0.01, "cpu_ms": 10}.get(key, 1)
            values = [
                (windows[id(r)][0] if useWindow else r["per_node_minute"])[key] * factor
                for r in flood
            ]
            ax2.plot(ns, values, "o-", label=name)
            if useWindow:
                ax2.plot(ns, [windows[id(r)][1][key] * factor for r in flood], ":",
                         color=ax2.lines[-1].get_color(), label=f"{name}, its last 5 min")
        ax2.set_xscale("log")
        ax2.set_xlabel("N (nodes)")
        ax2.set_ylabel(
            f"per node per minute (first {window} min of the hour)" if useWindow
            else "per node per minute (measured hour)"
        )
        ax2.set_ylim(bottom=0)
        ax2.set_title("what a node costs, against N", fontsize=10)
        for a in (ax, ax2):
            a.grid(alpha=0.3)
            a.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plotPath, dpi=110)
        print(f"plot written to {plotPath}")


def relayAsCore() -> None:
    """
    Switch off, in this process, the node's flood of an address new to it
    to every full outbound peer (L{bitp2p.discovery}'s node-wide bucket,
    emptied and never refilled): every fresh address then goes to 2 peers,
    as Bitcoin Core relays.
    """
    from bitp2p import discovery

    discovery.NOVEL_FLOOD_BURST = 0
    discovery.NOVEL_FLOOD_RATE_PER_S = 0.0


def label(r: dict) -> str:
    """
    A run's name in the table: N, the relay if Core's, and how much of an
    hour was measured if not all of it (its figures then cover only the
    first minutes after the warm-up).
    """
    hours = r.get("hours", 1)
    return (
        f"{r['n']:,}"
        + (" (Core's relay)" if r.get("relay") == "core" else "")
        + (f" ({hours * 60:g} min)" if hours < 1 else "")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--nodes", type=int, default=None, help="N (1000; 100 with --small)")
    parser.add_argument("--reachable", type=float, default=0.2, help="fraction that listens")
    parser.add_argument("--seeds", type=int, default=10, help="reachable nodes behind the DNS seed")
    parser.add_argument("--groups", type=int, default=1000, help="/16 groups the nodes spread over")
    parser.add_argument("--warmup", type=float, default=10, help="simulated minutes of joining")
    parser.add_argument("--hours", type=float, default=1, help="simulated hours measured")
    parser.add_argument("--churn", type=float, default=0.1, help="fraction leaving (and joining) per hour")
    parser.add_argument("--tail", type=float, default=0, help="simulated minutes run on after the hour, without churn, for the newcomers' curves")
    parser.add_argument("--profile", type=float, default=120, help="simulated seconds under cProfile")
    parser.add_argument(
        "--profile-at", type=float, default=30,
        help="minutes into the hour the profile starts; negative: in the warm-up, ending that "
        "many minutes before its end",
    )
    parser.add_argument("--no-latency-spread", dest="latency_spread", action="store_false", help="50 ms on every link")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-gc-freeze", dest="gc_freeze", action="store_false",
        help="leave the garbage collector alone (by default what exists after building the "
        "nodes and after the warm-up is frozen, out of its way)",
    )
    parser.add_argument(
        "--relay", choices=("flood", "core"), default="flood",
        help="core: relay every fresh address to 2 peers as Bitcoin Core, without the node's "
        "flood of new addresses to its outbound peers (a comparison)",
    )
    parser.add_argument("--small", action="store_true", help="all N reachable from one seed: when does everyone know everyone")
    parser.add_argument("--limit", type=float, default=30, help="--small: simulated minutes at most")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--plot", default=None, help="write the curves to this PNG")
    parser.add_argument(
        "--compare", nargs="+", default=None, metavar="JSON",
        help="print the figures of earlier runs (their --json files) as one table, and with "
        "--plot draw their curves together; runs nothing",
    )
    args = parser.parse_args(argv)
    if args.compare:
        compare(args.compare, args.plot)
        return
    if args.nodes is None:
        args.nodes = 100 if args.small else 1000
    if args.nodes < 2 or not 0 < args.reachable <= 1 or args.seeds < 1:
        parser.error("need --nodes >= 2, 0 < --reachable <= 1, --seeds >= 1")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    if args.relay == "core":
        relayAsCore()
    r = runSmall(args) if args.small else runLarge(args)
    r["relay"] = args.relay
    report(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
        print(f"figures written to {args.json}")
    if args.plot:
        plot(r, args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
