"""
Discovery convergence and growth, on an in-memory network (bench/simnet.py).

N nodes, each on its own 10.a.b.1 address (so they fall in many different
/16 groups), all started within the first minute from one seed, with the
default intervals. Simulated time advances until every node knows at least
95 % of the others and the connection graph is connected (or a limit is
reached). Reported per N: simulated time to convergence, and per node per
simulated minute the messages and bytes sent and the CPU seconds spent; the
growth of those costs with N shows whether they stay flat. The curves (known
addresses over time, per N) are drawn to a PNG.

    python bench/convergence.py [--sizes 100 300 1000] [--plot docs/convergence.png]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from simnet import SimReactor  # noqa: E402

SAMPLE_S = 30.0


def ip_of(i: int) -> str:
    return f"10.{i % 250}.{i // 250}.1"


def run(n: int, limit_s: float, quiet: bool = False) -> dict:
    from twisted.logger import globalLogPublisher

    from bitp2p import Node, NodeConfig
    from bitp2p.address import Address

    net = SimReactor()
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

    curve = []
    converged_at = None
    cpu0 = time.process_time()
    while net.now < limit_s:
        net.advance(SAMPLE_S)
        fractions = [
            len(addresses.intersection(info.address for info in node.book) - {node.listeningAddress})
            / (n - 1)
            for node in nodes
            if node.running
        ]
        curve.append((net.now, sum(fractions) / len(fractions), min(fractions)))
        if min(fractions) >= 0.95 and len(fractions) == n and connected():
            converged_at = net.now
            break
        if not quiet and int(net.now) % 300 == 0:
            print(f"  N={n} t={net.now:.0f}s mean={curve[-1][1]:.3f} min={curve[-1][2]:.3f}",
                  flush=True)
    cpu = time.process_time() - cpu0
    minutes = net.now / 60
    for node in nodes:
        node.stopService()
    return {
        "n": n,
        "converged_s": converged_at,
        "messages_per_node_min": net.lines / n / minutes,
        "bytes_per_node_min": net.bytes / n / minutes,
        "cpu_ms_per_node_min": 1000 * cpu / n / minutes,
        "peers_mean": None,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--limit", type=float, default=3 * 3600, help="simulated seconds")
    parser.add_argument("--plot", default=None, help="write the curves to this PNG")
    args = parser.parse_args()
    results = []
    for n in args.sizes:
        r = run(n, args.limit)
        results.append(r)
        done = f"{r['converged_s'] / 60:.1f} simulated min" if r["converged_s"] else "not within the limit"
        print(
            f"N={n}: converged in {done}; per node per minute: "
            f"{r['messages_per_node_min']:.0f} messages, {r['bytes_per_node_min']:,.0f} bytes, "
            f"{r['cpu_ms_per_node_min']:.1f} ms CPU",
            flush=True,
        )
    if args.plot:
        plot(results, args.plot)
        print(f"curves written to {args.plot}")


if __name__ == "__main__":
    main()
