"""
Discovery convergence and growth, on an in-memory network (bitp2p.testing).

N nodes, each on its own 10.a.b.1 address (so they fall in many different
/16 groups), all started within the first minute from one seed, with the
default intervals and limits. Simulated time advances until every node knows
at least 95 % of the others and the connection graph is connected (or a
limit is reached), then runs on: C{--settle} simulated seconds (2 hours) for
relaying to settle (each round of self-advertisements is passed on until
every link has carried every address), then C{--steady} (30 minutes)
measured as the steady state.

Reported per N: simulated time to convergence, and per node per simulated
minute the messages and bytes sent and the CPU spent (the whole simulation's
CPU, divided by N), for the discovery phase, the settling and the steady
state (and, for the steady state, the Python function calls per node per
minute, counted under cProfile over a further 10 simulated minutes: CPU time
is noisy on a shared machine, the call count is repeatable). The
steady-state figures are the per-node cost of running the network;
their growth with N (100, 300, 1000 by default) says whether that cost stays
flat. The curves (known addresses over time, per N) and the growth are drawn
to PNG files.

    python bench/convergence.py [--sizes 100 300 1000] [--plot docs/convergence.png]
        [--growth-plot docs/growth.png]
"""

from __future__ import annotations

import argparse
import cProfile
import math
import random
import time

from bitp2p.testing import EPOCH_2026, MemoryNetwork

SAMPLE_S = 30.0
CALLS_WINDOW_S = 600.0


def ip_of(i: int) -> str:
    return f"10.{i % 250}.{i // 250}.1"


