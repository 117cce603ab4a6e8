"""
Named errors of bitp2p: why a connection could not be made or did not last.

Every one of them has a one-line C{str()} fit for a log line or the console.

It owns the exception types; it knows nothing of where they are raised.
"""

from __future__ import annotations

from bitp2p.codec import ProtocolViolation

__all__ = [
    "ConnectFailed",
    "DuplicateConnection",
    "HandshakeFailed",
    "HandshakeTimeout",
    "LimitReached",
    "NotRunning",
    "PeerLost",
    "ProtocolViolation",
    "SelfConnection",
    "failureReason",
]


class ConnectFailed(Exception):
    """
    A connection to a peer could not be made or did not complete its handshake.

    @ivar reason: why, without naming the peer: for a line that names it
        already ("Could not connect to 10.0.0.1:8333: connection refused"),
        where C{str()} would name it twice. The whole message by default.
    """

    def __init__(self, message: str = "", reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason


def failureReason(failure) -> str:
    """
    Why a dial failed (a L{Failure <twisted.python.failure.Failure>}),
    without naming the peer when the error says so apart
    (L{ConnectFailed.reason}).
    """
    error = failure.value
    reason = error.reason if isinstance(error, ConnectFailed) else None
    return reason if isinstance(reason, str) and reason else failure.getErrorMessage()


class NotRunning(ConnectFailed):
    """
    The node is not running (not started yet, or stopped).
    """


class LimitReached(ConnectFailed):
    """
    The connection limit leaves no room for this connection.
    """


class HandshakeFailed(ConnectFailed):
    """
    The connection was made but closed before the handshake completed.
    """


class HandshakeTimeout(HandshakeFailed):
    """
    The peer did not complete the handshake within the handshake timeout.
    """


class SelfConnection(HandshakeFailed):
    """
    The address dialed is this node itself (the peer's version carried our
    own node id).
    """


class DuplicateConnection(HandshakeFailed):
    """
    The peer is already connected to this node over another connection.
    """


class PeerLost(Exception):
    """
    An established connection ended: closed by the peer, or by this node
    (ping or inactivity timeout, shutdown, an explicit disconnect).
    """
