"""
Crawler handshakes per second against local regtest nodes.

Server processes (``--servers``, 2 by default) each run their share of
``--nodes`` (200) real bitp2p nodes on ``--network regtest``, on ports of
127.0.0.1, in one reactor. Each node dials 3 earlier nodes of its process,
and the first node of every process dials the first of the first process,
so that the network is one; then they exchange addresses for
``--settle`` seconds. The crawler (``bitp2p.bitcoin.crawl``, in this
process) then maps the network from one seed, with ``--concurrency``
connections at once and no rate limit (``--rate``), each connection a
whole crawl visit: handshake, ping, getaddr and its answer, close.

Reported: nodes found and reachable, the crawl's wall time, handshakes
(reachable nodes) per second, the crawler's CPU seconds, and handshakes
per crawler CPU second; medians of ``--runs`` crawls of the same network.

    python bench/crawl.py [--nodes 200] [--servers 2] [--runs 3] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def serve(count: int, first: int | None, seed: int) -> None:
    """
    The server side: C{count} regtest nodes in this process; their ports
    go to stdout (one line), then it runs until stdin closes.
    """
    from twisted.internet import reactor, stdio
    from twisted.internet.protocol import Protocol

    from bitp2p.node import Node, NodeConfig

    rng = random.Random(seed)
    nodes = []
    for _ in range(count):
        node = Node(
            NodeConfig(network="regtest", port=0, interface="127.0.0.1", seeds=(), max_connections=125),
            reactor=reactor,
        )
        node.startService()
        nodes.append(node)
    ports = [node.listeningAddress.port for node in nodes]
    for index, node in enumerate(nodes):
        for other in rng.sample(range(index), min(3, index)):
            node.connect(f"127.0.0.1:{ports[other]}").addErrback(lambda _: None)
    if first is not None:
        nodes[0].connect(f"127.0.0.1:{first}").addErrback(lambda _: None)
    sys.stdout.write(" ".join(map(str, ports)) + "\n")
    sys.stdout.flush()

    class Quit(Protocol):
        def connectionLost(self, reason):
            reactor.stop()

    stdio.StandardIO(Quit())
    reactor.run()


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=100_000.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.first, args.serve * 7919 + (args.first or 0))
        return

    servers: list[subprocess.Popen] = []
    ports: list[int] = []
    share = [args.nodes // args.servers + (i < args.nodes % args.servers) for i in range(args.servers)]
    try:
        for count in share:
            command = [sys.executable, os.path.abspath(__file__), "--serve", str(count)]
            if ports:
                command += ["--first", str(ports[0])]
            server = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            servers.append(server)
            ports += [int(p) for p in server.stdout.readline().split()]
        if len(ports) != args.nodes:
            raise SystemExit(f"the servers started {len(ports)} nodes of {args.nodes}")
        time.sleep(args.settle)
        results = [crawlOnce(ports[0], args) for _ in range(args.runs)]
    finally:
        for server in servers:
            server.stdin.close()
        for server in servers:
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
    for index, (found, reachable, wall, spent) in enumerate(results, 1):
        print(
            f"run {index}: {reachable} reachable of {found} tried in {wall:.2f} s, "
            f"{reachable / wall:,.0f} handshakes/s, crawler CPU {spent:.2f} s"
        )
    found = statistics.median(r[0] for r in results)
    reachable = statistics.median(r[1] for r in results)
    rate = statistics.median(r[1] / r[2] for r in results)
    perCpu = statistics.median(r[1] / r[3] for r in results if r[3] > 0)
    print(
        f"crawl: {reachable:.0f} of {args.nodes} local nodes reachable ({found:.0f} tried), "
        f"{rate:,.0f} handshakes/s, {perCpu:,.0f} per crawler CPU second; "
        f"medians of {len(results)} crawls, concurrency {args.concurrency}"
    )


def crawlOnce(seed: int, args) -> tuple[int, int, float, float]:
    """
    One crawl from C{127.0.0.1:seed}: C{(tried, reachable, wall s, CPU s)}.
    """
    code = (
        "import sys, time, resource, json\n"
        "from twisted.internet import task\n"
        "from twisted.internet.defer import Deferred\n"
        "from bitp2p.bitcoin.crawl import crawl\n"
        "async def main(reactor):\n"
        "    u = resource.getrusage(resource.RUSAGE_SELF); c0 = u.ru_utime + u.ru_stime\n"
        "    t0 = time.perf_counter()\n"
        f"    snap = await crawl(reactor, 'regtest', seeds=['127.0.0.1:{seed}'],"
        f" concurrency={args.concurrency}, rate_per_s={args.rate}, quiet_s=2.0, addr_wait_s=5.0)\n"
        "    wall = time.perf_counter() - t0\n"
        "    u = resource.getrusage(resource.RUSAGE_SELF); c1 = u.ru_utime + u.ru_stime\n"
        "    s = snap.summary()\n"
        "    print(json.dumps([s['tried'], s['reachable'], wall, c1 - c0]))\n"
        "task.react(lambda r: Deferred.fromCoroutine(main(r)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    import json

    tried, reachable, wall, spent = json.loads(out.stdout.strip().splitlines()[-1])
    return tried, reachable, wall, spent


if __name__ == "__main__":
    main()
