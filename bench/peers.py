"""
Concurrent peers: memory per established peer.

One bitp2p node (limits raised for the run) accepts C{--peers} connections
from a load process; each completes the handshake and stays. The node's
resident set size is read before and after, and the difference divided by
the number of established peers. For scale, the same is done against a bare
Twisted server holding idle LineOnlyReceiver connections. Target: <= 3 KiB
per established peer.

    python bench/peers.py [--peers 5000] [--reactor default|asyncio|uvloop] [--hog]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import (  # noqa: E402
    addReactorOption,
    add_hog_option,
    cpu_hog,
    reactorDescription,
    useReactor,
)

TARGET_KIB = 3
VERSION = b'{"type":"version","node_id":"load%d","port":0}\n'


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def serve(kind: str) -> None:
    from twisted.internet import reactor, task
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineOnlyReceiver

    if kind == "bare":
        connected = []

        class Idle(LineOnlyReceiver):
            delimiter = b"\n"

            def connectionMade(self):
                connected.append(self)

            def lineReceived(self, line):
                pass

        port = reactor.listenTCP(0, Factory.forProtocol(Idle), backlog=1024,
                                 interface="127.0.0.1")
        count = lambda: len(connected)  # noqa: E731
    else:
        from bitp2p import Node, NodeConfig

        node = Node(
            NodeConfig(port=0, interface="127.0.0.1", seeds=(), max_connections=20_000,
                       max_outbound=0)
        )
        node.startService()
        port = node.connman.ports[0]
        count = lambda: len(node.peers())  # noqa: E731

    def tell():
        sys.stdout.write(f"{count()}\n")
        sys.stdout.flush()

    print(port.getHost().port, flush=True)
    task.LoopingCall(tell).start(0.5)
    reactor.run()


def load(port: int, peers: int, speak: bool) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import ClientFactory, Protocol

    seq = iter(range(10**9))

    class Stay(Protocol):
        def connectionMade(self):
            if speak:
                self.transport.write(VERSION % next(seq))

        def dataReceived(self, data):
            if speak and b'"verack"' in data:
                self.transport.write(b'{"type":"verack"}\n')

    factory = ClientFactory.forProtocol(Stay)

    def dial(n):
        for _ in range(min(n, 200)):
            reactor.connectTCP("127.0.0.1", port, factory)
        if n > 200:
            reactor.callLater(0.05, dial, n - 200)

    dial(peers)
    reactor.run()


def measure(kind: str, peers: int) -> tuple[int, float]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
    )
    loader = None
    try:
        port = server.stdout.readline().strip()
        server.stdout.readline()
        time.sleep(1)
        before = rss_kib(server.pid)
        loader = subprocess.Popen(
            [sys.executable, __file__, "--load", port, str(peers), kind]
        )
        deadline = time.monotonic() + 120
        established = 0
        while established < peers and time.monotonic() < deadline:
            established = int(server.stdout.readline())
        time.sleep(2)
        after = rss_kib(server.pid)
        return established, (after - before) / max(established, 1)
    finally:
        for process in (loader, server):
            if process is not None:
                process.kill()
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--peers", type=int, default=5000)
    addReactorOption(parser)
    add_hog_option(parser)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    useReactor(args.reactor)
    if args.serve:
        serve(args.serve)
        return
    if args.load:
        load(int(args.load[0]), int(args.load[1]), args.load[2] == "bitp2p")
        return
    with cpu_hog(args.hog):
        ours_n, ours = measure("bitp2p", args.peers)
        bare_n, bare = measure("bare", args.peers)
    verdict = "meets" if ours <= TARGET_KIB else "misses"
    print(f"reactor in every process: {args.reactor} ({reactorDescription()})")
    print(
        f"peers: bitp2p {ours:.1f} KiB RSS per established peer ({ours_n} established), "
        f"bare Twisted {bare:.1f} KiB per idle connection ({bare_n}); "
        f"{verdict} the target {TARGET_KIB:g} KiB"
    )


if __name__ == "__main__":
    main()
