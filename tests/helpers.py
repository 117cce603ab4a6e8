"""
Shared test fixtures: a recording peer manager, peers on StringTransports,
and nodes wired together in memory.
"""

from __future__ import annotations

import json
import random

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim

from bitp2p import codec
from bitp2p.address import Address
from bitp2p.discovery import AddressRelay
from bitp2p.node import Node, NodeConfig
from bitp2p.peer import Direction, Peer, PeerSettings
from bitp2p.wire import JSONLineWire


class RecordingManager:
    """
    A L{bitp2p.peer.PeerManager} that records every call as an event.

    C{getaddr} and C{addr} go to a real L{AddressRelay
    <bitp2p.discovery.AddressRelay>} (L{RecordingRelay}) whose address
    manager side is recorded instead: what it would store
    (C{("addresses", entries, relay)}), what it asks to answer a
    C{getaddr} with (C{("addressesFor", count)}), and the answer to our
    C{getaddr} (C{("answer",)}).

    @param relayConfig: L{NodeConfig} settings for the relay
        (C{addr_rate_per_s}, C{addr_bucket_tokens}).
    """

    def __init__(self, node_id: str = "us", port: int = 5000, **relayConfig) -> None:
        self.node_id = node_id
        self.port = port
        self.events: list[tuple] = []
        self.refusal: Exception | None = None
        self.known: list[tuple[Address, int | None]] = []
        self.own: Address | None = Address.of("127.0.0.1", port)
        self.clock = Clock()  # makePeer gives it the peer's
        self.relay = RecordingRelay(self, NodeConfig(seeds=(), **relayConfig))

    def kinds(self) -> list[str]:
        return [event[0] for event in self.events]

    def versionFor(self, peer):
        return codec.version(self.node_id, self.port, user_agent="/test/", timestamp=1)

    def checkVersion(self, peer):
        self.events.append(("checkVersion", peer.node_id))
        return self.refusal

    def peerEstablished(self, peer):
        self.relay.peerEstablished(peer)
        self.events.append(("established", peer))

    def peerClosed(self, peer, reason):
        self.relay.peerClosed(peer, reason)
        self.events.append(("closed", reason))

    def violationFrom(self, peer, violation):
        self.events.append(("violation", str(violation)))

    def getaddrReceived(self, peer):
        self.relay.getaddrReceived(peer)

    def addrReceived(self, peer, entries):
        self.relay.addrReceived(peer, entries)

    @property
    def applicationHandlers(self):
        return _Recorder(self.events)

    # What the relay asks of the connection manager and the reactor.

    def seconds(self) -> float:
        return self.clock.seconds()

    def isOwn(self, address) -> bool:
        return address == self.own

    @property
    def ownAddresses(self) -> set:
        return {self.own} if self.own is not None else set()

    def addOwn(self, address) -> None:
        pass

    def peers(self) -> list:
        return []


class RecordingRelay(AddressRelay):
    """
    An L{AddressRelay} whose dealings with the address manager are
    recorded in its L{RecordingManager}'s events.
    """

    def __init__(self, manager: RecordingManager, config: NodeConfig) -> None:
        super().__init__(
            config,
            reactor=manager,
            connections=manager,
            book=lambda: None,
            bans=lambda: None,
            relayKey=b"k" * 32,
            onNewAddresses=lambda learned: None,
            onAnswer=lambda peer: manager.events.append(("answer",)),
            maintain=lambda: None,
            running=lambda: True,
        )
        self.manager = manager

    def addressesReceived(self, peer, entries, relay):
        self.manager.events.append(("addresses", list(entries), relay))

    def addressesFor(self, peer, count):
        self.manager.events.append(("addressesFor", count))
        return self.manager.known[:count]

    def advertisementFor(self, peer):
        return self.manager.own


class _Recorder:
    """
    Application handlers for every type but the protocol's own, each
    recording its message.
    """

    def __init__(self, events: list) -> None:
        self.events = events

    def get(self, kind, default=None):
        if kind in codec.KNOWN_TYPES:
            return default  # as Node.registerMessage refuses them
        return lambda peer, message: self.events.append(("application", message))


def makePeer(
    direction: Direction = Direction.OUTBOUND,
    settings: PeerSettings = PeerSettings(),
    manager: RecordingManager | None = None,
    clock: Clock | None = None,
    maxLength: int = 1024 * 1024,
    maxSendBuffer: int = 4 * 1024 * 1024,
    deadlines=None,
):
    """
    A peer with its wire on a L{StringTransport}, connected (its deadlines
    in C{deadlines}, a L{bitp2p.timers.Deadlines}, if given).

    @return: C{(peer, wire, transport, manager, clock)}
    """
    manager = manager if manager is not None else RecordingManager()
    clock = clock if clock is not None else Clock()
    manager.clock = clock
    peer = Peer(manager, clock, direction, settings, rng=random.Random(7), deadlines=deadlines)
    wire = JSONLineWire(peer, maxLength, maxSendBuffer)
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 5000),
        peerAddress=IPv4Address("TCP", "127.0.0.1", 40001),
    )
    wire.makeConnection(transport)
    return peer, wire, transport, manager, clock


def sent(transport: StringTransport) -> list[dict]:
    """
    The messages written to C{transport} since the last call; clears it.
    """
    data = transport.value()
    transport.clear()
    return [json.loads(line) for line in data.split(b"\n") if line]


