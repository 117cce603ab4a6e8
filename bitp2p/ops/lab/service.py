"""
The lab's nodes: real L{Node}s in this process, on loopback TCP ports, each
with its own data directory under the lab's, started, stopped, crashed,
restarted, connected and cut apart on request, and watched all at once.

L{Lab} owns the set of lab nodes, what it does to them, and the record of
what happened among them (a bounded event feed, the broadcasts sent from the
lab and how far each got). It sees a node only through its public API
(C{connect}, C{disconnect}, C{observe}, C{registerMessage}, C{broadcast},
C{peers}, its components' public methods) and L{bitp2p.views}; it knows
nothing of HTTP (L{bitp2p.ops.lab.web} renders it).

All lab nodes share the address 127.0.0.1, so a node's own C{ban} (which
bans a host or subnet) would cut it off from the whole lab: the lab's "ban"
is between two nodes, enforced by the lab, which closes their connection as
soon as it forms; a partition is the same for every pair across its halves.
"""

from __future__ import annotations

import collections
import itertools
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from twisted.application import service
from twisted.internet import defer, task
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from bitp2p.constants import NETWORK
from bitp2p.node import Node, NodeConfig
from bitp2p.peer import Direction
from bitp2p.views import addressViews

__all__ = ["Lab", "LabError", "LabNode", "BROADCAST_TYPE"]

log = Logger()

# The application message type of the lab's broadcasts.
BROADCAST_TYPE = "lab-broadcast"
# The most events kept (older ones are dropped: a browser that is away
# does not make the lab grow).
MAX_EVENTS = 2000
# The most broadcasts remembered.
MAX_BROADCASTS = 20
# The most "learned" events written for one node in one look (the rest
# are counted in one line).
MAX_LEARNED_LINES = 20
# How often the address tables are looked at, in seconds.
POLL_S = 0.5
# Ports tried past a busy one when looking for a free one.
PORT_TRIES = 200
HOST = "127.0.0.1"


class LabError(Exception):
    """
    A request the lab cannot do; its message is one line for the person.
    """


class LabNode:
    """
    One lab node: its port, its data directory and, while it runs, its
    L{Node}.

    @ivar state: C{"running"}, C{"stopped"} (an orderly stop: its tables
        were saved) or C{"crashed"} (killed: nothing saved).
    @ivar known: the addresses its address manager held at the last look.
    """

    def __init__(self, port: int, datadir: Path) -> None:
        self.port = port
        self.datadir = datadir
        self.node: Node | None = None
        self.state = "stopped"
        self.known: set[str] = set()
        self.starts = 0
        self._unobserve: Callable[[], None] | None = None

    @property
    def running(self) -> bool:
        return self.node is not None and self.state == "running"


