"""
Peer events: a connection's handshake completed, a connection ended.

L{PeerEvents} is where the connection manager publishes both, once each, and
where every component that keeps bookkeeping about peers subscribes: the
address relay, the address book's bookkeeping, manual targets, short-lived
connections, the outbound filler, traffic totals, gossip, and the
application's L{Node.observe<bitp2p.node.Node.observe>} callbacks. A new
concern subscribes here instead of adding a line to the connection manager.

Subscribers are called in the order they subscribed (the node subscribes its
components in one place, L{Node._wire<bitp2p.node.Node>}, in a fixed order).
A subscriber may ask for the events of some connection types only (the
feeler timer has nothing to do with an inbound peer): the lists are made per
type when it subscribes, so publishing calls only those that care, which
keeps a handshake's cost near what it was when the node did all this inline.
An internal subscriber's exception is a bug and propagates; the
application's observers are wrapped (L{Observers}) so that one that raises
is logged and the others are still called.

It owns the subscriber lists only: of a peer it knows its C{kind}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Container, Iterable

from twisted.logger import Logger, LogLevel

from bitp2p.logs import UNSUMMARISED
from bitp2p.peer import ConnectionType

if TYPE_CHECKING:
    from bitp2p.logs import RepeatedEvents
    from bitp2p.peer import Peer

log = Logger()
# The lines operators (and their log filters) know a node's peers by keep
# the namespace they had before the node was taken apart.
peerLog = Logger(namespace="bitp2p.node")

# The kinds of the inbound connect and disconnect lines (RepeatedEvents).
INBOUND_CONNECTED = "Inbound peers connected"
INBOUND_DISCONNECTED = "Inbound peers disconnected"

Established = Callable[["Peer"], object]
Closed = Callable[["Peer", Exception], object]



def _detail(peer: Peer) -> str:
    """
    What a Bitcoin peer's C{version} said beyond its user agent, for the
    line of its connection (empty on bitp2p's own network).
    """
    info = getattr(peer, "info", None)
    if info is None:
        return ""
    services = " ".join(getattr(info, "service_names", ())) or "no services"
    return f", protocol {peer.protocol}, {services}, height {getattr(info, 'start_height', 0)}"

class PeerEvents:
    """
    Publishes peers' established and closed events to subscribers.
    """

    def __init__(self) -> None:
        self._established: dict[ConnectionType, list[Established]] = {
            kind: [] for kind in ConnectionType
        }
        self._closed: dict[ConnectionType, list[Closed]] = {kind: [] for kind in ConnectionType}

    def subscribe(
        self,
        established: Established | None = None,
        closed: Closed | None = None,
        kinds: Iterable[ConnectionType] = tuple(ConnectionType),
    ) -> None:
        """
        Be called with C{established(peer)} once a connection's handshake is
        done, and with C{closed(peer, reason)} once any connection ends
        (handshake done or not), for connections of C{kinds} (all by
        default).
        """
        for kind in kinds:
            if established is not None:
                self._established[kind].append(established)
            if closed is not None:
                self._closed[kind].append(closed)

    def established(self, peer: Peer) -> None:
        """
        Publish that C{peer} completed its handshake.
        """
        for subscriber in self._established[peer.kind]:
            subscriber(peer)

    def closed(self, peer: Peer, reason: Exception) -> None:
        """
        Publish that C{peer}'s connection ended, for C{reason}.
        """
        for subscriber in self._closed[peer.kind]:
            subscriber(peer, reason)


class Observers:
    """
    The application's peer observers (L{Node.observe<bitp2p.node.Node.observe>}),
    and the log lines that tell the operator the same: both hear of
    established peers that are peers in the usual sense (not the short-lived
    feeler and address-fetch connections), and of their end. An observer
    that raises is logged; the others are still called.

    The lines of the peers this node connected to are written at info
    (Bitcoin Core logs its new outbound peers); those of inbound peers go
    through C{repeated}: anyone can connect, handshake and leave as fast as
    they like, so the first is written and the rest summarised.

    @param shortLived: the connection types that are not peers in that sense.
    @param repeated: the node's L{RepeatedEvents<bitp2p.logs.RepeatedEvents>}.
    """

    def __init__(
        self, shortLived: Container[object], repeated: RepeatedEvents = UNSUMMARISED
    ) -> None:
        self._shortLived = shortLived
        self._repeated = repeated
        self._entries: list[tuple[Established | None, Closed | None]] = []

    def add(
        self, connected: Established | None, disconnected: Closed | None
    ) -> Callable[[], None]:
        """
        Add an observer.

        @return: a function that removes it.
        """
        entry = (connected, disconnected)
        self._entries.append(entry)
        return lambda: self._entries.remove(entry) if entry in self._entries else None

    def peerEstablished(self, peer: Peer) -> None:
        if peer.kind in self._shortLived:
            return
        self._log(
            peer,
            INBOUND_CONNECTED,
            "Connected to {node_id} at {address} ({direction}, {user_agent}{detail})",
            lambda: dict(
                node_id=peer.node_id,
                address=peer.address or peer.remote,
                direction=peer.kind.value,
                user_agent=peer.user_agent,
                detail=_detail(peer),
            ),
        )
        for connected, _ in list(self._entries):
            if connected is not None:
                _notify(connected, peer)

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        if peer.established_at is None or peer.kind in self._shortLived:
            return
        self._log(
            peer,
            INBOUND_DISCONNECTED,
            "Disconnected from {node_id} at {address}: {reason}",
            lambda: dict(node_id=peer.node_id, address=peer.address or peer.remote, reason=reason),
        )
        for _, disconnected in list(self._entries):
            if disconnected is not None:
                _notify(disconnected, peer, reason)

    def _log(self, peer: Peer, kind: str, format: str, fields: Callable[[], dict]) -> None:
        if peer.kind is ConnectionType.INBOUND:
            host = getattr(peer.remote_address, "host", "") or ""
            # A line only counted into a summary is not made, nor its
            # fields (RepeatedEvents.counted): this is on every inbound
            # connection's path, and anyone can make those at will.
            if not self._repeated.counted(kind, host):
                self._repeated.emit(peerLog, LogLevel.info, kind, host, format, **fields())
        else:
            peerLog.info(format, **fields())


def _notify(callback: Callable, *args) -> None:
    try:
        callback(*args)
    except Exception:
        log.failure("Peer observer {callback!r} failed", callback=callback)


__all__ = ["Observers", "PeerEvents"]
