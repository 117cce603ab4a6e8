"""
Discovery convergence with real node processes on loopback.

N bitp2p nodes, each a separate OS process running the real Twisted reactor,
each listening on its own loopback address spread over many /16 groups
(node i on 127.(1 + i % 50).(i // 50).1, all on the same port; Linux answers
on all of 127/8 with no set-up). Node 0 is the seed; every other node starts
with only node 0's address. Nodes dial from their own listening address, so
peers see the right source host. The processes are started in small batches
(so that they do not all import Twisted at the same instant).

Intervals are shortened so that a run takes minutes, not hours: maintenance
every 0.5 s, self-advertisement every 5 s (--advertise-interval), a feeler
every 1 s (bitp2p's 2 minutes, compressed by the same factor as the
advertisement), seed fallback after 5 s, ping every 10 s. Everything else keeps bitp2p's defaults
but one: THE ADDRESS RATE LIMIT IS CHANGED. bitp2p accepts 0.1 unsolicited
addresses per second from each peer (Bitcoin Core's figure, sized for one
self-advertisement per peer every 10 minutes); with the advertisement 120
times as frequent, each peer's own advertisements (0.2/s) exhaust that budget
and relayed addresses are nearly all dropped: at N=200 discovery then stalls
(mean 85 %, least-informed node 57 % after 300 s). So by default the rate is
compressed by the same factor as the advertise interval: 0.1 * 600 / 5 = 12
addresses per second per peer (the bucket size, 1000, is unchanged).
--addr-rate R sets another rate, --addr-rate default keeps bitp2p's own; the
summary line states the rate used.

Every node writes what it knows (the addresses in its book, the ids of its
established peers) to a file every 0.5 s; the benchmark reads those files
every 0.5 s. "Full knowledge" is reached when every node knows at least
--target (default 95 %) of the other nodes' addresses and the graph of
established connections is connected. Reported: wall time to full knowledge
counted from the start of the last node process (and from the first), and to
100 % if that comes within --limit seconds (counted from the first start);
established peers per node (and the nodes with no inbound peer); the total
resident memory of the node processes; the addresses dropped by the rate
limit (counted from bitp2p's "Rate limit: dropped" debug log events).
--plot draws the known fraction (mean and least-informed node) over time.

    python bench/realnet.py [--nodes 200] [--port 7000] [--limit 300] [--target 0.95]
                            [--plot realnet.png]
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from bitp2p.constants import ADDR_RATE_PER_S, ADVERTISE_INTERVAL_S, FEELER_INTERVAL_S

POLL_S = 0.5
BATCH = 20  # processes started together
BATCH_WAIT_S = 15.0  # longest wait for one batch to be listening
PROGRESS_S = 10.0  # parent progress line every this many seconds
GROUPS = 50  # distinct /16 groups used
MAX_NODES = GROUPS * 255


def ip_of(i: int) -> str:
    return f"127.{1 + i % GROUPS}.{i // GROUPS}.1"


# -- node process --------------------------------------------------------------


def node_main(args: argparse.Namespace) -> None:
    """
    One node: run until killed, until the parent goes away, or until its
    lifetime is over; write its state to C{statedir/I.json} every 0.5 s.
    """
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError
    from twisted.internet.task import LoopingCall
    from twisted.logger import LogLevel, globalLogBeginner

    from bitp2p import Direction, Node, NodeConfig

    # Drop every log event but the first few errors (kept in the stderr file
    # the parent gave us, which it shows if this process dies).
    errors = [0]
    dropped = [0]

    def observer(event: dict) -> None:
        if event.get("log_format", "").startswith("Rate limit: dropped"):
            dropped[0] += event.get("dropped", 0)  # counted, not logged
            return
        if event.get("log_level", LogLevel.info) >= LogLevel.error and errors[0] < 20:
            errors[0] += 1
            from twisted.logger import formatEvent

            sys.stderr.write(f"{formatEvent(event)}\n")
            failure = event.get("log_failure")
            if failure is not None:
                sys.stderr.write(failure.getTraceback())
            sys.stderr.flush()

    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)

    i = args.node
    ip = ip_of(i)
    extra = {}
    if args.addr_rate is not None:
        extra["addr_rate_per_s"] = args.addr_rate
    node = Node(
        NodeConfig(
            port=args.port,
            interface=ip,
            seeds=() if i == 0 else (f"{ip_of(0)}:{args.port}",),
            node_id=f"n{i}",
            maintenance_interval_s=0.5,
            advertise_interval_s=args.advertise_interval,
            feeler_interval_s=FEELER_INTERVAL_S * args.advertise_interval / ADVERTISE_INTERVAL_S,
            seed_fallback_s=5,
            ping_interval_s=10,
            **extra,
        )
    )
    try:
        node.startService()
    except CannotListenError as e:
        sys.stderr.write(f"cannot listen on {ip}:{args.port}: {e.socketError}\n")
        sys.exit(3)

    path = os.path.join(args.statedir, f"{i}.json")
    temp = path + ".tmp"
    parent = args.parent

    def stop() -> None:
        if reactor.running:
            reactor.stop()

    def write() -> None:
        if os.getppid() != parent:  # the benchmark is gone: so are we
            stop()
            return
        peers = node.peers()
        state = {
            "t": time.time(),
            "known": [str(info.address) for info in node.book],
            "peers": [p.node_id for p in peers],
            "outbound": sum(p.direction is Direction.OUTBOUND for p in peers),
            "dropped": dropped[0],
        }
        with open(temp, "w") as f:
            json.dump(state, f, separators=(",", ":"))
        os.replace(temp, path)

    LoopingCall(write).start(POLL_S, now=True)
    reactor.callLater(args.lifetime, stop)
    reactor.addSystemEventTrigger("before", "shutdown", node.stopService)
    reactor.run()


# -- benchmark -------------------------------------------------------------------


def check_addresses(n: int, port: int) -> None:
    """
    Fail with one line if a node's address cannot be bound (127/8 not all
    local here) or its port is already taken.
    """
    for i in range(n):
        ip = ip_of(i)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # As Twisted does: a port in TIME_WAIT is not busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((ip, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                sys.exit(f"realnet: port {port} is busy on {ip} (node {i}); pick another with --port")
            sys.exit(f"realnet: cannot bind {ip}:{port} (node {i}): {e.strerror}")
        finally:
            sock.close()


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def read_state(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def last_lines(path: str, count: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [line.rstrip() for line in f if line.strip()]
    except OSError:
        return "(no output)"
    return " | ".join(lines[-count:]) or "(no output)"


class Net:
    """
    The node processes of one run and what their state files say.
    """

    def __init__(self, args: argparse.Namespace, statedir: str) -> None:
        self.args = args
        self.n = args.nodes
        self.statedir = statedir
        self.procs: list[subprocess.Popen] = []
        self.addresses = [f"{ip_of(i)}:{args.port}" for i in range(self.n)]
        self.states: list[dict | None] = [None] * self.n
        self.first = 0.0  # monotonic time of the first start
        self.curve: list[tuple[float, float, float]] = []  # (since first, mean, min)

    def state_path(self, i: int) -> str:
        return os.path.join(self.statedir, f"{i}.json")

    def log_path(self, i: int) -> str:
        return os.path.join(self.statedir, f"{i}.log")

    def spawn(self, i: int) -> None:
        a = self.args
        command = [
            sys.executable, os.path.abspath(__file__), "--node", str(i),
            "--port", str(a.port), "--statedir", self.statedir,
            "--parent", str(os.getpid()), "--lifetime", str(a.limit + 120),
            "--advertise-interval", str(a.advertise_interval),
        ]
        if a.addr_rate is not None:
            command += ["--addr-rate", str(a.addr_rate)]
        with open(self.log_path(i), "wb") as log:
            self.procs.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,  # Ctrl-C is the parent's to handle
                )
            )

    def check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            code = proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"node {i} ({self.addresses[i]}) exited with code {code}: "
                    f"{last_lines(self.log_path(i))}"
                )

    def up(self, i: int) -> bool:
        return os.path.exists(self.state_path(i))

    def start_all(self) -> tuple[float, float, float]:
        """
        Start node 0, wait for it to listen, then the others in batches, each
        batch waited for before the next.

        @return: monotonic times of the first start, the last start, and the
            moment every node was listening.
        """
        first = self.first = time.monotonic()
        order = [[0]] + [list(range(s, min(s + BATCH, self.n))) for s in range(1, self.n, BATCH)]
        last = first
        next_sample = first
        for batch in order:
            last = time.monotonic()
            for i in batch:
                self.spawn(i)
            deadline = min(time.monotonic() + BATCH_WAIT_S, first + self.args.limit)
            while not all(self.up(i) for i in batch):
                self.check_alive()
                now = time.monotonic()
                if now > deadline:
                    late = [i for i in batch if not self.up(i)]
                    raise RuntimeError(f"nodes {late} not listening after {now - last:.0f} s")
                if now >= next_sample:  # the curve covers the start-up too
                    next_sample += POLL_S
                    self.sample()
                time.sleep(0.05)
        return first, last, time.monotonic()

    def sample(self) -> tuple[float, float]:
        """
        Read every state file; add a point to the curve.

        @return: the mean and the least known fraction.
        """
        self.poll()
        fractions = self.fractions()
        mean, low = sum(fractions) / len(fractions), min(fractions)
        self.curve.append((time.monotonic() - self.first, mean, low))
        return mean, low

    def poll(self) -> None:
        for i in range(self.n):
            state = read_state(self.state_path(i))
            if state is not None:
                self.states[i] = state

    def fractions(self) -> list[float]:
        everyone = set(self.addresses)
        result = []
        for i, state in enumerate(self.states):
            if state is None:
                result.append(0.0)
                continue
            known = everyone.intersection(state["known"])
            known.discard(self.addresses[i])
            result.append(len(known) / (self.n - 1))
        return result

    def connected(self) -> bool:
        """
        Whether the graph of established connections (as either end reports
        it) reaches every node.
        """
        index = {f"n{i}": i for i in range(self.n)}
        edges: list[set[int]] = [set() for _ in range(self.n)]
        for i, state in enumerate(self.states):
            for node_id in state["peers"] if state else ():
                j = index.get(node_id)
                if j is not None and j != i:
                    edges[i].add(j)
                    edges[j].add(i)
        seen, todo = {0}, [0]
        while todo:
            for j in edges[todo.pop()]:
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
        return len(seen) == self.n

    def peer_counts(self) -> list[int]:
        return [len(s["peers"]) if s else 0 for s in self.states]

    def rss_total_kib(self) -> int:
        return sum(rss_kib(p.pid) for p in self.procs if p.poll() is None)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.kill()
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass  # SIGKILLed but not reaped in 10 s: nothing more to do


def run(args: argparse.Namespace, statedir: str) -> dict:
    net = Net(args, statedir)
    try:
        return measure(net, args)
    finally:
        net.stop()


def measure(net: Net, args: argparse.Namespace) -> dict:
    first, last, all_up = net.start_all()
    print(
        f"  {net.n} nodes started in {last - first:.1f} s, all listening "
        f"{all_up - first:.1f} s after the first start",
        flush=True,
    )
    reached = None  # seconds since first start
    full = None
    next_progress = time.monotonic() + PROGRESS_S
    tick = time.monotonic()
    deadline = first + args.limit
    mean = low = 0.0
    connected = False
    while True:
        net.check_alive()
        mean, low = net.sample()
        now = time.monotonic()
        if reached is None or low >= 1.0:
            connected = net.connected()
        if reached is None and low >= args.target and connected:
            reached = now - first
        if low >= 1.0 and connected:
            full = now - first
            break
        if now >= deadline:
            break
        if now >= next_progress:
            next_progress += PROGRESS_S
            peers = net.peer_counts()
            print(
                f"  t={now - first:5.0f}s mean={mean:.3f} min={low:.3f} "
                f"connected={'yes' if connected else 'no'} "
                f"peers/node={sum(peers) / len(peers):.1f} (min {min(peers)})",
                flush=True,
            )
        tick += POLL_S
        time.sleep(max(0.0, tick - time.monotonic()))
    peers = net.peer_counts()
    outbound = [s["outbound"] if s else 0 for s in net.states]
    fractions = net.fractions()
    least = sorted(range(net.n), key=lambda i: fractions[i])[:5]
    return {
        "n": net.n,
        "last_start_s": last - first,
        "reached_s": reached,
        "full_s": full,
        "mean": mean,
        "min": low,
        "connected": connected,
        "peers": peers,
        "outbound": outbound,
        "dropped": sum(s.get("dropped", 0) if s else 0 for s in net.states),
        "elapsed_s": time.monotonic() - first,
        "least": [(i, fractions[i], peers[i], outbound[i]) for i in least],
        "rss_kib": net.rss_total_kib(),
        "no_inbound": [i for i in range(net.n) if peers[i] == outbound[i]],
        "curve": net.curve,
    }


def plot(r: dict, args: argparse.Namespace, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    t = [p[0] for p in r["curve"]]
    ax.plot(t, [p[1] for p in r["curve"]], label="mean (a node not yet started counts 0)")
    ax.plot(t, [p[2] for p in r["curve"]], linestyle="--", label="least-informed node")
    ax.axhline(args.target, color="grey", linewidth=0.8)
    ax.axvline(r["last_start_s"], color="grey", linewidth=0.8, linestyle=":",
               label="last node started")
    ax.set_xlabel("wall-clock seconds since the first node process started")
    ax.set_ylabel("fraction of the other nodes known")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"bitp2p discovery from one seed: {r['n']} node processes on loopback")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def summary(r: dict, args: argparse.Namespace) -> str:
    last = r["last_start_s"]
    pct = f"{args.target:.0%}"
    if r["reached_s"] is not None:
        result = (
            f"full knowledge (>= {pct}, connected) {r['reached_s'] - last:.1f} s after the "
            f"last start ({r['reached_s']:.1f} s after the first)"
        )
        if r["full_s"] is not None:
            result += f"; 100 % {r['full_s'] - last:.1f} s after the last start"
        else:
            result += (
                f"; not 100 % within {args.limit:.0f} s (mean {r['mean']:.1%}, "
                f"min {r['min']:.1%})"
            )
    else:
        result = (
            f"not converged within {args.limit:.0f} s: mean {r['mean']:.1%} known, "
            f"least-informed node {r['min']:.1%}, connection graph "
            f"{'connected' if r['connected'] else 'NOT connected'}"
        )
    peers = r["peers"]
    if args.addr_rate is None:
        rate = f"; addr rate limit bitp2p's default ({ADDR_RATE_PER_S:g}/s per peer)"
    else:
        rate = (
            f"; addr rate limit CHANGED to {args.addr_rate:g}/s per peer "
            f"(bitp2p's default {ADDR_RATE_PER_S:g}/s)"
        )
    return (
        f"realnet: N={r['n']} processes (started over {r['last_start_s']:.1f} s): {result}; "
        f"peers per node mean {sum(peers) / len(peers):.1f} (min {min(peers)}, max {max(peers)}); "
        f"RSS {r['rss_kib'] / 1024:,.0f} MiB total ({r['rss_kib'] / 1024 / r['n']:.1f} MiB per node)"
        f"{rate}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[1],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument("--limit", type=float, default=300.0,
                        help="wall seconds from the first start before giving up")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--plot", default=None, help="write the curves to this PNG")
    parser.add_argument("--addr-rate", default=None,
                        help="addresses per second accepted from one peer, or 'default' "
                        "for bitp2p's own (default: bitp2p's, scaled like the "
                        "advertise interval: 12 with 5 s)")
    parser.add_argument("--advertise-interval", type=float, default=5.0,
                        help="NodeConfig.advertise_interval_s (default: 5)")
    parser.add_argument("--node", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--statedir", help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.addr_rate == "default":
        args.addr_rate = None
    elif args.addr_rate is not None:
        try:
            args.addr_rate = float(args.addr_rate)
        except ValueError:
            parser.error("--addr-rate must be a number or 'default'")
    elif args.node is None:
        args.addr_rate = ADDR_RATE_PER_S * ADVERTISE_INTERVAL_S / args.advertise_interval
    if args.node is not None:
        node_main(args)
        return
    if not 2 <= args.nodes <= MAX_NODES:
        parser.error(f"--nodes must be in 2..{MAX_NODES}")
    if not 0 < args.port <= 65535:
        parser.error("--port must be in 1..65535")
    if not 0 < args.target <= 1:
        parser.error("--target must be in (0, 1]")
    if not args.advertise_interval > 0 or (args.addr_rate is not None and not args.addr_rate > 0):
        parser.error("--advertise-interval and --addr-rate must be positive")

    raise_nofile()
    check_addresses(args.nodes, args.port)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    statedir = tempfile.mkdtemp(prefix="bitp2p-realnet-")
    started = time.monotonic()
    try:
        r = run(args, statedir)
    except KeyboardInterrupt:
        sys.exit("realnet: interrupted; node processes stopped")
    except RuntimeError as e:
        sys.exit(f"realnet: {e}")
    finally:
        shutil.rmtree(statedir, ignore_errors=True)
    print(summary(r, args), flush=True)
    if r["reached_s"] is None or r["full_s"] is None:
        worst = ", ".join(
            f"n{i} ({ip_of(i)}) {f:.0%} known, {p} peers ({o} out, {p - o} in)"
            for i, f, p, o in r["least"]
        )
        print(f"  least-informed nodes: {worst}")
    out = r["outbound"]
    if r["no_inbound"]:
        names = [f"n{i} ({ip_of(i)})" for i in r["no_inbound"]]
        print(f"  {len(names)} nodes without any inbound peer: " + ", ".join(names[:12])
              + (", ..." if len(names) > 12 else ""))
    minutes = r["elapsed_s"] / 60
    print(f"  outbound per node mean {sum(out) / len(out):.1f} (min {min(out)}, max {max(out)}); "
          f"addresses dropped by the addr rate limit: {r['dropped'] / r['n'] / minutes:,.0f} "
          f"per node per minute; bench wall time {time.monotonic() - started:.1f} s")
    if args.plot:
        plot(r, args, args.plot)
        print(f"curves written to {args.plot}")


if __name__ == "__main__":
    main()