def receive(wire: JSONLineWire, *messages: dict) -> None:
    """
    Deliver messages to a wire as one chunk of bytes.
    """
    wire.dataReceived(b"".join(json.dumps(m).encode() + b"\n" for m in messages))


def lose(wire: JSONLineWire) -> None:
    """
    Tell a wire its connection is gone.
    """
    wire.connectionLost(Failure(ConnectionDone()))


def version(node_id: str = "them", port: int = 6000, **extra) -> dict:
    return {"type": "version", "node_id": node_id, "port": port, **extra}


def establish(direction: Direction = Direction.OUTBOUND, **kwargs):
    """
    A peer whose handshake is complete; the handshake traffic is cleared.
    """
    peer, wire, transport, manager, clock = makePeer(direction, **kwargs)
    receive(wire, version(), {"type": "verack"})
    transport.clear()
    manager.events.clear()
    return peer, wire, transport, manager, clock


def linkNodes(server, client, clock, serverPort=None, greet=True):
    """
    Connect two L{bitp2p.node.Node}s in memory: C{client} dials C{server}.

    @return: the L{iosim.IOPump}, already flushed unless C{greet} is false.
    """
    serverAddress = server.listeningAddress
    if serverPort is None:
        serverPort = serverAddress.port
    clientHost = client.listeningAddress.host if client.listeningAddress else "127.0.0.1"
    if clientHost == "0.0.0.0":
        clientHost = "127.0.0.1"
    serverHost = serverAddress.host if serverAddress.host != "0.0.0.0" else "127.0.0.1"
    serverWire = server.connman.admit(IPv4Address("TCP", clientHost, 50000))
    clientWire = client.connman.buildPeer(Direction.OUTBOUND, Address.of(serverHost, serverPort))
    return iosim.connect(
        serverWire,
        iosim.FakeTransport(
            serverWire,
            isServer=True,
            hostAddress=IPv4Address("TCP", serverHost, serverPort),
            peerAddress=IPv4Address("TCP", clientHost, 50000),
        ),
        clientWire,
        iosim.FakeTransport(
            clientWire,
            isServer=False,
            hostAddress=IPv4Address("TCP", clientHost, 50000),
            peerAddress=IPv4Address("TCP", serverHost, serverPort),
        ),
        clock=clock,
        greet=greet,
    )


def tempDir(testCase) -> str:
    """
    A fresh directory removed when the test ends (trial's C{mktemp} leaves
    its directories behind in the working directory under pytest).
    """
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="bitp2p-test-")
    testCase.addCleanup(shutil.rmtree, path, True)
    return path


def makeNode(port: int, reactor=None, **config) -> Node:
    """
    A started node on 127.0.0.1:C{port}, with no seeds and a seeded rng,
    on C{reactor} (a new C{MemoryReactorClock} by default).
    """
    config.setdefault("seeds", ())
    config.setdefault("interface", "127.0.0.1")
    reactor = reactor if reactor is not None else MemoryReactorClock()
    node = Node(NodeConfig(port=port, **config), reactor=reactor, rng=random.Random(port))
    node.startService()
    return node


def learn(
    node: Node, *addresses: Address, seen: float | None = None, source: str = "10.99.0.1"
) -> None:
    """
    Put addresses in a node's address manager, seen at C{seen} (default:
    now), as told by C{source}.
    """
    now = node.reactor.seconds()
    node.book.add(
        [(a, now if seen is None else seen) for a in addresses], Address.of(source, 5000), now
    )


class Inbound:
    """
    A remote peer that dialed the node, played by hand.
    """

    def __init__(self, node: Node, host: str, port: int = 40000, node_id: str | None = None):
        self.wire = node.connman.admit(IPv4Address("TCP", host, port))
        if self.wire is None:
            return
        self.transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", node.listeningPort),
            peerAddress=IPv4Address("TCP", host, port),
        )
        self.wire.makeConnection(self.transport)
        node_id = node_id or f"i-{host.replace('.', '-')}-{port}"
        receive(self.wire, {"type": "version", "node_id": node_id, "port": 5000})
        receive(self.wire, {"type": "verack"})
        sent(self.transport)

    @property
    def refused(self) -> bool:
        return self.wire is None


def stopProcess(proc, gently: bool = True, wait_s: float = 10.0) -> None:
    """
    End a test's subprocess (if it still runs) and close its pipes: with
    SIGTERM first when C{gently} (then SIGKILL after C{wait_s}), else
    SIGKILL at once.
    """
    import subprocess

    if proc.poll() is None:
        if gently:
            proc.terminate()
            try:
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        else:
            proc.kill()
            proc.wait(wait_s)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None and not stream.closed:
            stream.close()


def firstLine(proc, what: str, seconds: float = 15.0) -> bytes:
    """
    The first line a subprocess writes on its standard output, read within
    C{seconds} (bounded).

    @raise AssertionError: "C{what} did not start" or "C{what} exited",
        with what it wrote on standard error.
    """
    import os
    import select
    import time

    deadline = time.monotonic() + seconds
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([proc.stdout], [], [], max(0, left))
        if not ready or proc.poll() is not None:
            raise AssertionError(f"{what} did not start: {proc.stderr.read1(4096)!r}")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"{what} exited: {proc.stderr.read1(4096)!r}")
        line += chunk
    return line
