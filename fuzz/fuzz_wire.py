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

import random
import sys

import atheris

with atheris.instrument_imports():
    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from bitp2p import codec
    from bitp2p.address import Address
    from bitp2p.addrman import AddrMan
    from bitp2p.banman import BanMan
    from bitp2p.config import NodeConfig
    from bitp2p.discovery import AddressRelay
    from bitp2p.errors import HandshakeFailed, PeerLost, ProtocolViolation
    from bitp2p.peer import Direction, Peer
    from bitp2p.wire import JSONLineWire


class Manager:
    """
    The least a Peer needs of a node; C{getaddr} and C{addr} go to a real
    address relay, with a real address manager and ban manager behind it.
    """

    applicationHandlers = {"chat": lambda peer, message: None}

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        book, bans = AddrMan(rng=random.Random(1), key=b"k" * 32), BanMan()
        self.relay = AddressRelay(
            NodeConfig(seeds=()),
            clock,
            connections=self,
            book=lambda: book,
            bans=lambda: bans,
            relayKey=b"r" * 32,
            onNewAddresses=lambda learned: None,
            onAnswer=lambda peer: None,
            maintain=lambda: None,
            running=lambda: True,
        )
        self.getaddrReceived = self.relay.getaddrReceived
        self.addrReceived = self.relay.addrReceived

    def versionFor(self, peer):
        return codec.version("fuzzer-node", 5000, user_agent="/fuzz/", timestamp=1)

    def checkVersion(self, peer):
        return None

    def peerEstablished(self, peer):
        self.relay.peerEstablished(peer)

    def peerClosed(self, peer, reason):
        self.relay.peerClosed(peer, reason)

    def violationFrom(self, peer, violation):
        pass

    # What the relay asks of the connection manager.

    listeningAddress = Address.of("127.0.0.1", 5000)

    def isOwn(self, address):
        return address == self.listeningAddress

    ownAddresses = frozenset({listeningAddress})

    def addOwn(self, address):
        pass

    def peers(self):
        return []


HANDSHAKE = b'{"type":"version","node_id":"them","port":6000}\n{"type":"verack"}\n'
REASONS = (ProtocolViolation, HandshakeFailed, PeerLost)


def feed(data: bytes, established: bool) -> None:
    clock = Clock()
    peer = Peer(Manager(clock), clock, Direction.INBOUND)
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
