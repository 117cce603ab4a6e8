"""
Churn soak: N real node processes on loopback (``twistd -n bitp2p``, each
with a data directory and the control API), of which all but a few stable
ones are killed (SIGKILL) and restarted at random for a while.

Reported, and checked (the script exits 1 if a check fails):

  - the network stays connected: at the end, the graph of the peers every
    node lists (``getpeerinfo``) is one component;
  - every node's connection count stays within its limits, sampled all
    along (``getconnectioncount`` <= ``--max-connections``);
  - the stable nodes (never killed) leak neither file descriptors nor
    memory: their open descriptors (``/proc/PID/fd``) and resident memory
    (``VmRSS``) at the start of the churn and at the end.

    python bench/churn.py [--nodes 50] [--seconds 180] [--stable 3] [--seed 1]
                          [--max-connections 32]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import descriptors, free_ports, proc_status, rpc, wait_for  # noqa: E402

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
PASSWORD = "churn"
SAMPLE_S = 10
SETTLE_S = 15


def call(rpcPort: int, method: str, params=()) -> object:
    return rpc(rpcPort, PASSWORD, method, params)


def usage(pid: int) -> tuple[int, int]:
    """
    Open file descriptors and resident memory (KiB) of process C{pid}.
    """
    return descriptors(pid), proc_status(pid, "VmRSS")


class Node:
    def __init__(self, index: int, port: int, rpcPort: int, seed: int, root: str, maxConn: int):
        self.index, self.port, self.rpcPort = index, port, rpcPort
        self.datadir = os.path.join(root, f"n{index}")
        self.args = [
            TWISTD, "-n", "--pidfile=", "--logfile=/dev/null", "bitp2p",
            "--port", str(port), "--interface", "127.0.0.1", "--datadir", self.datadir,
            "--rpc-port", str(rpcPort), "--rpc-password", PASSWORD,
            "--max-connections", str(maxConn), "--max-outbound", "4",
        ]
        if seed != port:
            self.args += ["--seed", f"127.0.0.1:{seed}"]
        else:
            self.args += ["--no-seeds"]
        self.process: subprocess.Popen | None = None
        self.startedAt = 0.0

    def start(self) -> None:
        self.startedAt = time.monotonic()
        self.process = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
        self.process = None

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        try:
            call(self.rpcPort, "uptime")
            return True
        except OSError:
            return False


def connected(nodes: list[Node]) -> tuple[bool, int]:
    ids, edges = {}, []
    for node in nodes:
        info = call(node.rpcPort, "getnetworkinfo")
        ids[info["node_id"]] = node.index
    for node in nodes:
        for peer in call(node.rpcPort, "getpeerinfo"):
            if peer["node_id"] in ids:
                edges.append((node.index, ids[peer["node_id"]]))
    links = {n.index: set() for n in nodes}
    for a, b in edges:
        links[a].add(b)
        links[b].add(a)
    seen, todo = {nodes[0].index}, [nodes[0].index]
    while todo:
        for other in links[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    connected.outside = sorted(n.index for n in nodes if n.index not in seen)
    return len(seen) == len(nodes), len(edges)


def run(count: int, seconds: float, stable: int, seed: int, maxConn: int, quiet: bool) -> bool:
    rng = random.Random(seed)
    root = tempfile.mkdtemp(prefix="bitp2p-churn-")
    ports = free_ports(2 * count)
    nodes = [Node(i, ports[2 * i], ports[2 * i + 1], ports[0], root, maxConn) for i in range(count)]
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    ok = True
    try:
        for node in nodes:
            node.start()
        if not wait_for(lambda: all(n.ready() for n in nodes), 60, 0.2):
            say("churn: not every node came up")
            return False
        began = time.monotonic()
        formed = wait_for(lambda: connected(nodes)[0], 60, 0.2)
        say(
            f"churn: network formed (one component) in {time.monotonic() - began:.1f} s"
            if formed
            else "churn: the network did not form in 60 s; churning anyway"
        )
        steady = nodes[:stable]
        before = {n.index: usage(n.process.pid) for n in steady}
        churners = nodes[stable:]
        kills = restarts = 0
        worst = 0
        deadline = time.monotonic() + seconds
        down: list[tuple[float, Node]] = []
        # Every SAMPLE_S, whether the nodes up for SETTLE_S or more form one
        # component (a node just restarted is still finding its peers).
        samples, split, nextSample = 0, [], time.monotonic() + SAMPLE_S
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= nextSample:
                nextSample = now + SAMPLE_S
                settled = [n for n in nodes if n.up and now - n.startedAt >= SETTLE_S]
                try:
                    whole = len(settled) < 2 or connected(settled)[0]
                except OSError:
                    whole = True  # (not a sample: a node did not answer)
                else:
                    samples += len(settled) >= 2
                if not whole:
                    split.append((len(connected.outside), len(settled)))
            for when, node in list(down):
                if now >= when:
                    node.start()
                    restarts += 1
                    down.remove((when, node))
            live = [n for n in churners if n.up]
            if live and rng.random() < 0.5:
                victim = rng.choice(live)
                victim.kill()
                kills += 1
                down.append((now + rng.uniform(0.5, 3.0), victim))
            running = [n for n in nodes if n.up]
            for node in rng.sample(running, min(5, len(running))):
                try:
                    worst = max(worst, call(node.rpcPort, "getconnectioncount"))
                except OSError:
                    pass  # just restarted
            time.sleep(0.5)
        stopped = time.monotonic()
        for _, node in down:
            node.start()
            restarts += 1
        if not wait_for(lambda: all(n.ready() for n in nodes), 60, 0.2):
            say("churn: not every node came back")
            return False
        joined = wait_for(lambda: connected(nodes)[0], 90, 0.2)
        recovered = time.monotonic() - stopped
        edges = connected(nodes)[1]
        for index in connected.outside:
            node = nodes[index]
            say(
                f"churn: node {index} is not in node 0's component: "
                f"{call(node.rpcPort, 'getconnectioncount')} connections, "
                f"{len(call(node.rpcPort, 'getnodeaddresses', [0]))} known addresses"
            )
        after = {n.index: usage(n.process.pid) for n in steady}
        say(
            f"churn: during the churn, the nodes up for {SETTLE_S} s or more were one network "
            f"in {samples - len(split)} of {samples} samples (every {SAMPLE_S} s)"
            + "".join(f"; once {out} of {of} were outside" for out, of in split)
        )
        say(
            f"churn: {count} nodes ({stable} stable), {seconds:g} s, {kills} kills, "
            f"{restarts} restarts; network connected at the end: "
            f"{f'yes, {recovered:.1f} s after the churn stopped' if joined else 'NO'} "
            f"({edges} peer links listed); most connections seen on one node: {worst} "
            f"(limit {maxConn})"
        )
        for index in sorted(before):
            (fd0, rss0), (fd1, rss1) = before[index], after[index]
            say(
                f"churn: stable node {index}: file descriptors {fd0} -> {fd1}, "
                f"RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB"
            )
            # Descriptors follow the connections (a dozen or so either way);
            # a leak would grow with every one of the hundreds of churns.
            if fd1 > fd0 + 2 * maxConn or rss1 > rss0 * 1.5 + 8 * 1024:
                ok = False
        ok = ok and joined and worst <= maxConn and not split
        say(f"churn: {'passed' if ok else 'FAILED'}")
        return ok
    finally:
        for node in nodes:
            node.kill()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--stable", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    # Not 16: with at most 16 inbound candidates, eviction protects every
    # one (as in Bitcoin Core), so a full seed refuses every newcomer.
    parser.add_argument("--max-connections", type=int, default=32)
    args = parser.parse_args()
    ok = run(args.nodes, args.seconds, args.stable, args.seed, args.max_connections, quiet=False)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
