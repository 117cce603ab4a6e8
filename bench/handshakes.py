"""
Handshake rate, per second of server CPU.

A load process keeps C{--inflight} connections open at once against one
server on loopback. Each connection does a full handshake as the dialing
side: it sends a C{version}, reads until the server's C{verack} has arrived
(a bitp2p node sends its own C{version} just before it), sends its own
C{verack} and closes in an orderly way (C{loseConnection}, so the C{verack}
is delivered); then a new connection replaces it. A handshake counts as done
when the server's C{verack} is received. The server is either a bitp2p node
(limits raised for the run), which thus really establishes every peer
(validates both messages, registers the peer, sends its C{addr}
self-advertisement, then sees it go), or a bare Twisted LineOnlyReceiver
that answers a C{version} line with a C{verack} line and ignores the rest.

Two figures are measured over C{--seconds} (after a short warm-up), for each
server:

 - handshakes per wall-clock second, as the load process sees them;
 - handshakes per second of the server process's CPU time (user + system,
   read from C{/proc/PID/stat} at the start and the end of the window).

The second one is judged: the ratio bitp2p / bare of its medians is compared
with the target 0.6. The wall-clock rate is printed too, but it says little:
the load process is Python and Twisted as well, and on a small machine (two
cores: one for the server, one for the load) it is the load that saturates
first, so both servers run as fast as they are fed and the wall-clock ratio
sits near 1.0 whatever the server costs. The server's CPU time per handshake
does not depend on how fast the load generator is. (A server that is not
saturated handles fewer events per reactor iteration, so its cost per
handshake is a little above its cost at full load; both servers are measured
under the same load, so the ratio stays fair.) Each run also prints how busy
the server was.

The bitp2p node is set up as twistd sets it up at its default log level
(info; L{bitp2p.ops.tap.makeNode}): of the inbound peers' connect and
disconnect lines it writes the first and counts the rest into a summary
line a minute, without making an event for each (they would be debug
events, which the log drops). No log observer is started in the server
process, so the lines it does write go to twisted.logger's startup buffer.
Making the two debug events of each handshake anyway (what C{--log-level
debug} asks for) costs about a fifth of the node's in-process CPU per
handshake (C{bench/hotpath.py}).

Several runs alternate the order of the two servers; medians are reported.

    python bench/handshakes.py [--seconds 5] [--inflight 50] [--runs 5]
                               [--reactor default|asyncio|uvloop] [--hog]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import (  # noqa: E402
    addReactorOption,
    add_hog_option,
    cpu_hog,
    cpu_seconds,
    reactorDescription,
    report_per_cpu,
    useReactor,
)

VERSION = b'{"type":"version","node_id":"load%d","port":0}\n'
VERACK = b'{"type":"verack"}\n'
WARMUP_S = 0.5
START_TIMEOUT_S = 30.0


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
        node.repeated.logCounted = False  # as at twistd's --log-level info
        node.startService()
        port = node.connman.ports[0]
    print(port.getHost().port, flush=True)
    reactor.run()


def load(port: int, seconds: float, inflight: int, server_pid: int) -> dict:
    """
    Run handshakes against the server for C{WARMUP_S + seconds}; measure
    over the last C{seconds}.
    """
    from twisted.internet import reactor
    from twisted.internet.protocol import ClientFactory, Protocol

    state = {"done": 0, "failed": 0, "seq": 0, "open": True}
    window: dict = {}

    class Handshake(Protocol):
        def connectionMade(self):
            state["seq"] += 1
            self.buffer = b""
            self.finished = False
            self.transport.write(VERSION % state["seq"])

        def dataReceived(self, data):
            if self.finished:
                return
            self.buffer += data
            if b'"verack"' in self.buffer:
                self.finished = True
                state["done"] += 1
                self.transport.write(VERACK)
                self.transport.loseConnection()

        def connectionLost(self, reason):
            if not self.finished:
                state["failed"] += 1
            if state["open"]:
                reactor.connectTCP("127.0.0.1", port, factory)

    class Factory(ClientFactory):
        protocol = Handshake

        def clientConnectionFailed(self, connector, reason):
            state["failed"] += 1
            if state["open"]:
                reactor.callLater(0.01, reactor.connectTCP, "127.0.0.1", port, factory)

    factory = Factory()

    def mark():
        return {
            "t": time.perf_counter(),
            "done": state["done"],
            "failed": state["failed"],
            "server_cpu": cpu_seconds(server_pid),
            "load_cpu": time.process_time(),
        }

    def begin():
        window["start"] = mark()

    def stop():
        window["end"] = mark()
        state["open"] = False
        reactor.stop()

    for _ in range(inflight):
        reactor.connectTCP("127.0.0.1", port, factory)
    reactor.callLater(WARMUP_S, begin)
    reactor.callLater(WARMUP_S + seconds, stop)
    reactor.run()
    start, end = window["start"], window["end"]
    return {key: end[key] - start[key] for key in start}


def read_port(server: subprocess.Popen) -> int:
    """
    The port the server prints once it listens, waiting at most
    C{START_TIMEOUT_S}.
    """
    with selectors.DefaultSelector() as selector:
        selector.register(server.stdout, selectors.EVENT_READ)
        if not selector.select(START_TIMEOUT_S):
            raise TimeoutError(f"server did not start within {START_TIMEOUT_S} s")
    line = server.stdout.readline().strip()
    if not line:
        raise RuntimeError(f"server exited (status {server.poll()}) before listening")
    return int(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inflight", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    addReactorOption(parser)
    add_hog_option(parser)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    useReactor(args.reactor)
    if args.serve:
        serve(args.serve)
        return
    if args.load:
        port, seconds, inflight, pid = args.load
        print(json.dumps(load(int(port), float(seconds), int(inflight), int(pid))))
        return
    with cpu_hog(args.hog):
        wall: dict[str, list[float]] = {"bitp2p": [], "bare": []}
        per_cpu: dict[str, list[float]] = {"bitp2p": [], "bare": []}
        for run in range(args.runs):
            for kind in list(wall)[:: 1 if run % 2 else -1]:
                server = subprocess.Popen(
                    [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
                )
                try:
                    port = read_port(server)
                    out = subprocess.run(
                        [sys.executable, __file__, "--load", str(port), str(args.seconds),
                         str(args.inflight), str(server.pid)],
                        check=True, capture_output=True, text=True,
                        timeout=WARMUP_S + args.seconds + 60,
                    ).stdout
                finally:
                    server.kill()
                    server.wait()
                window = json.loads(out.strip().splitlines()[-1])
                if not window["done"] or window["server_cpu"] <= 0:
                    raise RuntimeError(f"{kind}: no handshake measured: {window}")
                wall[kind].append(window["done"] / window["t"])
                per_cpu[kind].append(window["done"] / window["server_cpu"])
                print(
                    f"run {run + 1} {kind:>6}: {wall[kind][-1]:8,.0f} handshakes/s wall, "
                    f"{per_cpu[kind][-1]:8,.0f} per server CPU s; "
                    f"server CPU {window['server_cpu'] / window['t']:4.0%}, "
                    f"load CPU {window['load_cpu'] / window['t']:4.0%}, "
                    f"{window['failed']} failed",
                    flush=True,
                )
    print(f"reactor in every process: {args.reactor} ({reactorDescription()})")
    report_per_cpu(
        "handshakes", "handshakes", wall["bitp2p"], wall["bare"],
        per_cpu["bitp2p"], per_cpu["bare"], 0.6,
    )


if __name__ == "__main__":
    main()
