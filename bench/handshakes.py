"""
Handshake rate.

A load process keeps C{--inflight} connections open at once against one
server on loopback; each sends a C{version}, waits for the C{verack} (reading
whatever comes before it), and closes. The server is either a bitp2p node
(limits raised for the run) or a bare Twisted LineOnlyReceiver that answers a
C{version} line with a C{verack} line. Reported: completed handshakes per
second over C{--seconds}, medians, and the ratio bitp2p / bare (target
>= 0.5).

    python bench/handshakes.py [--seconds 5] [--inflight 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import report  # noqa: E402

VERSION = b'{"type":"version","node_id":"load%d","port":0}\n'


def serve(kind: str) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineOnlyReceiver

    if kind == "bare":

        class Verack(LineOnlyReceiver):
            delimiter = b"\n"

            def lineReceived(self, line):
                if b'"version"' in line:
                    self.sendLine(b'{"type":"verack"}')

        port = reactor.listenTCP(
            0, Factory.forProtocol(Verack), backlog=1024, interface="127.0.0.1"
        )
    else:
        from bitp2p import Node, NodeConfig

        node = Node(
            NodeConfig(
                port=0, interface="127.0.0.1", seeds=(), max_connections=10_000, max_outbound=0
            )
        )
        node.startService()
        port = node._port
    print(port.getHost().port, flush=True)
    reactor.run()


def load(port: int, seconds: float, inflight: int) -> float:
    from twisted.internet import reactor
    from twisted.internet.protocol import ClientFactory, Protocol

    state = {"done": 0, "seq": 0, "open": True}

    class Handshake(Protocol):
        def connectionMade(self):
            state["seq"] += 1
            self.transport.write(VERSION % state["seq"])
            self.buffer = b""

        def dataReceived(self, data):
            self.buffer += data
            if b'"verack"' in self.buffer:
                state["done"] += 1
                self.transport.abortConnection()

        def connectionLost(self, reason):
            if state["open"]:
                reactor.connectTCP("127.0.0.1", port, factory)

    factory = ClientFactory.forProtocol(Handshake)
    for _ in range(inflight):
        reactor.connectTCP("127.0.0.1", port, factory)

    result = []

    def stop():
        state["open"] = False
        result.append(state["done"] / (time.perf_counter() - start))
        reactor.stop()

    start = time.perf_counter()
    reactor.callLater(seconds, stop)
    reactor.run()
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inflight", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.load:
        print(load(int(args.load[0]), float(args.load[1]), int(args.load[2])))
        return
    results: dict[str, list[float]] = {"bitp2p": [], "bare": []}
    for run in range(args.runs):
        for kind in list(results)[:: 1 if run % 2 else -1]:
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
            )
            try:
                port = server.stdout.readline().strip()
                out = subprocess.run(
                    [sys.executable, __file__, "--load", port, str(args.seconds),
                     str(args.inflight)],
                    check=True, capture_output=True, text=True, timeout=120,
                ).stdout
                results[kind].append(float(out.strip().splitlines()[-1]))
            finally:
                server.kill()
                server.wait()
    report("handshakes", "handshakes/s", results["bitp2p"], results["bare"], 0.5)


if __name__ == "__main__":
    main()
