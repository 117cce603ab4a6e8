"""
The node's read-only face: one description of a node, its peers and its
known addresses, which every operator tool renders.

L{PeerView}, L{AddressView} and L{NodeView} are frozen records, copies taken
at one moment: holding one keeps no connection alive and changes nothing.
L{peerView}, L{establishedViews}, L{addressViews} and L{nodeView} build them
from a L{Node<bitp2p.node.Node>}'s and a L{Peer<bitp2p.peer.Peer>}'s public
API only (never a C{_private} attribute, never C{getattr} for a field), and
L{nodeStatus} renders them as C{Node.status()} has always answered.

The console, the control API, the dashboard and the metrics render these
views, each in its own format; so a peer or an address is described in one
place, and a new fact about a peer is added here once.

This module knows the node's public API and the Twisted address types. It
must not know how anything is shown: no HTTP, JSON-RPC field names,
Prometheus, HTML or terminal; L{nodeStatus} is the one rendering here,
because it is the node's own.
"""

from __future__ import annotations

import ipaddress
from types import MappingProxyType
from typing import Any, Mapping

import attrs
from twisted.internet.address import UNIXAddress

from bitp2p.address import Address
from bitp2p.peer import ConnectionType, Direction, Peer

__all__ = [
    "AddressView",
    "NodeView",
    "PeerView",
    "addressView",
    "addressViews",
    "establishedViews",
    "hostPort",
    "network",
    "nodeStatus",
    "nodeView",
    "peerView",
]


def hostPort(address: object) -> str | None:
    """
    C{host:port} (C{[host]:port} for IPv6) of a Twisted address, C{unix:PATH}
    (or C{unix} for a socket without a name) for a UNIX socket, or L{None}.
    """
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if isinstance(host, str):
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return f"unix:{name}" if name else "unix"
    return None


def network(address: object) -> str:
    """
    The network of a Twisted address (or of a L{bitp2p.address.Address}):
    C{ipv4}, C{ipv6}, C{onion}, C{i2p}, C{cjdns}, C{unix}, or C{other}
    (also for L{None}).
    """
    if isinstance(address, UNIXAddress):
        return "unix"
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return "other"
    if host.endswith(".onion"):
        return "onion"
    if host.endswith(".i2p"):
        return "i2p"
    if host.startswith("cjdns:"):
        return "cjdns"
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return "other"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return "ipv6"
    return "ipv4"


def _perType(table: Mapping[str, list[int]]) -> Mapping[str, tuple[int, int]]:
    """
    A read-only copy of a peer's C{recv_per_type} or C{send_per_type}:
    C{{type: (messages, bytes)}}, types in order.
    """
    return MappingProxyType(
        {
            str(kind): (int(counter[0]), int(counter[1]))
            for kind, counter in sorted(table.items(), key=lambda item: str(item[0]))
        }
    )


