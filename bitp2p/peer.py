"""
One connection's message logic: handshake and keep-alive.

A L{Peer} knows the protocol's meaning, never its framing: it receives decoded
message dicts from its wire (an L{IPeerWire<bitp2p.interfaces.IPeerWire>},
made by the node's wire format) and sends dicts back through it; it neither
imports nor names a wire class. Everything that needs to know about other
connections (duplicate detection, the address book, address relay, limits)
is asked of its L{PeerManager}, a narrow interface through which the node
routes each call to the component that owns it (L{PeerRoutes}): C{getaddr}
and C{addr} go whole to the address relay (L{bitp2p.discovery}), which
alone knows what they mean; application messages go to the handlers of the
message registry (L{bitp2p.messages}).

The life of a peer, by what it has received::

    NEW --version--> GOT_VERSION --verack--> ESTABLISHED --(lost)--> CLOSED
    NEW --verack---> GOT_VERACK  --version-> ESTABLISHED

Before ESTABLISHED any other message of the protocol's own types is a
violation (unknown types are ignored, never a violation), and so is a second
C{version} at any time. Each state
change is made in one place, L{Peer._enter}.

Timers, all on the injected clock and all cancelled when the connection ends:
the handshake timeout (from connection to ESTABLISHED), the ping timeout
(from a C{ping} to its C{pong}) and the inactivity timeout (since anything at
all was received; checked lazily so that receiving costs no timer work).
The handshake's and the inactivity check share one deadline, kept in the
node's L{Deadlines<bitp2p.timers.Deadlines>} (one clock timer for all its
connections) rather than a C{DelayedCall} per connection.

Log lines: what an inbound peer does to end its own connection (a timeout,
not reading) is logged at debug level, since anyone may connect and do it
again (the disconnection line of an established peer says why anyway);
violations, refused versions and failed handlers go through the node's
L{RepeatedEvents<bitp2p.logs.RepeatedEvents>} (C{PeerManager.repeated}).
For connections this node made, it is all logged at info.
"""

from __future__ import annotations

import enum
import random
import sys
from typing import Any, Callable, Mapping, Protocol

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from bitp2p import codec
from bitp2p.address import Address
from bitp2p.constants import (
    CLOSE_GRACE_S,
    HANDSHAKE_TIMEOUT_S,
    INACTIVITY_TIMEOUT_S,
    MAX_COUNTED_TYPES,
    PING_TIMEOUT_S,
)
from bitp2p.errors import (
    DuplicateConnection,
    HandshakeFailed,
    HandshakeTimeout,
    PeerLost,
    ProtocolViolation,
)
from bitp2p.logs import UNSUMMARISED, RepeatedEvents
from bitp2p.timers import Deadlines

log = Logger()

# The kinds of the log lines a peer could cause at will (RepeatedEvents).
VIOLATIONS = "Protocol violations by inbound peers"
REFUSED_VERSIONS = "Versions refused from inbound peers"
HANDLER_FAILED = "Handler failures"


def _host(peer: Peer) -> str:
    return getattr(getattr(peer, "remote_address", None), "host", "") or ""


# Where a peer's traffic of the types past MAX_COUNTED_TYPES is counted.
OTHER_TYPE = "*other*"


# Where a type's counter (a list in a Peer's traffic table) keeps what was
# received (messages, bytes) and what was sent (messages, bytes).
RECV_MESSAGES, RECV_BYTES, SENT_MESSAGES, SENT_BYTES = range(4)


def typeCounter(table: dict[str, list[int]], kind: object, sent: bool = False) -> list[int]:
    """
    The counter of message type C{kind} in C{table} (a L{Peer}'s
    C{traffic}): C{[messages received, bytes received, messages sent,
    bytes sent]}, made if need be.

    A type not yet in C{table}, received when it has C{MAX_COUNTED_TYPES - 1}
    keys, or sent when it has twice that, and a type that is not a string,
    is counted under L{OTHER_TYPE}: C{table} never has more than
    2 x L{MAX_COUNTED_TYPES} keys, and a peer that sends many types cannot
    take their names from the types this node sends.

    Callers look C{table.get(kind)} up first, and call this only when it is
    missing: once per type and peer.
    """
    if type(kind) is not str or (
        len(table) >= (2 * MAX_COUNTED_TYPES if sent else MAX_COUNTED_TYPES) - 1
        and kind not in table
    ):
        kind = OTHER_TYPE
    # The key kept is the interned string, shared by every peer's table,
    # not the one decoded from this peer's message (two per handshake).
    return table.setdefault(sys.intern(kind), [0, 0, 0, 0])


