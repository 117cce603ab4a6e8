"""
Ping-pong round trips on one connection.

A load process sends a ping and waits for its pong, N times, over loopback,
against a bitp2p node (decode, validate, dispatch, encode the pong) and
against a bare Twisted LineOnlyReceiver that echoes each line back.
Reported: round trips per second, medians, ratio bitp2p / bare (target
>= 1.0).

    python bench/pingpong.py [--trips 20000] [--runs 5] [--hog]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import add_hog_option, cpu_hog, handshake, report  # noqa: E402


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


def trips(port: int, count: int, speak: bool) -> float:
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
    start = time.perf_counter()
    for nonce in range(count):
        sock.sendall(b'{"type":"ping","nonce":%d}\n' % nonce)
        data = b""
        while not data.endswith(b"\n"):
            data += sock.recv(65536)
    elapsed = time.perf_counter() - start
    sock.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--trips", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    add_hog_option(parser)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with cpu_hog(args.hog):
        results: dict[str, list[float]] = {"bitp2p": [], "bare": []}
        for run in range(args.runs):
            # Alternate which goes first, so that neither always meets a machine
            # that has just been busy (or idle).
            for kind in list(results)[:: 1 if run % 2 else -1]:
                server = subprocess.Popen(
                    [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
                )
                try:
                    port = int(server.stdout.readline())
                    results[kind].append(trips(port, args.trips, kind == "bitp2p"))
                finally:
                    server.kill()
                    server.wait()
    report("ping-pong", "round trips/s", results["bitp2p"], results["bare"], 1.0)


if __name__ == "__main__":
    main()