@attrs.frozen
class PeerView:
    """
    One connection, as it was when the view was taken.

    @ivar node_id: the peer's node id (L{None} before its C{version}).
    @ivar address: its listening address (L{Peer.address}), or L{None}.
    @ivar remote: the connection's remote end as text (L{Peer.remote}).
    @ivar direction: who dialed.
    @ivar kind: why the connection exists.
    @ivar established: whether the handshake is done.
    @ivar user_agent: what its C{version} said.
    @ivar protocol: its protocol version (0 before its C{version}).
    @ivar addr_recv: how it sees us, from its C{version}, or L{None}.
    @ivar connected_at: when the connection was made (reactor seconds).
    @ivar established_at: when the handshake was done, or L{None}.
    @ivar rtt_s: the last ping round trip, or L{None}.
    @ivar min_rtt_s: the lowest ping round trip, or L{None}.
    @ivar ping_sent_at: when the ping waiting for its pong was sent, or
        L{None} when none is in flight.
    @ivar messages_in: messages received.
    @ivar messages_out: messages sent.
    @ivar bytes_in: bytes received.
    @ivar bytes_out: bytes sent.
    @ivar last_recv: when bytes last arrived (0.0 if never).
    @ivar last_send: when we last wrote (0.0 if never).
    @ivar remote_address: the remote end as Twisted gives it (an
        C{IAddress}), or L{None} when not connected.
    @ivar local_address: the local end (an C{IAddress}), or L{None}.
    @ivar recv_per_type: C{{type: (messages, bytes)}} received, types in
        order.
    @ivar send_per_type: the same, sent.
    @ivar services: on a Bitcoin network, the service bits of its
        C{version}; else L{None}.
    @ivar service_names: those bits by name (C{NETWORK}, C{WITNESS}, ...).
    @ivar start_height: on a Bitcoin network, its best block height when
        it connected; else L{None}.
    @ivar relay: on a Bitcoin network, whether it wants transactions
        relayed (BIP 37); else L{None}.
    """

    node_id: str | None
    address: Address | None
    remote: str
    direction: Direction
    kind: ConnectionType
    established: bool
    user_agent: str
    protocol: int
    addr_recv: Address | None
    connected_at: float
    established_at: float | None
    rtt_s: float | None
    min_rtt_s: float | None
    ping_sent_at: float | None
    messages_in: int
    messages_out: int
    bytes_in: int
    bytes_out: int
    last_recv: float
    last_send: float
    remote_address: Any = attrs.field(eq=False)
    local_address: Any = attrs.field(eq=False)
    recv_per_type: Mapping[str, tuple[int, int]] = attrs.field(eq=False)
    send_per_type: Mapping[str, tuple[int, int]] = attrs.field(eq=False)
    services: int | None = None
    service_names: tuple[str, ...] = ()
    start_height: int | None = None
    relay: bool | None = None

    @property
    def inbound(self) -> bool:
        return self.direction is Direction.INBOUND

    @property
    def network(self) -> str:
        """
        The network of the remote end (see L{network}).
        """
        return network(self.remote_address)

    @property
    def local(self) -> str | None:
        """
        The local end as text (see L{hostPort}), or L{None}.
        """
        return hostPort(self.local_address)

    def pingWait(self, now: float) -> float | None:
        """
        How long the ping in flight has waited at C{now}, or L{None} when
        none is in flight.
        """
        if self.ping_sent_at is None:
            return None
        return max(0.0, now - self.ping_sent_at)


def peerView(peer: Peer) -> PeerView:
    """
    The view of one connection, now.
    """
    info = peer.info
    services = getattr(info, "services", None)
    return PeerView(
        node_id=peer.node_id,
        address=peer.address,
        remote=peer.remote,
        direction=peer.direction,
        kind=peer.kind,
        established=peer.established,
        user_agent=peer.user_agent,
        protocol=peer.protocol,
        addr_recv=peer.addr_recv,
        connected_at=peer.connected_at,
        established_at=peer.established_at,
        rtt_s=peer.rtt_s,
        min_rtt_s=peer.min_rtt_s,
        ping_sent_at=peer.ping_sent_at,
        messages_in=peer.messages_in,
        messages_out=peer.messages_out,
        bytes_in=peer.bytes_in,
        bytes_out=peer.bytes_out,
        last_recv=peer.last_recv,
        last_send=peer.last_send,
        remote_address=peer.remote_address,
        local_address=peer.local_address,
        recv_per_type=_perType(peer.recv_per_type),
        send_per_type=_perType(peer.send_per_type),
        services=services,
        service_names=tuple(info.service_names) if services is not None else (),
        start_height=getattr(info, "start_height", None),
        relay=getattr(info, "relay", None),
    )


def establishedViews(node) -> list[PeerView]:
    """
    Every established connection of C{node}, short-lived ones (feelers,
    address fetches) included, oldest handshake first (connections whose
    handshakes ended at the same time in the order they were made).
    """
    established = [p for p in node.connections() if p.established]
    return [peerView(p) for p in sorted(established, key=lambda p: p.established_at or 0)]