def _direction(table: dict[str, list[int]], start: int) -> dict[str, list[int]]:
    return {
        kind: counter[start : start + 2] for kind, counter in table.items() if counter[start]
    }


def refill(tokens: float, elapsed_s: float, rate_per_s: float, cap: float) -> float:
    """
    A token bucket's tokens after C{elapsed_s}: C{rate_per_s} more a second,
    up to C{cap}. A bucket above its cap (a bonus was added) keeps what it
    has.
    """
    if tokens >= cap:
        return tokens
    return min(cap, tokens + elapsed_s * rate_per_s)


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ConnectionType(enum.Enum):
    """
    Why a connection exists (Bitcoin Core's ConnectionType).

      - INBOUND: the peer dialed us;
      - OUTBOUND: one of the C{max_outbound} automatic connections;
      - FEELER: a short connection that tests an address, then closes;
      - MANUAL: asked for (C{--addnode}, C{--connect}, L{Node.connect});
      - ADDR_FETCH: C{--seednode}: fetch addresses, then close.
    """

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    FEELER = "feeler"
    MANUAL = "manual"
    ADDR_FETCH = "addr-fetch"

    # Members are singletons: identity hashing is right, and C-fast (Enum's
    # own __hash__ is a Python call, and connections are counted and their
    # events published in dicts keyed by type, on every connection's path).
    __hash__ = object.__hash__


# Connections that exist for one job and close: not peers in the usual sense
# (no relay, no broadcast, no observers).
SHORT_LIVED = (ConnectionType.FEELER, ConnectionType.ADDR_FETCH)


class PeerState(enum.Enum):
    NEW = "new"
    GOT_VERSION = "got-version"
    GOT_VERACK = "got-verack"
    ESTABLISHED = "established"
    CLOSED = "closed"


_ESTABLISHED = PeerState.ESTABLISHED  # a global is read faster in the hot loop


@attrs.frozen
class PeerSettings:
    """
    Per-connection limits, shared by all the peers of one node.

    @ivar handshake_timeout_s: time allowed from connection to established.
    @ivar ping_timeout_s: time allowed for a C{pong} to arrive.
    @ivar inactivity_timeout_s: a peer silent this long is disconnected.
    """

    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    ping_timeout_s: float = PING_TIMEOUT_S
    inactivity_timeout_s: float = INACTIVITY_TIMEOUT_S


class PeerManager(Protocol):
    """
    What a L{Peer} asks of the node that owns it.
    """

    def versionFor(self, peer: Peer) -> dict:
        """
        The C{version} message to send to C{peer}.
        """

    def checkVersion(self, peer: Peer) -> Exception | None:
        """
        Judge the peer's C{version} (already stored on C{peer}): L{None} to go
        on, or the L{HandshakeFailed} that closes the connection.
        """

    def peerEstablished(self, peer: Peer) -> None:
        """
        The handshake completed.
        """

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        """
        The connection ended (at any state).
        """

    def violationFrom(self, peer: Peer, violation: ProtocolViolation) -> None:
        """
        C{peer} broke the protocol; the peer closes itself afterwards.
        """

    def getaddrReceived(self, peer: Peer) -> None:
        """
        C{peer} (established) asked for addresses.
        """

    def addrReceived(self, peer: Peer, entries: list[tuple[Address, int | None]]) -> None:
        """
        C{peer} (established) told us of addresses (decoded, at most 1000).
        """

    applicationHandlers: Mapping[str, Callable[[Peer, dict], object]]
    """
    The application's handlers by message type (a live mapping: handlers
    added later count). A message of a type the peer protocol does not
    handle goes to C{applicationHandlers[type](peer, message)}; one of a
    type with no handler is ignored.
    """

    repeated: RepeatedEvents
    """
    Where the log lines a peer could cause again and again go: the node's
    L{RepeatedEvents<bitp2p.logs.RepeatedEvents>}. Optional: without it,
    every line is written.
    """


