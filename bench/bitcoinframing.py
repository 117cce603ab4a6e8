"""
Message throughput on one connection, with Bitcoin's framing.

A load process does a real Bitcoin handshake (version, wtxidrelay,
sendaddrv2, verack, with regtest's magic, built with
L{bitp2p.bitcoin.codec}) and then blasts N messages down one TCP connection
on loopback. The receiver is either a bitp2p node on regtest (its
C{BitcoinWire}: headers, checksums, translation into the peer's dicts, the
peer's dispatch) or a bare Twisted C{Protocol} that only splits headers and
checks checksums (one buffer, C{struct.unpack_from}, hashlib's double
SHA-256, a slice for the payload).

Two kinds of message:

  - C{blast}: an application command with a 100-byte payload, handed to a
    handler registered with C{node.registerMessage("blast", ...)} (the bare
    receiver counts it);
  - C{ping}: the peer logic answers each with a C{pong} (the bare receiver
    writes the pong too: the same 8-byte nonce, so the same checksum, under
    the C{pong} command); the load sends one C{blast} before the pings and
    one after, which start and stop the clock on both receivers.

Reported: messages per second received, medians of several runs in
alternating order, and the ratio bitp2p / bare (target >= 0.7), per kind;
and, as information less moved by other work on the machine, messages per
second of the receiving process's CPU time.

    python bench/bitcoinframing.py [--messages 200000] [--runs 5] [--kinds blast ping]
                                   [--bare-writes batched|each]
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import alternating_runs, report, report_informational_per_cpu, spawn  # noqa: E402

NETWORK = "regtest"
PAYLOAD_BYTES = 100
BLOCK = 1000  # messages per sendall


def _magic() -> bytes:
    from bitp2p.bitcoin.networks import network

    return network(NETWORK).magic


# -- the load side ------------------------------------------------------------------


def _read(sock: socket.socket, buffer: bytearray, magic: bytes) -> list[str]:
    """
    The commands of the whole messages in C{buffer} after one more recv
    (they are removed from it).
    """
    from bitp2p.bitcoin import codec

    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("closed during the handshake")
    buffer += chunk
    commands = []
    while len(buffer) >= codec.HEADER_SIZE:
        command, length, _ = codec.parseHeader(buffer, magic)
        if len(buffer) < codec.HEADER_SIZE + length:
            break
        del buffer[: codec.HEADER_SIZE + length]
        commands.append(command)
    return commands


def handshake(sock: socket.socket, magic: bytes) -> None:
    """
    Our version, then the node's version and verack awaited, then our
    feature negotiation and verack, as Bitcoin Core sends them.
    """
    from bitp2p.bitcoin import codec

    version = codec.encodeVersion(
        nonce=int.from_bytes(os.urandom(8), "little"),
        timestamp=int(time.time()),
        user_agent="/bitp2p-bench:0/",
    )
    sock.sendall(codec.frame(magic, "version", version))
    buffer = bytearray()
    seen: set[str] = set()
    while not {"version", "verack"} <= seen:
        seen.update(_read(sock, buffer, magic))
    sock.sendall(
        codec.frame(magic, "wtxidrelay") + codec.frame(magic, "sendaddrv2") + codec.frame(magic, "verack")
    )


def blocks(kind: str, magic: bytes) -> tuple[bytes, bytes | None]:
    """
    C{(block, marker)}: C{BLOCK} framed messages of C{kind}, each different
    (a sequence number in the payload, so each checksum is computed), and
    the C{blast} that starts and stops the clock of a C{ping} run.
    """
    from bitp2p.bitcoin import codec

    if kind == "blast":
        filler = b"x" * (PAYLOAD_BYTES - 4)
        block = b"".join(
            codec.frame(magic, "blast", struct.pack("<I", i) + filler) for i in range(BLOCK)
        )
        return block, None
    block = b"".join(codec.frame(magic, "ping", codec.encodeNonce(i + 1)) for i in range(BLOCK))
    return block, codec.frame(magic, "blast", b"m" * PAYLOAD_BYTES)


def send(port: int, count: int, kind: str) -> None:
    magic = _magic()
    sock = socket.create_connection(("127.0.0.1", port))
    handshake(sock, magic)

    # Read what comes back (pongs, the node's own messages) all along: a
    # receiver whose writes back up stops reading.
    def drain() -> None:
        try:
            while sock.recv(262144):
                pass
        except OSError:
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    block, marker = blocks(kind, magic)
    if marker:
        sock.sendall(marker)
    for _ in range(count // BLOCK):
        sock.sendall(block)
    if marker:
        sock.sendall(marker)
    # Stay until the receiver hangs up, so nothing is cut short.
    reader.join(120)
    sock.close()


# -- the receiving side ----------------------------------------------------------------


def bareProtocol(magic: bytes, blast, ping, writeEach: bool = False):
    """
    A bare Twisted protocol of Bitcoin's framing: split the headers, check
    magic and checksums, answer the handshake, call C{blast()} for each
    C{blast} and C{ping()} for each C{ping} (after its C{pong}). The pongs
    of one chunk are written together, or each as it is made if
    C{writeEach} (as a peer answering message by message does).
    """
    import hashlib

    from twisted.internet.protocol import Protocol

    from bitp2p.bitcoin import codec

    header = struct.Struct("<4s12sI4s")
    unpack = header.unpack_from
    sha256 = hashlib.sha256
    pongHeader = magic + b"pong".ljust(12, b"\0") + struct.pack("<I", 8)
    handshake = codec.frame(
        magic, "version", codec.encodeVersion(nonce=1, timestamp=int(time.time()))
    ) + codec.frame(magic, "verack")
    BLAST = b"blast".ljust(12, b"\0")
    PING = b"ping".ljust(12, b"\0")
    VERSION = b"version".ljust(12, b"\0")

    class Bare(Protocol):
        def connectionMade(self):
            self._buffer = bytearray()

        def dataReceived(self, data):
            buffer = self._buffer
            buffer += data
            offset = 0
            size = len(buffer)
            pongs = []
            while size - offset >= 24:
                start, command, length, digest = unpack(buffer, offset)
                if start != magic or length > codec.MAX_PAYLOAD_BYTES:
                    self.transport.abortConnection()
                    return
                end = offset + 24 + length
                if end > size:
                    break
                payload = buffer[offset + 24 : end]
                offset = end
                if sha256(sha256(payload).digest()).digest()[:4] != digest:
                    continue
                if command == BLAST:
                    blast()
                elif command == PING:
                    if writeEach:
                        self.transport.write(pongHeader + digest + payload)
                    else:
                        pongs.append(pongHeader + digest + payload)
                    ping()
                elif command == VERSION:
                    self.transport.write(handshake)
            del buffer[:offset]
            if pongs:
                self.transport.writeSequence(pongs)

    return Bare


def measure(receiver: str, kind: str, count: int, writeEach: bool = False) -> tuple[float, float]:
    """
    C{(messages a second, messages a second of the receiver's CPU time)}.
    """
    from twisted.internet import defer, reactor
    from twisted.internet.protocol import Factory

    done: defer.Deferred = defer.Deferred()
    state = {"n": 0, "start": None, "markers": 0}

    def seen() -> None:
        if state["start"] is None:
            state["start"] = (time.perf_counter(), time.process_time())
        state["n"] += 1
        if state["n"] == count:
            stopClocks()

    def marker() -> None:
        # A ping run: the first blast starts the clocks, the second stops them.
        state["markers"] += 1
        if state["markers"] == 1:
            state["start"] = (time.perf_counter(), time.process_time())
        else:
            stopClocks()

    def stopClocks() -> None:
        wall, cpu = state["start"]
        done.callback((time.perf_counter() - wall, time.process_time() - cpu))

    blast = seen if kind == "blast" else marker
    magic = _magic()
    if receiver == "bare":
        protocol = bareProtocol(magic, blast, lambda: None, writeEach)
        port = reactor.listenTCP(0, Factory.forProtocol(protocol), interface="127.0.0.1")
        stop = port.stopListening
    else:
        from bitp2p import Node, NodeConfig

        node = Node(NodeConfig(network=NETWORK, port=0, interface="127.0.0.1", seeds=()))
        node.registerMessage("blast", lambda peer, message: blast())
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
    parser.add_argument("--messages", type=int, default=200_000, help="per run (a multiple of 1000)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kinds", nargs="+", choices=("blast", "ping"), default=["blast", "ping"])
    parser.add_argument(
        "--bare-writes",
        choices=("batched", "each"),
        default="batched",
        help="the bare receiver writes the pongs of a chunk at once (default), or each apart",
    )
    parser.add_argument("--send", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        port, count, kind = args.send
        send(int(port), int(count), kind)
        return
    if args.one:
        # One measurement per process: a reactor runs only once.
        receiver, kind, count = args.one
        print(*measure(receiver, kind, int(count), args.bare_writes == "each"))
        return
    messages = max(BLOCK, args.messages // BLOCK * BLOCK)
    for kind in args.kinds:
        results, perCPU = alternating_runs(
            args.runs,
            lambda receiver: [sys.executable, __file__, "--one", receiver, kind, str(messages)]
            + ["--bare-writes", args.bare_writes],
        )
        report(f"bitcoin framing, {kind}", "msg/s", results["bitp2p"], results["bare"], 0.7)
        report_informational_per_cpu("receiver", "msg", perCPU)


if __name__ == "__main__":
    main()
