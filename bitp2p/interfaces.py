"""
The interfaces the node's components see of each other.

Each component of a L{Node<bitp2p.node.Node>} is handed, when the node wires
it (L{Node._wire<bitp2p.node.Node>}), the narrow interfaces below, or plain
callables, never another component's class: so each can be tested with a
stub, and replaced. They are C{typing.Protocol}s: structural, checked by a
type checker, free at run time.

This module owns declarations only; it implements nothing and imports no
component.
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    AbstractSet,
    Any,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Protocol,
)

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from bitp2p.address import Address
    from bitp2p.endpoints import Target
    from bitp2p.peer import ConnectionType, Peer


class AddressInfo(Protocol):
    """
    What an address manager knows of one address (L{bitp2p.addrman.AddrInfo},
    L{bitp2p.addrbook.AddressInfo}).
    """

    address: Address
    last_seen: float
    last_tried: float
    last_success: float
    attempts: int

    @property
    def failures(self) -> int:
        """
        Failed dials since the last success (the retry backoff counts them).
        """

    @property
    def in_tried(self) -> bool:
        """
        Whether it is in the "tried" table (it worked once).
        """

    @property
    def source(self) -> Address | None:
        """
        Who told us of it, where the manager keeps sources; else L{None}.
        """


class IAddressManager(Protocol):
    """
    The address manager: every address the node knows, and which to try.
    Both L{bitp2p.addrman.AddrMan} (Bitcoin Core's bucketed tables) and
    L{bitp2p.addrbook.AddressBook} (bitp2p 0.1's flat book) implement it,
    so no caller needs to know which one it has.
    """

    size_new: int
    size_tried: int

    def __len__(self) -> int: ...

    def __contains__(self, address: object) -> bool: ...

    def __iter__(self) -> Iterator[AddressInfo]: ...

    def get(self, address: Address) -> AddressInfo | None: ...

    def add(
        self,
        entries: Iterable[tuple[Address, float]],
        source: Address,
        now: float,
        time_penalty_s: float = 0.0,
    ) -> int:
        """
        Learn addresses told by C{source}; return how many were new.
        """

    def good(self, address: Address, now: float, test_before_evict: bool = True) -> bool: ...

    def attempt(self, address: Address, now: float, count_failure: bool = True) -> None: ...

    def failed(self, address: Address, now: float) -> None: ...

    def connected(self, address: Address, now: float) -> None: ...

    def remove(self, address: Address) -> None: ...

    def select(self, now: float, new_only: bool = False) -> AddressInfo | None: ...

    def select_tried_collision(self, now: float) -> AddressInfo | None: ...

    def resolve_collisions(self, now: float) -> None: ...

    def get_addr(
        self, now: float, count: int, max_pct: int, min_count: int
    ) -> list[AddressInfo]: ...

    def regroup(self, group_of: Callable[[Address], str]) -> None:
        """
        Group addresses anew (a manager without groups does nothing).
        """

    def check(self) -> None:
        """
        Verify every invariant; raise if one is broken.
        """

    def to_json(self) -> Any: ...


class IPeerWire(Protocol):
    """
    What a L{Peer} uses of its wire, the framing protocol of its connection
    (L{bitp2p.wire.JSONLineWire} for JSON lines).
    """

    transport: Any
    bytesIn: int
    bytesOut: int
    sendPaused: bool

    def sendMessage(self, message: Mapping, frames: dict | None = None) -> None: ...

    def sendMessages(self, messages: Iterable[Mapping]) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def getPeer(self) -> Any: ...

    def getHost(self) -> Any: ...


class IWireFormat(Protocol):
    """
    A wire format: how messages become bytes on a connection. The
    connection manager asks it for the framing protocol of each new
    connection; the message registry asks it to encode an application
    message once for all the peers it goes to. Nothing else names a wire
    class.
    """

    name: str

    gossip: bool
    """
    Whether bitp2p's gossip (C{inv}/C{getdata}/C{notfound} of broadcast
    messages) can be carried: not on a Bitcoin network, whose C{inv} means
    something else.
    """

    reservedTypes: AbstractSet[str]
    """
    The message types the node handles itself: an application cannot
    register or send these.
    """

    minProtocol: int
    """
    Peers whose C{version} says an older protocol version are refused.
    """

    def buildProtocol(self, peer: Peer) -> Any:
        """
        The framing protocol (an C{IProtocol}) of a new connection, feeding
        C{peer}.
        """

    def frames(self, message: Mapping) -> dict:
        """
        A message encoded for sending: a dict to pass as C{frames} to
        L{Peer.send}, so that it is encoded once whatever the number of
        peers it goes to.

        @raise ValueError: if the format cannot carry it (not encodable, or
            longer than peers accept).
        """


class IConnections(Protocol):
    """
    What the other components see of the connection manager
    (L{ConnectionManager<bitp2p.connman.ConnectionManager>}): the live
    connections, our own addresses, dialing, and the group diversity of
    the outbound ones. The address relay, the outbound filler, the manual
    targets and the handshake are each given one, never the class.
    """

    listeningAddress: Address | None
    ownAddresses: AbstractSet[Address]

    def peers(self) -> list[Peer]:
        """
        The established peers (short-lived connections excluded).
        """

    def connections(self) -> list[Peer]:
        """
        Every live connection, in the order they were made.
        """

    def count(self, kind: ConnectionType) -> int: ...

    def isOwn(self, address: Address) -> bool: ...

    def addOwn(self, address: Address) -> None: ...

    def dial(self, target: Target, kind: ConnectionType) -> Deferred[Peer]: ...

    def isDialing(self, address: Address) -> bool: ...

    def dialingKinds(self) -> Iterable[tuple[Address, ConnectionType]]: ...

    def busyAddresses(self) -> set[Address]: ...

    def outboundGroups(self) -> set[str]: ...

    def diversityKey(self, address: Address) -> str | None: ...

    def admitId(self, peer: Peer) -> Exception | None:
        """
        Judge a peer's node id: itself, or a node already connected?
        """


class IPeerObserver(Protocol):
    """
    A subscriber to L{PeerEvents<bitp2p.events.PeerEvents>}.
    """

    def peerEstablished(self, peer: Peer) -> None: ...

    def peerClosed(self, peer: Peer, reason: Exception) -> None: ...


__all__ = [
    "AddressInfo",
    "IAddressManager",
    "IConnections",
    "IPeerObserver",
    "IPeerWire",
    "IWireFormat",
]