class Lab(service.MultiService):
    """
    A lab of local nodes.

    @param directory: where each node's data directory is made (one per
        port).
    @param network: the network the nodes speak (C{bitp2p}, or a Bitcoin
        network).
    @param basePort: the first port tried when none is given.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        network: str = NETWORK,
        basePort: int = 5000,
        reactor=None,
        maxEvents: int = MAX_EVENTS,
    ) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.directory = Path(directory)
        self.network = network
        self.basePort = basePort
        self.nodes: dict[int, LabNode] = {}
        self.events: collections.deque[dict] = collections.deque(maxlen=maxEvents)
        self._seq = itertools.count(1)
        self.lastSeq = 0
        self.bans: set[tuple[int, int]] = set()
        self.halves: tuple[frozenset[int], frozenset[int]] | None = None
        self.broadcasts: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._poll = task.LoopingCall(self.look)
        self._poll.clock = reactor
        self._nonce = itertools.count(1)

    # -- the service ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._poll.start(POLL_S, now=False)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        if self._poll.running:
            self._poll.stop()
        return defer.gatherResults(
            [self.stopNode(n.port) for n in list(self.nodes.values()) if n.running]
        )

    # -- the event feed -----------------------------------------------------------

    def record(self, kind: str, node: int | None, text: str, **fields: Any) -> dict:
        """
        Add an event to the feed.
        """
        seq = self.lastSeq = next(self._seq)
        event = {"seq": seq, "t": self.reactor.seconds(), "kind": kind, "node": node, "text": text}
        event.update(fields)
        self.events.append(event)
        return event

    def eventsSince(self, seq: int) -> tuple[list[dict], bool]:
        """
        The events after C{seq}, and whether some of them were already
        dropped.
        """
        events = [e for e in self.events if e["seq"] > seq]
        missed = bool(self.events) and self.events[0]["seq"] > seq + 1
        return events, missed

    # -- nodes -------------------------------------------------------------------

    def node(self, port) -> LabNode:
        """
        The lab node on C{port}.

        @raise LabError: if there is none.
        """
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise LabError(f"not a port: {port!r}") from None
        try:
            return self.nodes[port]
        except KeyError:
            raise LabError(f"no lab node on port {port}") from None

    def _running(self, port) -> LabNode:
        lab = self.node(port)
        if not lab.running:
            raise LabError(f"node {lab.port} is {lab.state}")
        return lab

    def startNode(self, port: int | None = None) -> LabNode:
        """
        Start a new node on C{port}, or on the first free port from the base
        port on.

        @raise LabError: the port is busy or already a lab node's.
        """
        if port is not None:
            if not isinstance(port, int) or not 0 < port <= 65535:
                raise LabError(f"a port is a whole number in 1..65535, not {port!r}")
            if port in self.nodes:
                raise LabError(f"port {port} is already lab node {port} ({self.nodes[port].state})")
            return self._launch(LabNode(port, self.directory / str(port)), "started")
        candidate = self.basePort
        for _ in range(PORT_TRIES):
            while candidate in self.nodes:
                candidate += 1
            if candidate > 65535:
                break
            try:
                return self._launch(LabNode(candidate, self.directory / str(candidate)), "started")
            except LabError:
                candidate += 1
        raise LabError(f"no free port from {self.basePort} on")

    def _launch(self, lab: LabNode, verb: str) -> LabNode:
        lab.datadir.mkdir(parents=True, exist_ok=True)
        config = NodeConfig(
            network=self.network,
            port=lab.port,
            interface=HOST,
            seeds=(),
            datadir=str(lab.datadir),
        )
        node = Node(config, reactor=self.reactor)
        try:
            node.startService()
        except CannotListenError as e:
            node.store.close()  # the data directory's lock: the port may be tried again
            reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
            raise LabError(f"cannot listen on {HOST}:{lab.port}: {reason.lower()}") from None
        lab.node = node
        lab.state = "running"
        lab.starts += 1
        lab.known = {str(a.address) for a in addressViews(node)}
        self.nodes[lab.port] = lab
        lab._unobserve = node.observe(
            lambda peer: self._connected(lab, peer),
            lambda peer, reason: self._disconnected(lab, peer, reason),
        )
        if node.wireFormat.gossip:
            node.registerMessage(
                BROADCAST_TYPE, lambda peer, message: self._delivered(lab, peer, message)
            )
        extra = f", {len(lab.known)} addresses from its data directory" if lab.known else ""
        self.record("node", lab.port, f"{lab.port} {verb} (node {node.node_id[:8]}{extra})")
        return lab

    def stopNode(self, port) -> defer.Deferred:
        """
        Stop a node in order (it saves its tables, closes its connections).
        """
        lab = self._running(port)
        node = lab.node
        self._forget(lab, "stopped")
        d = defer.maybeDeferred(node.stopService)
        return d.addCallback(lambda _: self.record("node", lab.port, f"{lab.port} stopped (tables saved)"))

    def killNode(self, port) -> None:
        """
        Kill a node as a crash would: its connections are reset at once,
        its port closed, its timers stopped, and nothing is saved.
        """
        lab = self._running(port)
        node = lab.node
        self._forget(lab, "crashed")
        node.crash()
        self.record("node", lab.port, f"{lab.port} killed (crash: connections reset, nothing saved)")

    def restartNode(self, port) -> defer.Deferred:
        """
        Start again, on the same port with the same data directory, a node
        that was stopped or killed (a running one is stopped first).
        """
        lab = self.node(port)
        d = self.stopNode(port) if lab.running else defer.succeed(None)
        return d.addCallback(lambda _: self._launch(lab, "restarted"))

    def _forget(self, lab: LabNode, state: str) -> None:
        if lab._unobserve is not None:
            lab._unobserve()
            lab._unobserve = None
        lab.state = state
        lab.node = None

    # -- links --------------------------------------------------------------------

    def _peerPort(self, peer) -> int | None:
        address = peer.address
        return address.port if address is not None else None

    def label(self, address) -> str:
        """
        A lab node's port alone, any other address in full.
        """
        text = str(address)
        host, _, port = text.rpartition(":")
        if host == HOST and port.isdigit() and int(port) in self.nodes:
            return port
        return text

    def _peer(self, lab: LabNode, other: int):
        for peer in lab.node.peers():
            if self._peerPort(peer) == other:
                return peer
        return None

    def connect(self, a, b) -> defer.Deferred:
        """
        Node C{a} dials node C{b} (or any C{HOST:PORT} given as C{b}).
        """
        source = self._running(a)
        if isinstance(b, str) and ":" in b:
            target = b
        else:
            other = self.node(b)
            if other.port == source.port:
                raise LabError("a node cannot connect to itself")
            if self.blocked(source.port, other.port):
                raise LabError(f"{source.port} and {other.port} are cut apart ({self.blocked(source.port, other.port)})")
            target = f"{HOST}:{other.port}"
        d = source.node.connect(target)

        def failed(failure):
            self.record("error", source.port, f"{source.port} could not connect to {self.label(target)}: {failure.getErrorMessage()}")
            return failure

        return d.addErrback(failed)

    def disconnect(self, a, b) -> defer.Deferred:
        """
        Close the connection between nodes C{a} and C{b} (whoever dialed).
        """
        source = self._running(a)
        other = self.node(b)
        for one, two in ((source, other), (other, source)):
            peer = self._peer(one, two.port) if one.running else None
            if peer is not None:
                return one.node.disconnect(peer.node_id)
        raise LabError(f"{source.port} is not connected to {other.port}")

    def blocked(self, a: int, b: int) -> str | None:
        """
        Why nodes C{a} and C{b} may not be connected (C{"ban"},
        C{"partition"}), or L{None}.
        """
        if (a, b) in self.bans or (b, a) in self.bans:
            return "ban"
        if self.halves is not None:
            one, two = self.halves
            if (a in one and b in two) or (a in two and b in one):
                return "partition"
        return None

    def ban(self, a, b) -> None:
        """
        Node C{a} bans node C{b}: their connection is closed, and closed
        again whenever it forms, until L{unban}.
        """
        one, two = self.node(a), self.node(b)
        if one.port == two.port:
            raise LabError("a node cannot ban itself")
        self.bans.add((one.port, two.port))
        self.record("ban", one.port, f"{one.port} banned {two.port}")
        self._cut()

    def unban(self, a, b) -> None:
        one, two = self.node(a), self.node(b)
        if (one.port, two.port) not in self.bans:
            raise LabError(f"{one.port} has not banned {two.port}")
        self.bans.discard((one.port, two.port))
        self.record("ban", one.port, f"{one.port} unbanned {two.port}")

    def partition(self) -> tuple[list[int], list[int]]:
        """
        Cut the lab into two halves (the nodes by port, the first half the
        lower ports): every connection across is closed, and closed again
        if it forms, until L{heal}.
        """
        ports = sorted(self.nodes)
        if len(ports) < 2:
            raise LabError("a partition needs two nodes at least")
        middle = (len(ports) + 1) // 2
        self.halves = (frozenset(ports[:middle]), frozenset(ports[middle:]))
        self.record(
            "partition", None,
            f"partition: {' '.join(map(str, ports[:middle]))} | {' '.join(map(str, ports[middle:]))}",
        )
        self._cut()
        return ports[:middle], ports[middle:]

    def heal(self) -> None:
        if self.halves is None:
            raise LabError("the lab is not partitioned")
        self.halves = None
        self.record("partition", None, "partition healed")

    def _cut(self) -> None:
        for lab in list(self.nodes.values()):
            if lab.running:
                for peer in lab.node.peers():
                    self._enforce(lab, peer)

    def _enforce(self, lab: LabNode, peer) -> bool:
        other = self._peerPort(peer)
        why = self.blocked(lab.port, other) if other is not None else None
        if why is None or not lab.running:
            return False
        node = lab.node

        def drop() -> None:
            if peer in node.peers():
                node.disconnect(peer.node_id).addErrback(lambda _: None)

        self.reactor.callLater(0, drop)
        self.record("cut", lab.port, f"{lab.port} drops {other} ({why})", peer=other)
        return True

    def _connected(self, lab: LabNode, peer) -> None:
        other = self._peerPort(peer)
        direction = "outbound" if peer.direction is Direction.OUTBOUND else "inbound"
        name = self.label(peer.address) if peer.address is not None else str(peer.remote)
        self.record(
            "connect", lab.port, f"{lab.port} connected to {name} ({direction})",
            peer=other, direction=direction,
        )
        if lab.running:
            self._enforce(lab, peer)

    def _disconnected(self, lab: LabNode, peer, reason: Exception) -> None:
        name = self.label(peer.address) if peer.address is not None else str(peer.remote)
        why = str(reason) or type(reason).__name__
        kind = "evict" if "evict" in why.lower() else "disconnect"
        verb = "evicted" if kind == "evict" else "disconnected from"
        self.record(kind, lab.port, f"{lab.port} {verb} {name}: {why}", peer=self._peerPort(peer))

    # -- addresses ----------------------------------------------------------------

    def look(self) -> None:
        """
        Compare each node's address table with the last look: an event per
        address learned (and who told it), one per node for those
        forgotten.
        """
        for lab in list(self.nodes.values()):
            if not lab.running:
                continue
            views = addressViews(lab.node)
            now = {str(v.address): v for v in views}
            learned = [a for a in now if a not in lab.known]
            for address in learned[:MAX_LEARNED_LINES]:
                source = now[address].source
                if source is None:
                    told = ""
                elif str(source) == address:
                    told = f" from {self.label(source)} itself"
                else:
                    told = f" from {self.label(source)}"
                self.record(
                    "learn", lab.port, f"{lab.port} learned {address}{told}", address=address
                )
            if len(learned) > MAX_LEARNED_LINES:
                self.record("learn", lab.port, f"{lab.port} learned {len(learned) - MAX_LEARNED_LINES} more addresses")
            gone = lab.known.difference(now)
            if gone:
                self.record("forget", lab.port, f"{lab.port} forgot {len(gone)} address(es): {', '.join(sorted(gone)[:5])}")
            lab.known = set(now)

    # -- broadcasts ----------------------------------------------------------------

    def broadcast(self, port, text: str = "") -> str:
        """
        Broadcast a message from node C{port} through the lab; each node's
        receipt is recorded with its hop number and delay.

        @return: the broadcast's id.
        """
        lab = self._running(port)
        if not lab.node.wireFormat.gossip:
            raise LabError(f"broadcast is bitp2p's own gossip, which a {self.network} network does not carry")
        bid = f"{lab.port}-{next(self._nonce)}-{secrets.token_hex(3)}"
        now = self.reactor.seconds()
        message = {"type": BROADCAST_TYPE, "id": bid, "origin": lab.port, "text": text[:200]}
        self.broadcasts[bid] = {
            "id": bid, "origin": lab.port, "text": text[:200], "at": now,
            "reached": {lab.port: {"hop": 0, "ms": 0.0, "from": None}},
        }
        while len(self.broadcasts) > MAX_BROADCASTS:
            self.broadcasts.popitem(last=False)
        try:
            lab.node.broadcast(message)
        except ValueError as e:
            del self.broadcasts[bid]
            raise LabError(str(e)) from None
        self.record("broadcast", lab.port, f"{lab.port} broadcast {bid}", broadcast=bid)
        return bid

    def _delivered(self, lab: LabNode, peer, message: dict) -> None:
        record = self.broadcasts.get(message.get("id"))
        if record is None or lab.port in record["reached"]:
            return
        sender = self._peerPort(peer)
        before = record["reached"].get(sender)
        hop = before["hop"] + 1 if before is not None else None
        ms = (self.reactor.seconds() - record["at"]) * 1000
        record["reached"][lab.port] = {"hop": hop, "ms": round(ms, 1), "from": sender}
        self.record(
            "receive", lab.port,
            f"{lab.port} received {record['id']} from {sender} (hop {hop if hop is not None else '?'}, {ms:.0f} ms)",
            broadcast=record["id"],
        )

    # -- the whole picture ---------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """
        The lab for JSON: its nodes (port, state, node id, known-address
        count, peers), the links between them (C{from} dialed C{to}), bans,
        the partition, the broadcasts, the last event's number.
        """
        nodes = []
        links = []
        for port in sorted(self.nodes):
            lab = self.nodes[port]
            entry: dict[str, Any] = {
                "port": port, "state": lab.state, "datadir": str(lab.datadir),
                "node_id": None, "known": None, "peers": [],
            }
            if lab.running:
                node = lab.node
                entry["node_id"] = node.node_id
                entry["known"] = len(node.book)
                for peer in node.peers():
                    other = self._peerPort(peer)
                    outbound = peer.direction is Direction.OUTBOUND
                    entry["peers"].append({
                        "port": other,
                        "address": str(peer.address) if peer.address is not None else peer.remote,
                        "direction": "outbound" if outbound else "inbound",
                        "kind": peer.kind.value,
                    })
                    if outbound and other is not None:
                        links.append({"from": port, "to": other, "kind": peer.kind.value})
            nodes.append(entry)
        return {
            "network": self.network,
            "directory": str(self.directory),
            "gossip": self.network == NETWORK,
            "nodes": nodes,
            "links": links,
            "bans": sorted([a, b] for a, b in self.bans),
            "partition": [sorted(h) for h in self.halves] if self.halves is not None else None,
            "broadcasts": [
                {**b, "reached": {str(k): v for k, v in b["reached"].items()}}
                for b in reversed(self.broadcasts.values())
            ],
            "last_event": self.lastSeq,
        }