@attrs.frozen
class PeerRoutes:
    """
    A L{PeerManager} as a record of callables: where the node routes each
    of a peer's calls (each field is a bound method of the component that
    owns that concern, so that a peer's call costs no extra hop).
    """

    versionFor: Callable[[Peer], dict]
    checkVersion: Callable[[Peer], "Exception | None"]
    peerEstablished: Callable[[Peer], None]
    peerClosed: Callable[[Peer, Exception], None]
    violationFrom: Callable[[Peer, ProtocolViolation], None]
    getaddrReceived: Callable[[Peer], None]
    addrReceived: Callable[[Peer, list], None]
    applicationHandlers: Mapping[str, Callable[[Peer, dict], object]]
    repeated: RepeatedEvents = UNSUMMARISED


def reportHandlerFailure(kind: str, peer: Peer) -> None:
    """
    The one policy for an application handler that raised (call it from
    the C{except} block): the application's bug is not the peer's fault,
    so it is logged, with its traceback, and changes nothing else. A peer
    can send the message that makes it fail again and again: the first
    failure is written, with its traceback, and the rest summarised.
    """
    getattr(peer, "repeated", UNSUMMARISED).emit(
        log,
        LogLevel.critical,
        HANDLER_FAILED,
        _host(peer),
        "Handler for {kind!r} failed on a message from {peer}",
        log_failure=Failure(),
        kind=kind,
        peer=peer,
    )