@attrs.frozen
class AddressView:
    """
    One address the node knows, as it was when the view was taken.

    @ivar address: the address.
    @ivar in_tried: whether it is in the tried table (it worked), else new.
    @ivar last_seen: when it was last said to be alive (gossip's timestamp,
        Bitcoin's C{nTime}: a relayed address 2 hours earlier than given).
    @ivar heard: when this node last heard of it, by its own clock (0.0:
        not since it started).
    @ivar last_tried: when we last dialed it (0.0 if never).
    @ivar last_success: when a connection to it last worked (0.0 if never).
    @ivar attempts: dials since it last worked.
    @ivar failures: dials that failed.
    @ivar source: who told us of it (the address itself when we dialed it or
        were seeded with it), or L{None} for an address book that keeps no
        sources.
    """

    address: Address
    in_tried: bool
    last_seen: float
    heard: float
    last_tried: float
    last_success: float
    attempts: int
    failures: int
    source: Address | None

    @property
    def table(self) -> str:
        """
        C{"tried"} or C{"new"}.
        """
        return "tried" if self.in_tried else "new"


def addressView(info) -> AddressView:
    """
    The view of one entry of a node's address book (an C{AddrInfo} of the
    address manager or an C{AddressInfo} of the simple book).
    """
    return AddressView(
        address=info.address,
        in_tried=info.in_tried,
        last_seen=info.last_seen,
        heard=info.heard,
        last_tried=info.last_tried,
        last_success=info.last_success,
        attempts=info.attempts,
        failures=info.failures,
        source=info.source,
    )


def addressViews(node) -> list[AddressView]:
    """
    Every address C{node} knows, in address order.
    """
    return [addressView(info) for info in sorted(node.book, key=lambda i: i.address)]


@attrs.frozen
class NodeView:
    """
    The node itself, as it was when the view was taken: who it is, and its
    counts. Its peers and addresses are in L{establishedViews} and
    L{addressViews}, taken only by those who list them.

    @ivar now: when the view was taken (the node's reactor seconds).
    @ivar node_id: the node's id.
    @ivar listening: the address it listens on, or L{None}.
    @ivar user_agent: the user agent it announces.
    @ivar running: whether its service runs.
    @ivar uptime_s: seconds since it started (0.0 when not running).
    @ivar tls: whether it runs with a TLS identity.
    @ivar peers: established peers (short-lived connections not counted).
    @ivar peers_inbound: of these, the inbound ones.
    @ivar outbound: established connections of kind outbound.
    @ivar inbound: of kind inbound.
    @ivar manual: of kind manual.
    @ivar handshaking: live connections whose handshake is not done.
    @ivar dialing: outgoing connections being made.
    @ivar known_new: addresses in the new table.
    @ivar known_tried: addresses in the tried table.
    @ivar bans: the bans in force: C{(subnet, until)} pairs, in
        L{BanMan.bans<bitp2p.banman.BanMan.bans>} order.
    @ivar gossip: the gossip counters, and C{seen}: message ids remembered.
    @ivar local_addresses: the addresses the node listens on and
        advertises, in address order: its listening address when it is
        bound to one host; when it listens on every interface (C{0.0.0.0},
        C{::}), the addresses it advertised to its peers (the local end of
        each connection) or found to be its own; empty when not listening.
    @ivar counters: the node's counters since start (C{handshake_failures},
        C{violations}; dials by outcome: C{dials_connected}, C{dials_failed},
        C{dials_cancelled}; inbound connections C{accepted} and refused:
        C{refused_banned}, C{refused_group}, C{refused_full}; C{evictions}).
    """

    now: float
    node_id: str
    listening: Address | None
    user_agent: str
    running: bool
    uptime_s: float
    tls: bool
    peers: int
    peers_inbound: int
    outbound: int
    inbound: int
    manual: int
    handshaking: int
    dialing: int
    known_new: int
    known_tried: int
    bans: tuple[tuple[str, float], ...]
    gossip: Mapping[str, int] = attrs.field(eq=False)
    counters: Mapping[str, int] = attrs.field(eq=False)
    local_addresses: tuple[Address, ...] = ()

    @property
    def known(self) -> int:
        """
        Addresses known, in both tables.
        """
        return self.known_new + self.known_tried


