"""
The hot paths in one process, without sockets: cost per received message and
per handshake, against bare Twisted doing the least the same job needs, and
where the time goes (cProfile).

The socket benchmarks (throughput.py, handshakes.py) include the kernel and
the load process, which are the same for both servers and add noise; this
one feeds bytes straight into the protocol objects, so it shows the part
that is bitp2p's own, and is what to run before and after changing the
framing, the codec or the dispatch.

 - receive: 100-byte application messages in 64 KiB chunks into an
   established peer's wire (framing, decoding, validation, dispatch to a
   registered handler) versus a LineOnlyReceiver whose lineReceived only
   decodes each line with the same JSON library;
 - handshake: an inbound connection on a StringTransport through version,
   verack and close, on a node (MemoryReactorClock), with no baseline (a
   bare server's handshake is one write);
 - ping: an established peer answering pings, one per chunk.

--calls prints the Python function calls each of the three costs, counted
under cProfile: a figure that does not move with the machine's load, for
comparing two trees (run each tree's script with PYTHONPATH at that tree).

    python bench/hotpath.py [--runs 5] [--profile receive|handshake|ping] [--calls]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import JSON_LIBRARY, loads, message_line  # noqa: E402

CHUNK = 65536
MESSAGES = 200_000
HANDSHAKES = 20_000
PINGS = 20_000


def _chunks() -> list[bytes]:
    data = b"".join(message_line(i) for i in range(MESSAGES))
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def receive_bare(chunks: list[bytes]) -> float:
    from twisted.internet.testing import StringTransport
    from twisted.protocols.basic import LineOnlyReceiver

    seen = [0]

    class Bare(LineOnlyReceiver):
        delimiter = b"\n"
        MAX_LENGTH = 1024 * 1024

        def lineReceived(self, line):
            loads(line)
            seen[0] += 1

    protocol = Bare()
    protocol.makeConnection(StringTransport())
    return _feed(protocol, chunks, seen)


def _feed(protocol, chunks: list[bytes], seen: list[int]) -> float:
    """
    Seconds per message to feed every chunk to C{protocol}.
    """
    start = time.perf_counter()
    for chunk in chunks:
        protocol.dataReceived(chunk)
    elapsed = time.perf_counter() - start
    assert seen[0] == MESSAGES, seen
    return elapsed / MESSAGES


def receive_bitp2p(chunks: list[bytes]) -> float:
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from bitp2p import Node, NodeConfig
    from bitp2p.peer import Direction

    seen = [0]

    def handler(peer, message):
        seen[0] += 1

    node = Node(NodeConfig(listen=False, seeds=()), reactor=Clock())
    node.registerMessage("bench", handler)
    wire = node.connman.buildPeer(Direction.INBOUND, None)
    wire.makeConnection(StringTransport())
    wire.dataReceived(b'{"type":"version","node_id":"load","port":0}\n{"type":"verack"}\n')
    assert wire.peer.established
    return _feed(wire, chunks, seen)


def handshakes() -> float:
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.testing import MemoryReactorClock, StringTransport
    from twisted.python.failure import Failure

    from bitp2p import Node, NodeConfig

    node = Node(
        NodeConfig(port=5000, interface="127.0.0.1", seeds=(), max_connections=10**6,
                   max_outbound=0),
        reactor=MemoryReactorClock(),
    )
    node.repeated.logCounted = False  # as at twistd's --log-level info
    node.startService()
    host = IPv4Address("TCP", "127.0.0.1", 5000)
    done = Failure(ConnectionDone())
    start = time.perf_counter()
    for i in range(HANDSHAKES):
        remote = IPv4Address("TCP", "127.0.0.1", 20000 + i % 40000)
        wire = node.connman.admit(remote)
        wire.makeConnection(StringTransport(hostAddress=host, peerAddress=remote))
        wire.dataReceived(b'{"type":"version","node_id":"load%d","port":0}\n' % i)
        wire.dataReceived(b'{"type":"verack"}\n')
        assert wire.peer.established
        wire.connectionLost(done)
    return (time.perf_counter() - start) / HANDSHAKES


def pings() -> float:
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from bitp2p import Node, NodeConfig

    node = Node(
        NodeConfig(port=5000, interface="127.0.0.1", seeds=(), max_outbound=0),
        reactor=MemoryReactorClock(),
    )
    node.startService()
    remote = IPv4Address("TCP", "127.0.0.1", 20000)
    wire = node.connman.admit(remote)
    transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 5000),
                                peerAddress=remote)
    wire.makeConnection(transport)
    wire.dataReceived(b'{"type":"version","node_id":"load","port":0}\n{"type":"verack"}\n')
    assert wire.peer.established
    lines = [b'{"type":"ping","nonce":%d}\n' % i for i in range(PINGS)]
    start = time.perf_counter()
    for line in lines:
        wire.dataReceived(line)
        transport.clear()
    return (time.perf_counter() - start) / PINGS


def _targets() -> dict:
    chunks = _chunks()
    return {
        "receive": (lambda: receive_bitp2p(chunks), MESSAGES, "received message"),
        "handshake": (handshakes, HANDSHAKES, "inbound handshake"),
        "ping": (pings, PINGS, "ping answered"),
    }


def profile(what: str) -> None:
    target = _targets()[what][0]
    profiler = cProfile.Profile()
    profiler.runcall(target)
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(20)


def calls() -> None:
    for target, count, name in _targets().values():
        profiler = cProfile.Profile()
        profiler.runcall(target)
        total = pstats.Stats(profiler).total_calls
        print(f"calls: {total / count:.1f} Python calls per {name} ({count:,}, setup included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", choices=("receive", "handshake", "ping"))
    parser.add_argument("--calls", action="store_true", help="count calls, do not time")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile)
        return
    if args.calls:
        calls()
        return
    chunks = _chunks()
    bare, ours, shakes = [], [], []
    for _ in range(args.runs):
        bare.append(receive_bare(chunks))
        ours.append(receive_bitp2p(chunks))
        shakes.append(handshakes())
    m_bare, m_ours = statistics.median(bare), statistics.median(ours)
    print(f"JSON library: {JSON_LIBRARY}")
    print(
        f"receive: bitp2p {m_ours * 1e9:,.0f} ns per message, bare Twisted "
        f"{m_bare * 1e9:,.0f} ns; ratio of rates {m_bare / m_ours:.2f}; medians of "
        f"{args.runs} runs"
    )
    print(
        f"handshake: bitp2p {statistics.median(shakes) * 1e6:.1f} us of CPU per inbound "
        f"handshake (version, verack, close), in process; median of {args.runs} runs"
    )


if __name__ == "__main__":
    main()