def run(n: int, limit_s: float, steady_s: float, settle_s: float, quiet: bool = False) -> dict:
    from bitp2p import Node, NodeConfig
    from bitp2p.address import Address

    net = MemoryNetwork(start=EPOCH_2026)
    epoch = net.now
    seed = f"{ip_of(0)}:5000"
    nodes = []
    for i in range(n):
        config = NodeConfig(
            port=5000,
            interface=ip_of(i),
            seeds=() if i == 0 else (seed,),
            node_id=f"n{i}",
        )
        node = Node(config, reactor=net.host(ip_of(i)), rng=random.Random(i))
        nodes.append(node)
        net.callLater(60.0 * i / n, node.startService)
    addresses = {Address.of(ip_of(i), 5000) for i in range(n)}
    byId = {node.node_id: node for node in nodes}

    def connected() -> bool:
        seen = {nodes[0].node_id}
        todo = [nodes[0]]
        while todo:
            for peer in todo.pop().peers():
                if peer.node_id not in seen:
                    seen.add(peer.node_id)
                    todo.append(byId[peer.node_id])
        return len(seen) == n

    def mark() -> tuple[float, int, int, float]:
        return (net.now - epoch, net.messagesSent, net.bytesSent, time.process_time())

    def cost(start, end) -> dict:
        minutes = n * (end[0] - start[0]) / 60
        return {
            "messages": (end[1] - start[1]) / minutes,
            "bytes": (end[2] - start[2]) / minutes,
            "cpu_ms": 1000 * (end[3] - start[3]) / minutes,
        }

    curve = []
    converged_at = None
    begin = mark()
    while net.now - epoch < limit_s:
        net.advance(SAMPLE_S)
        fractions = [
            len(addresses.intersection(info.address for info in node.book) - {node.listeningAddress})
            / (n - 1)
            for node in nodes
            if node.running
        ]
        curve.append((net.now - epoch, sum(fractions) / len(fractions), min(fractions)))
        if min(fractions) >= 0.95 and len(fractions) == n and connected():
            converged_at = net.now - epoch
            break
        if not quiet and int(net.now - epoch) % 300 == 0:
            print(f"  N={n} t={net.now - epoch:.0f}s mean={curve[-1][1]:.3f} min={curve[-1][2]:.3f}",
                  flush=True)
    discovered = mark()
    # Relaying settles down only once every link has carried every address
    # (see AddressRelay._relay): until then each round of self-advertisements is
    # still passed on. The steady state is measured after that.
    net.advance(settle_s)
    settled = mark()
    net.advance(steady_s)
    steady = mark()
    # CPU time is noisy on a shared machine, and part of it is the cache
    # misses of a bigger heap; the number of Python function calls is a
    # repeatable measure of the work itself. Counted over a further window,
    # under cProfile (which slows the run down, so not in the timed one).
    profiler = cProfile.Profile()
    profiler.enable()
    net.advance(CALLS_WINDOW_S)
    profiler.disable()
    calls = sum(entry.callcount for entry in profiler.getstats())
    peers = [len(node.peers()) for node in nodes]
    for node in nodes:
        node.stopService()
    return {
        "n": n,
        "converged_s": converged_at,
        "discovery": cost(begin, discovered),
        "settling": cost(discovered, settled),
        "steady": {
            **cost(settled, steady),
            "calls": calls / (n * CALLS_WINDOW_S / 60),
        },
        "peers_mean": sum(peers) / n,
        "peers_min": min(peers),
        "peers_max": max(peers),
        "curve": curve,
    }


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        t = [p[0] / 60 for p in r["curve"]]
        (line,) = ax.plot(t, [p[1] for p in r["curve"]], label=f"N={r['n']} mean")
        ax.plot(t, [p[2] for p in r["curve"]], linestyle="--", color=line.get_color(),
                label=f"N={r['n']} least-informed node")
    ax.axhline(0.95, color="grey", linewidth=0.8)
    ax.set_xlabel("simulated minutes")
    ax.set_ylabel("fraction of the other nodes known")
    ax.set_title("bitp2p discovery from one seed (in-memory network, default intervals)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_growth(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["n"] for r in results]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    for ax, key, label in zip(
        axes,
        ("messages", "bytes", "cpu_ms", "calls"),
        ("messages sent", "bytes sent", "CPU ms (whole simulation)", "Python calls"),
    ):
        for phase, style in (("steady", "o-"), ("settling", "^:"), ("discovery", "s--")):
            if key in results[0][phase]:
                ax.plot(sizes, [r[phase][key] for r in results], style, label=phase)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("nodes (N)")
        ax.set_title(f"{label} per node per minute", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--limit", type=float, default=3 * 3600, help="simulated seconds")
    parser.add_argument(
        "--settle", type=float, default=7200,
        help="simulated seconds after convergence before the steady state is measured",
    )
    parser.add_argument(
        "--steady", type=float, default=1800, help="simulated seconds of steady state measured"
    )
    parser.add_argument("--plot", default=None, help="write the curves to this PNG")
    parser.add_argument("--growth-plot", default=None, help="write the growth to this PNG")
    args = parser.parse_args()
    results = []
    for n in args.sizes:
        r = run(n, args.limit, args.steady, args.settle)
        results.append(r)
        done = (
            f"{r['converged_s'] / 60:.1f} simulated min"
            if r["converged_s"]
            else "not within the limit"
        )
        d, se, st = r["discovery"], r["settling"], r["steady"]
        print(
            f"N={n}: converged in {done}; peers per node {r['peers_mean']:.1f} "
            f"(min {r['peers_min']}, max {r['peers_max']}); per node per minute, "
            f"discovery: {d['messages']:.0f} messages, {d['bytes']:,.0f} bytes, "
            f"{d['cpu_ms']:.1f} ms CPU; settling: {se['messages']:.0f} messages, "
            f"{se['bytes']:,.0f} bytes; steady: {st['messages']:.0f} messages, "
            f"{st['bytes']:,.0f} bytes, {st['cpu_ms']:.1f} ms CPU, "
            f"{st['calls']:,.0f} Python calls",
            flush=True,
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(
            f"growth N={first['n']} -> N={last['n']} (x{last['n'] / first['n']:.0f} nodes, "
            f"log2 ratio {math.log2(last['n']) / math.log2(first['n']):.2f}): steady per-node "
            + ", ".join(
                f"{key} x{last['steady'][key] / first['steady'][key]:.2f}"
                for key in ("messages", "bytes", "cpu_ms", "calls")
            )
        )
    if args.plot:
        plot(results, args.plot)
        print(f"curves written to {args.plot}")
    if args.growth_plot and len(results) > 1:
        plot_growth(results, args.growth_plot)
        print(f"growth written to {args.growth_plot}")


if __name__ == "__main__":
    main()
