"""
Message throughput on one connection.

A load process blasts N application messages of ~100 bytes down one TCP
connection on loopback. The receiver is either a bitp2p node (framing,
decoding, validation, dispatch to a registered handler) or a bare Twisted
LineOnlyReceiver that only decodes each line with the same JSON library
(orjson when installed, as in bitp2p's codec).
Reported: messages per second received, medians of several runs, and the
ratio bitp2p / bare (target >= 0.85); and, informational, messages per second
of the receiving process's CPU time over the same span, which a busy
machine moves less than the wall-clock rate.

    python bench/throughput.py [--messages 200000] [--runs 5] [--stdlib-json]
                               [--reactor default|asyncio|uvloop] [--hog]

With --stdlib-json both sides use the standard library's json (orjson is
hidden from bitp2p's codec too), to compare the two libraries.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))

from _common import (  # noqa: E402
    JSON_LIBRARY,
    add_hog_option,
    alternating_runs,
    addReactorOption,
    cpu_hog,
    handshake,
    loads,
    message_line,
    reactorDescription,
    report,
    report_informational_per_cpu,
    spawn,
    useReactor,
)


def send(port: int, count: int, speak: bool) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    if speak:
        handshake(sock)
    block = b"".join(message_line(i) for i in range(1000))
    for _ in range(count // 1000):
        sock.sendall(block)
    # Stay until the receiver hangs up, so nothing is cut short.
    sock.settimeout(120)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    sock.close()


def measure(kind: str, count: int) -> tuple[float, float]:
    """
    Messages per wall-clock second and per second of this process's CPU
    time, from the first message received to the last.
    """
    from twisted.internet import defer, reactor
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineOnlyReceiver

    done: defer.Deferred = defer.Deferred()
    state = {"n": 0, "start": None, "cpu": None}

    def seen() -> None:
        if state["start"] is None:
            state["start"] = time.perf_counter()
            state["cpu"] = time.process_time()
        state["n"] += 1
        if state["n"] == count:
            done.callback(
                (time.perf_counter() - state["start"], time.process_time() - state["cpu"])
            )

    if kind == "bare":

        class Bare(LineOnlyReceiver):
            delimiter = b"\n"
            MAX_LENGTH = 1024 * 1024

            def lineReceived(self, line):
                loads(line)
                seen()

        port = reactor.listenTCP(0, Factory.forProtocol(Bare), interface="127.0.0.1")
        stop = port.stopListening
    else:
        from bitp2p import Node, NodeConfig

        node = Node(NodeConfig(port=0, interface="127.0.0.1", seeds=()))
        node.registerMessage("bench", lambda peer, message: seen())
        node.startService()
        port = node.connman.ports[0]
        stop = node.stopService
    load = spawn(__file__, "--send", str(port.getHost().port), str(count), kind)

    elapsed = []

    def finish(seconds):
        elapsed.append(seconds)
        return defer.maybeDeferred(stop)

    done.addCallback(finish).addBoth(lambda _: reactor.stop())
    reactor.run()
    load.kill()
    load.wait()
    wall, cpu = elapsed[0]
    return count / wall, count / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stdlib-json", action="store_true")
    addReactorOption(parser)
    add_hog_option(parser)
    parser.add_argument("--send", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    useReactor(args.reactor)
    if args.send:
        port, count, kind = args.send
        send(int(port), int(count), kind == "bitp2p")
        return
    if args.one:
        # One measurement per process: a reactor runs only once.
        print(*measure(args.one[0], int(args.one[1])))
        return
    import os

    if args.stdlib_json:
        os.environ["BITP2P_BENCH_STDLIB_JSON"] = "1"
    with cpu_hog(args.hog):
        results, perCPU = alternating_runs(
            args.runs, lambda kind: [sys.executable, __file__, "--one", kind, str(args.messages)]
        )
    library = "json (standard library)" if args.stdlib_json else JSON_LIBRARY
    print(f"JSON library on both sides: {library}")
    print(f"reactor in every process: {args.reactor} ({reactorDescription()})")
    report("throughput", "msg/s", results["bitp2p"], results["bare"], 0.85)
    report_informational_per_cpu("receiver", "msg", perCPU)


if __name__ == "__main__":
    main()