def nodeView(node) -> NodeView:
    """
    The view of C{node}, now.
    """
    now = node.reactor.seconds()
    connections = node.connections()
    established = [p for p in connections if p.established]
    peers = node.peers()
    book = node.book
    return NodeView(
        now=now,
        node_id=node.node_id,
        listening=node.listeningAddress,
        user_agent=node.config.user_agent,
        running=bool(node.running),
        uptime_s=node.uptime(),
        tls=node.identity is not None,
        peers=len(peers),
        peers_inbound=sum(p.direction is Direction.INBOUND for p in peers),
        outbound=sum(p.kind is ConnectionType.OUTBOUND for p in established),
        inbound=sum(p.kind is ConnectionType.INBOUND for p in established),
        manual=sum(p.kind is ConnectionType.MANUAL for p in established),
        handshaking=len(connections) - len(established),
        dialing=node.dialCount(),
        known_new=book.size_new,
        known_tried=book.size_tried,
        bans=tuple(node.bans.bans(now)),
        gossip=MappingProxyType(dict(node.gossip.stats, seen=len(node.gossip.seen))),
        counters=MappingProxyType(dict(node.counters)),
        local_addresses=_localAddresses(node.listeningAddress, node.ownAddresses),
    )


def _localAddresses(listening: Address | None, own) -> tuple[Address, ...]:
    """
    L{NodeView.local_addresses}: C{listening} when bound to one host, else
    the node's own addresses on its listening port.
    """
    if listening is None or not listening.port:
        return ()
    if listening.host not in ("0.0.0.0", "::"):
        return (listening,)
    return tuple(sorted(a for a in own if a.port == listening.port))


def _bitcoinFields(view: PeerView) -> dict:
    """
    What a Bitcoin peer's C{version} said beyond bitp2p's own fields (empty
    on bitp2p's own network).
    """
    if view.services is None:
        return {}
    return {
        "protocol": view.protocol,
        "services": view.services,
        "service_names": list(view.service_names),
        "start_height": view.start_height,
        "relay": view.relay,
        "network": view.network,
    }


def nodeStatus(node) -> dict:
    """
    A snapshot of the node, fit for JSON, as C{Node.status()} gives it: its
    id and address, every established peer (oldest handshake first), the
    connections in progress, the known addresses (in address order), the
    bans.
    """
    view = nodeView(node)
    return {
        "node_id": view.node_id,
        "listening": str(view.listening) if view.listening else None,
        "user_agent": view.user_agent,
        "uptime_s": view.uptime_s,
        "outbound": view.outbound,
        "inbound": view.inbound,
        "manual": view.manual,
        "handshaking": view.handshaking,
        "dialing": view.dialing,
        "peers": [
            {
                "node_id": p.node_id,
                "address": str(p.address) if p.address else None,
                "remote": p.remote,
                "direction": p.direction.value,
                "kind": p.kind.value,
                "user_agent": p.user_agent,
                "connected_since": p.established_at,
                "rtt_s": p.rtt_s,
                "min_rtt_s": p.min_rtt_s,
                "messages_in": p.messages_in,
                "messages_out": p.messages_out,
                "bytes_in": p.bytes_in,
                "bytes_out": p.bytes_out,
                **_bitcoinFields(p),
            }
            for p in establishedViews(node)
        ],
        "known": [
            {
                "address": str(a.address),
                "table": a.table,
                "last_seen": a.last_seen,
                "last_tried": a.last_tried,
                "last_success": a.last_success,
                "attempts": a.attempts,
                "failures": a.failures,
            }
            for a in addressViews(node)
        ],
        "bans": [{"subnet": s, "until": u} for s, u in view.bans],
        "tls": view.tls,
        "gossip": dict(view.gossip),
    }
