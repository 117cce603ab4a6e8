"""
A coverage-guided fuzz target (atheris) for the line decoder and the
protocol's dispatch: arbitrary bytes, cut into chunks where the input says,
are fed to a JSONLineWire and its Peer, once before and once after a
completed handshake. Nothing may raise out of C{dataReceived}; afterwards
the connection is either open or closed for a reason bitp2p names.

    python fuzz/fuzz_wire.py -max_total_time=60        # one minute
    python fuzz/fuzz_wire.py -runs=10000 corpus/        # with a corpus folder

(Options are libFuzzer's. tests/test_fuzz_target.py runs it for a few
seconds in CI.)
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from bitp2p import codec
    from bitp2p.address import Address
    from bitp2p.errors import HandshakeFailed, PeerLost, ProtocolViolation
    from bitp2p.peer import Direction, Peer
    from bitp2p.wire import JSONLineWire


class Manager:
    """
    The least a Peer needs of a node.
    """

    applicationHandlers = {"chat": lambda peer, message: None}

    def versionFor(self, peer):
        return codec.version("fuzzer-node", 5000, user_agent="/fuzz/", timestamp=1)

    def checkVersion(self, peer):
        return None

    def peerEstablished(self, peer):
        pass

    def peerClosed(self, peer, reason):
        pass

    def violationFrom(self, peer, violation):
        pass

    def advertisementFor(self, peer):
        return Address.of("127.0.0.1", 5000)

    def addressesFor(self, peer, count):
        return [(Address.of("10.0.0.1", 5000), 1)]

    def addressesReceived(self, peer, entries, relay):
        pass

    def answerReceived(self, peer):
        pass


HANDSHAKE = b'{"type":"version","node_id":"them","port":6000}\n{"type":"verack"}\n'
REASONS = (ProtocolViolation, HandshakeFailed, PeerLost)


def feed(data: bytes, established: bool) -> None:
    clock = Clock()
    peer = Peer(Manager(), clock, Direction.INBOUND)
    wire = JSONLineWire(peer, 4096, 65536)
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 5000),
        peerAddress=IPv4Address("TCP", "127.0.0.1", 40001),
    )
    wire.makeConnection(transport)
    if established:
        wire.dataReceived(HANDSHAKE)
        assert peer.established, "the handshake did not complete"
    # The first byte says where to cut the rest into chunks.
    step = (data[0] % 64) + 1 if data else 1
    rest = data[1:]
    for start in range(0, len(rest), step):
        wire.dataReceived(rest[start : start + step])
        if not peer.reading:
            break
    clock.advance(3600)  # every timer of the peer fires
    assert peer.close_reason is None or isinstance(peer.close_reason, REASONS), peer.close_reason


def target(data: bytes) -> None:
    feed(data, established=False)
    feed(data, established=True)


def main() -> None:
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
