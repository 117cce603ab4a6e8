"""
The high-level test API of L{bitp2p.testing}: L{TestNetwork}, real bitp2p
L{Node}s on one L{MemoryNetwork}, and L{LinkError}.

Owns building nodes on their own addresses, starting and stopping them,
wiring them up (line, ring, random links, partitions) and running the
clock until something holds. It drives the network only through
L{MemoryNetwork}'s public methods and the nodes only through L{Node}'s
public API: it must not know how the clock, the links or the transports
work inside (that is L{bitp2p.testing.memory}).
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

from twisted.python.failure import Failure

from bitp2p.address import Address
from bitp2p.node import Node, NodeConfig
from bitp2p.peer import Peer
from bitp2p.testing.memory import ANY_INTERFACES, DEFAULT_LATENCY_S, MemoryNetwork

__all__ = ["LinkError", "TestNetwork"]


def _endOf(address) -> tuple:
    """
    The host and port of a Twisted address, to match the two ends of one
    connection.
    """
    return (getattr(address, "host", None), getattr(address, "port", None))


class LinkError(AssertionError):
    """
    A connection L{TestNetwork} was asked to make failed, or did not
    complete its handshake in time.
    """


class TestNetwork:
    """
    A network of bitp2p L{Node}s for tests: each on its own address of one
    L{MemoryNetwork}, seeded, on its simulated clock.

    The i-th node added is on C{10.(i % 250).(i // 250).1} (see L{ipFor}):
    the first 250 each in a /16 of their own, so that they are in different
    network groups. Everything is deterministic for a given C{seed}.

    @ivar network: the L{MemoryNetwork}.
    @ivar nodes: the nodes, in the order they were added.
    @ivar seed: the seed of the nodes' and L{linkRandom}'s random numbers.

    @param start: where the clock starts (see
        L{EPOCH_2026<bitp2p.testing.memory.EPOCH_2026>}: a test of discovery
        over simulated hours wants a clock that reads as a date).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, seed: int = 0, latency: float = DEFAULT_LATENCY_S, start: float = 0.0) -> None:
        self.seed = seed
        self.network = MemoryNetwork(latency=latency, start=start)
        self.nodes: list[Node] = []
        self._ips: dict[Node, str] = {}
        self._started: set[Node] = set()
        self._rng = random.Random(seed)

    def __enter__(self) -> TestNetwork:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @staticmethod
    def ipFor(index: int) -> str:
        """
        The address of the C{index}-th node (0-based) added without one.
        """
        return f"10.{index % 250}.{index // 250}.1"

    # -- nodes --------------------------------------------------------------------

    def addNode(self, ip: str | None = None, rng: random.Random | None = None, **config) -> Node:
        """
        Add a node (not started: see L{start}).

        @param ip: its address; by default L{ipFor} its index.
        @param rng: its random numbers; by default seeded from the network's
            seed and its index.
        @param config: L{NodeConfig} fields. The defaults differ for tests:
            C{port} 5000, C{interface} the node's address, C{seeds} none,
            C{node_id} C{"n<index>"} (C{datadir} is L{None}, as always).
        """
        index = len(self.nodes)
        if ip is None:
            ip = self.ipFor(index)
        config.setdefault("port", 5000)
        config.setdefault("interface", ip)
        config.setdefault("seeds", ())
        config.setdefault("node_id", f"n{index}")
        if rng is None:
            rng = random.Random(self.seed * 1_000_000 + index)
        node = Node(NodeConfig(**config), reactor=self.network.host(ip), rng=rng)
        self.nodes.append(node)
        self._ips[node] = ip
        return node

    def addNodes(self, count: int, **config) -> list[Node]:
        """
        Add C{count} nodes, each as L{addNode}C{(**config)} would.
        """
        return [self.addNode(**config) for _ in range(count)]

    def ipOf(self, node: Node) -> str:
        """
        The address of C{node}'s machine.
        """
        return self._ips[node]

    def addressOf(self, node: Node) -> str:
        """
        Where C{node} listens, as C{"ip:port"} (fit for C{seeds},
        C{addnodes}, ...).
        """
        if node.listeningAddress is not None:
            return str(node.listeningAddress)
        host = node.config.interface
        if host in ANY_INTERFACES:
            host = self._ips[node]
        return str(Address.of(host, node.config.port))

    def start(self) -> None:
        """
        Start every node not started yet (by this method).
        """
        for node in self.nodes:
            if node not in self._started:
                self._started.add(node)
                if not node.running:
                    node.startService()

    def stop(self, timeout: float = 60.0) -> None:
        """
        Stop every running node, and run the clock until they have closed
        their connections and every timer left has run (at most C{timeout}
        simulated seconds).

        @raise LinkError: if a node did not finish stopping in time.
        """
        stopping = [node.stopService() for node in self.nodes if node.running]
        results: list = []
        for d in stopping:
            d.addBoth(results.append)
        network = self.network
        deadline = network.now + timeout
        done = self.runUntil(lambda: len(results) == len(stopping), timeout)
        for result in results:
            if isinstance(result, Failure):
                result.raiseException()
        if not done:
            raise LinkError(
                f"{len(stopping) - len(results)} nodes did not finish stopping within "
                f"{timeout:g} simulated seconds"
            )
        self.runUntil(lambda: not network.getDelayedCalls(), max(0.0, deadline - network.now))

    # -- time -----------------------------------------------------------------------

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """
        Run the clock C{seconds} simulated seconds, C{step} at a time.
        """
        self._run(None, seconds, step)

    def runUntil(self, predicate: Callable[[], object], timeout: float, step: float = 0.1) -> bool:
        """
        Run the clock C{step} at a time until C{predicate()} is true (it is
        asked first before the clock moves), or for C{timeout} simulated
        seconds.

        @return: whether C{predicate()} became true.
        """
        if predicate():
            return True
        return self._run(predicate, timeout, step)

    def _run(self, predicate, seconds: float, step: float) -> bool:
        if not step > 0:
            raise ValueError(f"step must be > 0, not {step!r}")
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds!r} s)")
        network = self.network
        start = network.now
        for k in range(1, max(1, math.ceil(seconds / step)) + 1):
            network.advance(max(0.0, start + min(k * step, seconds) - network.now))
            if predicate is not None and predicate():
                return True
        return False

    # -- wiring ---------------------------------------------------------------------

    def connect(self, a: Node, b: Node, timeout: float = 60.0) -> Peer:
        """
        Have C{a} dial C{b}, and run the clock until both ends have done
        the handshake.

        @return: C{a}'s L{Peer} for C{b}.
        @raise LinkError: if the dial fails, or the handshake is not done
            within C{timeout} simulated seconds.
        """
        return self.connectAll([(a, b)], timeout)[0]

    def connectAll(self, pairs: Sequence[tuple[Node, Node]], timeout: float = 60.0) -> list[Peer]:
        """
        L{connect} every C{(a, b)} of C{pairs}, all at once.

        @return: each C{a}'s L{Peer} for its C{b}, in order.
        """
        results: list[list] = []
        for a, b in pairs:
            for node in (a, b):
                if not node.running:
                    raise LinkError(f"{node!r} is not running: start() the network first")
            address = b.listeningAddress
            if address is None:
                raise LinkError(f"{b!r} does not listen")
            slot: list = []
            results.append(slot)
            a.connect(address.host, address.port).addBoth(slot.append)

        def done() -> bool:
            for (a, b), slot in zip(pairs, results):
                if not slot:
                    return False
                if isinstance(slot[0], Failure):
                    return True  # reported below
                # b holds the other end of a's connection once its handshake
                # is done (matched by address: on a Bitcoin network a peer's
                # node id is the nonce of that connection, not a's id).
                end = _endOf(slot[0].local_address)
                if not any(_endOf(peer.remote_address) == end for peer in b.peers()):
                    return False
            return True

        finished = self.runUntil(done, timeout)
        for (a, b), slot in zip(pairs, results):
            if slot and isinstance(slot[0], Failure):
                raise LinkError(
                    f"{a!r} could not connect to {b!r}: {slot[0].getErrorMessage()}"
                )
        if not finished:
            late = [f"{a!r} -> {b!r}" for (a, b), slot in zip(pairs, results) if not slot]
            raise LinkError(
                f"handshakes not done within {timeout:g} simulated seconds: "
                + (", ".join(late) or "the listening ends did not see them")
            )
        return [slot[0] for slot in results]

    def linkLine(self, nodes: Sequence[Node] | None = None) -> list[Peer]:
        """
        Connect C{nodes} (default: all) in a line, each dialing the next.
        """
        nodes = list(self.nodes if nodes is None else nodes)
        return self.connectAll(list(zip(nodes, nodes[1:])))

    def linkRing(self, nodes: Sequence[Node] | None = None) -> list[Peer]:
        """
        Connect C{nodes} (default: all) in a ring, each dialing the next and
        the last the first.
        """
        nodes = list(self.nodes if nodes is None else nodes)
        pairs = list(zip(nodes, nodes[1:]))
        if len(nodes) > 2:
            pairs.append((nodes[-1], nodes[0]))
        return self.connectAll(pairs)

    def linkRandom(self, nodes: Sequence[Node] | None = None, degree: int = 3) -> list[Peer]:
        """
        Have each of C{nodes} (default: all) dial C{degree} others drawn at
        random (seeded), never itself and never a node already linked to it
        by this call, either way (fewer if there are not enough left).
        """
        nodes = list(self.nodes if nodes is None else nodes)
        linked: set[frozenset] = set()
        pairs = []
        for a in nodes:
            others = [b for b in nodes if b is not a and frozenset((a, b)) not in linked]
            for b in self._rng.sample(others, min(degree, len(others))):
                linked.add(frozenset((a, b)))
                pairs.append((a, b))
        return self.connectAll(pairs)

    def partition(self, side: Sequence[Node], other: Sequence[Node]) -> int:
        """
        Split the network: every link between a node of C{side} and one of
        C{other} is cut until L{heal} (L{MemoryNetwork.partition}); both
        sides have seen their connections go when this returns.

        @return: how many connections were cut.
        """
        count = sum(
            self.network.partition(self.ipOf(a), self.ipOf(b)) for a in side for b in other
        )
        self.network.advance(0)
        return count

    def heal(self, side: Sequence[Node], other: Sequence[Node]) -> None:
        """
        Undo L{partition}C{(side, other)}: dials between the two sides get
        through again (the nodes reconnect by themselves, or by L{connect}).
        """
        for a in side:
            for b in other:
                self.network.heal(self.ipOf(a), self.ipOf(b))

    def disconnect(self, a: Node, b: Node) -> int:
        """
        Cut the connections between the machines of C{a} and C{b} (see
        L{MemoryNetwork.disconnect}); both nodes have seen them go when
        this returns.

        @return: how many connections were cut.
        """
        count = self.network.disconnect(self.ipOf(a), self.ipOf(b))
        self.network.advance(0)
        return count

    # -- state ----------------------------------------------------------------------

    def isConnected(self) -> bool:
        """
        Whether the running nodes form one connected graph of established
        peers.
        """
        running = [node for node in self.nodes if node.running]
        if not running:
            return True
        byId = {node.node_id: node for node in running}
        seen = {running[0].node_id}
        todo = [running[0]]
        while todo:
            for peer in todo.pop().peers():
                if peer.node_id in byId and peer.node_id not in seen:
                    seen.add(peer.node_id)
                    todo.append(byId[peer.node_id])
        return len(seen) == len(byId)

    @property
    def messagesSent(self) -> int:
        """
        Messages sent on the network so far.
        """
        return self.network.messagesSent

    @property
    def bytesSent(self) -> int:
        """
        Bytes sent on the network so far.
        """
        return self.network.bytesSent
