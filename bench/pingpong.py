"""
Ping-pong round trips on one connection.

A load process sends a ping and waits for its pong, N times, over loopback,
against a bitp2p node (decode, validate, dispatch, encode the pong) and
against a bare Twisted LineOnlyReceiver that echoes each line back.
Reported: round trips per second, medians, ratio bitp2p / bare (target
>= 1.0); and, informational, round trips per second of the server process's
CPU time, which a busy machine moves less than the wall-clock rate.

    python bench/pingpong.py [--trips 20000] [--runs 5] [--reactor default|asyncio|uvloop]
                             [--hog]

The load process uses plain blocking sockets: C{--reactor} changes the
servers' reactor only.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import (  # noqa: E402
    addReactorOption,
    add_hog_option,
    cpu_hog,
    cpu_seconds,
    handshake,
    reactorDescription,
    report,
    report_informational_per_cpu,
    useReactor,
)


def serve(kind: str) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineOnlyReceiver

    if kind == "bare":

        class Echo(LineOnlyReceiver):
            delimiter = b"\n"

            def lineReceived(self, line):
                self.sendLine(line)

        port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    else:
        from bitp2p import Node, NodeConfig

        node = Node(NodeConfig(port=0, interface="127.0.0.1", seeds=()))
        node.startService()
        port = node.connman.ports[0]
    print(port.getHost().port, flush=True)
    reactor.run()


def trips(port: int, count: int, speak: bool, server_pid: int) -> tuple[float, float]:
    """
    Round trips per wall-clock second, and per second of the server's CPU
    time over the same span.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if speak:
        handshake(sock)
        time.sleep(0.2)  # let the getaddr answer and the advertisement arrive
        sock.setblocking(False)
        try:
            while sock.recv(65536):
                pass
        except BlockingIOError:
            pass
        sock.setblocking(True)
    start, cpu = time.perf_counter(), cpu_seconds(server_pid)
    for nonce in range(count):
        sock.sendall(b'{"type":"ping","nonce":%d}\n' % nonce)
        data = b""
        while not data.endswith(b"\n"):
            data += sock.recv(65536)
    elapsed = time.perf_counter() - start
    used = cpu_seconds(server_pid) - cpu
    sock.close()
    return count / elapsed, count / max(used, 1 / os.sysconf("SC_CLK_TCK"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--trips", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    addReactorOption(parser)
    add_hog_option(parser)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    useReactor(args.reactor)
    if args.serve:
        serve(args.serve)
        return
    with cpu_hog(args.hog):
        results: dict[str, list[float]] = {"bitp2p": [], "bare": []}
        perCPU: dict[str, list[float]] = {"bitp2p": [], "bare": []}
        for run in range(args.runs):
            # Alternate which goes first, so that neither always meets a machine
            # that has just been busy (or idle).
            for kind in list(results)[:: 1 if run % 2 else -1]:
                server = subprocess.Popen(
                    [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
                )
                try:
                    port = int(server.stdout.readline())
                    wall, cpu = trips(port, args.trips, kind == "bitp2p", server.pid)
                    results[kind].append(wall)
                    perCPU[kind].append(cpu)
                finally:
                    server.kill()
                    server.wait()
    print(f"reactor in every process: {args.reactor} ({reactorDescription()})")
    report("ping-pong", "round trips/s", results["bitp2p"], results["bare"], 1.0)
    report_informational_per_cpu("server", "round trips", perCPU)


if __name__ == "__main__":
    main()