class Peer:
    """
    The protocol logic of one connection, inbound or outbound.

    @ivar wire: the framing layer this peer sends through; set by the wire.
    @ivar direction: L{Direction.INBOUND} or L{Direction.OUTBOUND}.
    @ivar state: the current L{PeerState}.
    @ivar node_id: the peer's node id, once its C{version} arrived.
    @ivar listen_port: the port the peer says it listens on (0: none).
    @ivar user_agent: the peer's user agent string.
    @ivar protocol: the peer's protocol version.
    @ivar addr_recv: our address as the peer sees it, if it said.
    @ivar info: what the wire format says of the peer beyond the
        protocol's own fields (on a Bitcoin network, a
        L{BitcoinInfo<bitp2p.bitcoin.wire.BitcoinInfo>}: services, start
        height, relay flag), or L{None}.
    @ivar connected_at: when the connection was made.
    @ivar established: whether the handshake is done and the connection
        not closed (C{state} is C{ESTABLISHED}); a plain attribute, kept
        with C{state}, as it is read per peer per relayed message.
    @ivar established_at: when the handshake completed, or L{None}.
    @ivar rtt_s: the round-trip time of the last answered ping, or L{None}.
    @ivar messages_in: messages received (decoded).
    @ivar messages_out: messages sent.
    @ivar messages_ignored: messages received of a type no one handles.
    @ivar close_reason: why the connection ended or is ending, or L{None}.
    @ivar reading: whether received messages are handled: false once the
        connection is closing, and while the wire has paused reading.
    @ivar dialed: the address this node dialed to make this connection.
    @ivar kind: the L{ConnectionType}.
    @ivar min_rtt_s: the lowest ping round trip seen, or L{None}; it
        protects the peer from eviction.
    @ivar traffic: traffic by message type, both ways, as the wire counts
        it: C{type -> [messages received, bytes received, messages sent,
        bytes sent]} (L{typeCounter}, which bounds its keys). One table of
        counters of four, not two of two: ~290 bytes less a peer.
        L{recv_per_type} and L{send_per_type} read it.
    @ivar last_send: when we last wrote to the peer (reactor seconds; 0.0:
        never). Read-only.
    @ivar last_recv: when bytes last arrived from the peer (reactor seconds;
        0.0: never). Read-only.
    @ivar bytes_in: bytes received on the connection (the wire's
        C{bytesIn}). Read-only.
    @ivar bytes_out: bytes written to the connection (the wire's
        C{bytesOut}). Read-only.
    """

    # Slots, not an instance dict: with thousands of peers the dict of ~35
    # attributes was 1.6 KB of each peer's ~3 KB (bench/peers.py).
    __slots__ = (
        "wire", "_manager", "_applicationHandlers", "_clock", "_settings", "_rng",
        "direction", "dialed", "state", "established", "node_id", "listen_port", "user_agent",
        "protocol", "addr_recv", "info", "connected_at", "established_at", "rtt_s",
        "messages_in", "messages_out", "close_reason", "reading", "_last_recv",
        "_deadlines", "_deadline", "_ping_timer", "_close_timer",
        "_ping_nonce", "_ping_sent_at", "_waiting", "messages_ignored",
        "kind", "min_rtt_s", "_drainWaiters", "traffic",
        "_last_send", "__weakref__",
    )

    def __init__(
        self,
        manager: PeerManager,
        clock: IReactorTime,
        direction: Direction,
        settings: PeerSettings = PeerSettings(),
        rng: random.Random | None = None,
        dialed: Address | None = None,
        kind: ConnectionType | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.wire: Any = None
        self._manager = manager
        self._applicationHandlers = manager.applicationHandlers
        self._clock = clock
        self._settings = settings
        self._rng = rng if rng is not None else random.Random()
        self.direction = direction
        self.dialed = dialed
        if kind is None:
            kind = (
                ConnectionType.INBOUND if direction is Direction.INBOUND else ConnectionType.OUTBOUND
            )
        self.kind = kind
        self.min_rtt_s: float | None = None
        self.state = PeerState.NEW
        self.established = False
        self.node_id: str | None = None
        self.listen_port = 0
        self.user_agent = ""
        self.protocol = 0
        self.addr_recv: Address | None = None
        self.info: Any = None
        self.connected_at = 0.0
        self.established_at: float | None = None
        self.rtt_s: float | None = None
        self.messages_in = 0
        self.messages_out = 0
        self.messages_ignored = 0
        self.close_reason: Exception | None = None
        self.reading = True
        # Kept up to date by the wire, which knows each line's bytes.
        self.traffic: dict[str, list[int]] = {}
        self._last_recv = 0.0
        self._last_send = 0.0
        # Where its deadline is kept (its own if none is shared), and the
        # token of the one set.
        self._deadlines = deadlines if deadlines is not None else Deadlines(clock)
        self._deadline: int | None = None
        self._ping_timer: IDelayedCall | None = None
        self._close_timer: IDelayedCall | None = None
        self._ping_nonce: int | None = None
        self._ping_sent_at = 0.0
        self._waiting: list[Deferred[Peer]] | None = None  # made on first use
        self._drainWaiters: list[Deferred[None]] | None = None  # made on first use

    def __repr__(self) -> str:
        who = self.node_id[:8] if self.node_id else "?"
        return f"<Peer {who} {self.remote} {self.direction.value} {self.state.value}>"

    # -- facts about the connection -------------------------------------------

    @property
    def recv_per_type(self) -> dict[str, list[int]]:
        """
        Traffic received, by message type (Bitcoin Core's
        C{bytesrecv_per_msg}): a new C{{type: [messages, bytes]}} of the
        types received, the bytes being each message's line with its
        delimiter (and C{\\r} if any). Every message decoded counts, of any
        type, handled or not (the handshake's too); lines that fail to
        decode and empty lines count nowhere. Types first seen past the
        bound of L{typeCounter} count under C{"*other*"} (L{OTHER_TYPE}).
        """
        return _direction(self.traffic, RECV_MESSAGES)

    @property
    def send_per_type(self) -> dict[str, list[int]]:
        """
        Traffic sent, by message type (C{bytessent_per_msg}), in the same
        form: every message written, however it was sent (L{send},
        L{sendMany}, with shared C{frames}: each peer counts the full line).
        """
        return _direction(self.traffic, SENT_MESSAGES)

    @property
    def remote(self) -> str:
        """
        The remote end of the connection: C{host:port} for TCP, C{unix:PATH}
        (or C{unix} when the peer's socket has no name) for a UNIX socket.
        """
        if self.wire is None or self.wire.transport is None:
            return "-"
        peer = self.wire.getPeer()
        host, port = getattr(peer, "host", None), getattr(peer, "port", None)
        if host is None:
            name = getattr(peer, "name", None)
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            if hasattr(peer, "name"):
                return f"unix:{name}" if name else "unix"
            return str(peer)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def address(self) -> Address | None:
        """
        The peer's listening address: the connection's remote host with the
        port the peer announced, or the address dialed. L{None} when the peer
        does not listen.
        """
        if self.dialed is not None:
            return self.dialed
        if self.listen_port == 0 or self.wire is None:
            return None
        host = getattr(self.wire.getPeer(), "host", None)
        try:
            return Address.of(host, self.listen_port)
        except (ValueError, AttributeError, TypeError):
            return None

    @property
    def transport(self):
        """
        The connection's Twisted transport (an C{ITransport}), or L{None}
        before the connection is made.
        """
        return self.wire.transport if self.wire is not None else None

    @property
    def remote_address(self):
        """
        The remote end as Twisted gives it (an C{IAddress}: C{IPv4Address},
        C{IPv6Address}, C{UNIXAddress}, ...), or L{None} when not connected.
        """
        if self.wire is None or self.wire.transport is None:
            return None
        return self.wire.getPeer()

    @property
    def local_address(self):
        """
        The local end as Twisted gives it (an C{IAddress}), or L{None} when
        not connected.
        """
        if self.wire is None or self.wire.transport is None:
            return None
        return self.wire.getHost()

    @property
    def ping_sent_at(self) -> float | None:
        """
        When the ping now waiting for its pong was sent (reactor seconds),
        or L{None} when no ping is in flight.
        """
        return self._ping_sent_at if self._ping_nonce is not None else None

    @property
    def clock(self) -> IReactorTime:
        """
        The clock this peer's timers run on.
        """
        return self._clock

    @property
    def last_recv(self) -> float:
        """
        When bytes last arrived from the peer (reactor seconds), 0.0 if none
        ever did.
        """
        return self._last_recv

    @property
    def last_send(self) -> float:
        """
        When we last wrote to the peer (reactor seconds), 0.0 if never.
        """
        return self._last_send

    @property
    def bytes_in(self) -> int:
        """
        Bytes received on this connection.
        """
        return self.wire.bytesIn if self.wire is not None else 0

    @property
    def bytes_out(self) -> int:
        """
        Bytes written to this connection.
        """
        return self.wire.bytesOut if self.wire is not None else 0

    def whenEstablished(self) -> Deferred[Peer]:
        """
        A Deferred that fires with this peer once the handshake is done, or
        fails with a L{HandshakeFailed} if the connection ends before.
        """
        if self.state is PeerState.ESTABLISHED:
            return succeed(self)
        if self.state is PeerState.CLOSED:
            return fail(self.close_reason or HandshakeFailed("connection closed"))
        d: Deferred[Peer] = Deferred()
        if self._waiting is None:
            self._waiting = []
        self._waiting.append(d)
        return d

    # -- sending --------------------------------------------------------------

    def send(self, message: dict, frames: dict | None = None) -> None:
        """
        Send one message to the peer (nothing once the connection is closing).

        @param frames: for a message sent to many peers, one dict shared by
            all those sends, so that it is encoded only once (see the wire's
            C{sendMessage}).
        """
        if self.close_reason is not None or self.wire is None:
            return
        self.messages_out += 1
        self.wire.sendMessage(message, frames)

    @property
    def sendPaused(self) -> bool:
        """
        Whether the peer's send buffer is full: it reads slower than we
        write. Writing on is allowed, but a peer for which
        C{max_send_buffer_bytes} more are written meanwhile is dropped; a
        program sending much should wait for L{whenDrained}.
        """
        return self.wire is not None and self.wire.sendPaused

    def whenDrained(self) -> Deferred[None]:
        """
        A Deferred that fires once the send buffer is not full (at once if
        it is not), or fails with the reason the connection closed.
        """
        if self.close_reason is not None:
            return fail(self.close_reason)
        if not self.sendPaused:
            return succeed(None)
        if self._drainWaiters is None:
            self._drainWaiters = []
        d: Deferred[None] = Deferred()
        self._drainWaiters.append(d)
        return d

    def sendDrained(self) -> None:
        """
        The wire's send buffer drained (the wire calls this).
        """
        if self._drainWaiters and not self.sendPaused:
            waiters, self._drainWaiters = self._drainWaiters, None
            for d in waiters:
                d.callback(None)

    def sendMany(self, messages: list[dict]) -> None:
        """
        Send several messages in one write.
        """
        if self.close_reason is not None or self.wire is None or not messages:
            return
        self.messages_out += len(messages)
        self.wire.sendMessages(messages)

    def ping(self) -> None:
        """
        Ping the peer unless a ping is already waiting for its pong; the
        connection ends if the pong is later than the ping timeout.
        """
        if self.state is not PeerState.ESTABLISHED or self._ping_nonce is not None:
            return
        self._ping_nonce = self._rng.getrandbits(64)
        self._ping_sent_at = self._clock.seconds()
        self._ping_timer = self._clock.callLater(
            self._settings.ping_timeout_s, self._pingTimedOut
        )
        self.send(codec.ping(self._ping_nonce))

    def close(self, reason: Exception) -> None:
        """
        Close the connection, flushing what was written; drop it if that takes
        longer than a few seconds.
        """
        if self.close_reason is None:
            self.close_reason = reason
        self.reading = False
        if self.wire is None or self.state is PeerState.CLOSED:
            return
        if self._close_timer is None:
            self._close_timer = self._clock.callLater(CLOSE_GRACE_S, self._abort)
            self.wire.close()

    def drop(self, reason: Exception) -> None:
        """
        Close the connection at once, without flushing: an eviction, as
        Bitcoin Core disconnects an evicted node (its socket is gone on the
        next turn of the reactor, whatever it has not read).
        """
        self.close(reason)
        if self.wire is not None and self.state is not PeerState.CLOSED:
            self.wire.abort()

    def sendBufferFull(self, written: int) -> None:
        """
        The peer has not read what we sent while C{written} more bytes were
        queued for it: drop it at once (flushing to it would never end).
        """
        log.emit(
            self._churn,
            "Dropping {peer}: not reading ({written} bytes queued)",
            peer=self,
            written=written,
        )
        self.close(PeerLost(f"not reading: send buffer over {written} bytes"))
        self.wire.abort()

    def _abort(self) -> None:
        self._close_timer = None
        self.wire.abort()

    # -- from the wire --------------------------------------------------------

    def connectionMade(self) -> None:
        settings = self._settings
        self.connected_at = now = self._clock.seconds()
        # One deadline for both: the handshake's, and the first inactivity
        # check, when the connection is inactivity_timeout_s old; whichever
        # comes first (see deadlineReached).
        self._deadline = self._deadlines.set(
            self, now + min(settings.handshake_timeout_s, settings.inactivity_timeout_s)
        )
        if self.direction is Direction.OUTBOUND:
            self.send(self._manager.versionFor(self))

    def dataArrived(self) -> None:
        """
        Bytes arrived (once per chunk, however many messages it holds): the
        peer is not idle.
        """
        self._last_recv = self._clock.seconds()

    def dataWritten(self) -> None:
        """
        The wire wrote to the peer (once per write, however many messages
        it holds).
        """
        self._last_send = self._clock.seconds()

    def messagesReceived(self, messages: list[dict], kind: str | None = None) -> list[dict]:
        """
        Handle decoded messages in order (all those of one received chunk),
        stopping as soon as L{reading} turns false: the connection is
        closing, or the wire paused reading.

        @param kind: when the wire knows that every message is of one type,
            that type: a run of an application's messages on an
            established connection then goes to its handler's C{many} (see
            L{MessageRegistry<bitp2p.messages.MessageRegistry>}) in one
            call.
        @return: the messages not handled (empty when all were).
        """
        applicationHandlers = self._applicationHandlers
        self.messages_in += len(messages)
        if kind is not None and self.state is _ESTABLISHED:
            many = getattr(applicationHandlers.get(kind), "many", None)
            if many is not None:
                rest = many(self, messages)
                if not rest or not self.reading:
                    self.messages_in -= len(rest)
                    return rest
                messages = rest  # its handler changed: the loop takes the rest
        handlers = _HANDLERS
        pending = iter(messages)
        for message in pending:
            if not self.reading:
                rest = [message, *pending]
                self.messages_in -= len(rest)
                return rest
            kind = message["type"]
            # Application types first: they are the many. None of them is
            # one of the protocol's own (registerMessage refuses those).
            handler = applicationHandlers.get(kind)
            if handler is not None and self.state is _ESTABLISHED:
                try:
                    handler(self, message)
                except Exception:
                    reportHandlerFailure(kind, self)
                continue
            handler = handlers.get(kind)
            if handler is not None:
                handler(self, message)
            else:
                # An unknown type is never a violation (forward compatibility:
                # a newer peer may announce features before its verack), but
                # nothing is handed to the application before the handshake.
                self._ignored(kind)
        return []

    def _ignored(self, kind: str) -> None:
        """
        A message of a type no one handles was ignored. Only the first of a
        connection is logged: twistd writes debug events to its log too,
        and a peer must not be able to fill it.
        """
        self.messages_ignored += 1
        if self.messages_ignored == 1:
            log.debug(
                "Ignoring {kind!r} from {peer}{when} (further ones are not logged)",
                kind=kind,
                peer=self,
                when="" if self.state is _ESTABLISHED else " before the handshake",
            )

    def pauseReading(self) -> None:
        """
        Handle no more messages until L{resumeReading}.
        """
        self.reading = False

    def resumeReading(self) -> None:
        """
        Handle messages again, unless the connection is closing.
        """
        self.reading = self.close_reason is None

    def violation(self, violation: ProtocolViolation) -> None:
        if self.close_reason is not None:
            return
        self._report(VIOLATIONS, "Protocol violation by {peer}: {violation}", violation=violation)
        self._manager.violationFrom(self, violation)
        self.close(violation)

    def connectionLost(self, reason: Failure) -> None:
        previous = self.state
        self.state = PeerState.CLOSED
        self.established = False
        for timer in (self._ping_timer, self._close_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._ping_timer = self._close_timer = None
        if self._deadline is not None:
            self._deadlines.cancel(self._deadline)
            self._deadline = None
        self.reading = False
        if self.close_reason is None:
            self.close_reason = HandshakeFailed(
                f"connection closed by peer: {reason.getErrorMessage()}"
            ) if previous is not PeerState.ESTABLISHED else PeerLost(
                reason.getErrorMessage()
            )
        waiting, self._waiting = self._waiting or (), None
        failure = self.close_reason
        if not isinstance(failure, HandshakeFailed):
            failure = HandshakeFailed(str(failure))
        for d in waiting:
            d.errback(failure)
        drains, self._drainWaiters = self._drainWaiters or (), None
        for d in drains:
            d.errback(self.close_reason)
        self._manager.peerClosed(self, self.close_reason)

    # -- message handlers -----------------------------------------------------

    def msg_version(self, message: dict) -> None:
        if self.state in (PeerState.GOT_VERSION, PeerState.ESTABLISHED):
            self.violation(ProtocolViolation("second version on one connection"))
            return
        self.node_id = message["node_id"]
        self.listen_port = message["port"]
        self.user_agent = message["user_agent"]
        self.protocol = message["protocol"]
        self.addr_recv = message["addr_recv"]
        self.info = message.get("info")
        refusal = self._manager.checkVersion(self)
        if refusal is not None:
            where = dict(node_id=self.node_id, address=self.address or self.remote)
            if isinstance(refusal, DuplicateConnection):
                # Two nodes that dial each other at once: a normal race,
                # settled by keeping one of the two connections.
                log.debug(
                    "Closing a second connection to {node_id} at {address}",
                    peer=self, reason=refusal, **where,
                )
            else:
                self._report(
                    REFUSED_VERSIONS,
                    "Closing the connection to {node_id} at {address}: {reason}",
                    reason=refusal,
                    **where,
                )
            self.close(refusal)
            return
        if self.direction is Direction.INBOUND:
            self.sendMany([self._manager.versionFor(self), codec.verack()])
        else:
            self.send(codec.verack())
        self._enter(
            PeerState.ESTABLISHED
            if self.state is PeerState.GOT_VERACK
            else PeerState.GOT_VERSION
        )

    def msg_verack(self, message: dict) -> None:
        if self.state is PeerState.NEW:
            self._enter(PeerState.GOT_VERACK)
        elif self.state is PeerState.GOT_VERSION:
            self._enter(PeerState.ESTABLISHED)
        elif self.state is PeerState.GOT_VERACK:
            self.violation(ProtocolViolation("second verack before version"))
        # A verack after the handshake is harmless and ignored.

    def msg_getaddr(self, message: dict) -> None:
        if self._requireEstablished("getaddr"):
            self._manager.getaddrReceived(self)

    def msg_addr(self, message: dict) -> None:
        if self._requireEstablished("addr"):
            self._manager.addrReceived(self, message["peers"])

    def msg_ping(self, message: dict) -> None:
        if self.state is not _ESTABLISHED:
            self._requireEstablished("ping")
            return
        if self.close_reason is None and self.wire is not None:
            # send() inlined: a ping is answered at once, on every peer.
            self.messages_out += 1
            self.wire.sendMessage(codec.pong(message["nonce"]))

    def msg_pong(self, message: dict) -> None:
        if not self._requireEstablished("pong"):
            return
        if message["nonce"] != self._ping_nonce:
            return  # Unsolicited or stale: ignored, as Bitcoin Core does.
        self.rtt_s = rtt = self._clock.seconds() - self._ping_sent_at
        if self.min_rtt_s is None or rtt < self.min_rtt_s:
            self.min_rtt_s = rtt
        self._ping_nonce = None
        if self._ping_timer is not None and self._ping_timer.active():
            self._ping_timer.cancel()
        self._ping_timer = None

    # -- internals --------------------------------------------------------------

    @property
    def repeated(self) -> RepeatedEvents:
        """
        Where this peer's repeatable log lines go (its manager's
        L{RepeatedEvents<bitp2p.logs.RepeatedEvents>}, if it has one).
        """
        return getattr(self._manager, "repeated", UNSUMMARISED)

    @property
    def _churn(self) -> LogLevel:
        """
        The level of a line about this connection's end that the peer
        caused: debug for an inbound one (anyone can connect and do it
        again), info for one this node made.
        """
        return LogLevel.debug if self.kind is ConnectionType.INBOUND else LogLevel.info

    def _report(self, kind: str, format: str, **fields) -> None:
        """
        Log a line the peer caused: summarised (as C{kind}) for an inbound
        peer, written at info for one this node made.
        """
        if self.kind is ConnectionType.INBOUND:
            self.repeated.emit(log, LogLevel.info, kind, _host(self), format, peer=self, **fields)
        else:
            log.info(format, peer=self, **fields)

    def _requireEstablished(self, kind: str) -> bool:
        if self.state is PeerState.ESTABLISHED:
            return True
        self.violation(ProtocolViolation(f"{kind!r} before the handshake"))
        return False

    def _enter(self, state: PeerState) -> None:
        self.state = state
        self.established = state is PeerState.ESTABLISHED
        if state is not PeerState.ESTABLISHED:
            return
        self.established_at = self._clock.seconds()
        self._manager.peerEstablished(self)
        waiting, self._waiting = self._waiting or (), None
        for d in waiting:
            d.callback(self)

    def deadlineReached(self, now: float) -> None:
        """
        The deadline set for this connection came (its L{Deadlines} calls
        this, with the time it was set for, or later): the handshake's, if
        it is not done yet and due, and the inactivity check, once the
        connection is C{inactivity_timeout_s} old: it ends the connection
        if nothing arrived for that long, and else sets the next deadline
        for when that would be so.
        """
        self._deadline = None
        settings = self._settings
        established = self.state is _ESTABLISHED
        handshakeDue = self.connected_at + settings.handshake_timeout_s
        if not established and now >= handshakeDue:
            log.emit(self._churn, "Handshake with {peer} timed out", peer=self)
            self.close(
                HandshakeTimeout(f"no handshake within {settings.handshake_timeout_s:g} s")
            )
            return
        timeout = settings.inactivity_timeout_s
        firstCheck = self.connected_at + timeout
        if now >= firstCheck:
            # (_last_recv is 0.0 if nothing arrived yet.)
            idleUntil = self._last_recv + timeout
            if now >= idleUntil:
                log.emit(self._churn, "{peer} silent for {timeout} s", peer=self, timeout=timeout)
                self.close(PeerLost(f"nothing received for {timeout:g} s"))
                return
            nextCheck = idleUntil
        else:
            nextCheck = firstCheck
        if not established:
            nextCheck = min(nextCheck, handshakeDue)
        if self.state is not PeerState.CLOSED:
            self._deadline = self._deadlines.set(self, nextCheck)

    def _pingTimedOut(self) -> None:
        self._ping_timer = None
        log.emit(self._churn, "Ping to {peer} timed out", peer=self)
        self.close(PeerLost(f"no pong within {self._settings.ping_timeout_s:g} s"))


def _handlers() -> dict:
    """
    The C{msg_<type>} methods of L{Peer}, by message type, looked up once.
    """
    prefix = "msg_"
    return {
        name[len(prefix) :]: getattr(Peer, name)
        for name in dir(Peer)
        if name.startswith(prefix)
    }


_HANDLERS = _handlers()


__all__ = [
    "Direction",
    "MAX_COUNTED_TYPES",
    "OTHER_TYPE",
    "Peer",
    "PeerManager",
    "PeerRoutes",
    "PeerSettings",
    "PeerState",
    "RECV_BYTES",
    "RECV_MESSAGES",
    "SENT_BYTES",
    "SENT_MESSAGES",
    "SHORT_LIVED",
    "reportHandlerFailure",
    "refill",
    "typeCounter",
]
