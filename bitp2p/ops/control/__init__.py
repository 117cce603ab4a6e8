"""
The node's control API: JSON-RPC over HTTP, as bitcoind's, on twisted.web,
guarded by HTTP Basic credentials (the cookie in the data directory, or a
configured password).

The methods, Bitcoin Core's network calls (C{help} lists them):
C{getpeerinfo}, C{getnetworkinfo}, C{getconnectioncount},
C{getnodeaddresses}, C{addnode}, C{getaddednodeinfo}, C{disconnectnode},
C{setban}, C{listbanned}, C{clearbanned}, C{ping}, C{uptime}, C{help}.

The code is in one module per concern, each with its details:
L{rpc<bitp2p.ops.control.rpc>} (the request and answer format, the endpoint
and its methods), L{auth<bitp2p.ops.control.auth>} (credentials, the cookie,
the guard, the delay for a host that keeps failing),
L{methods<bitp2p.ops.control.methods>} (the method table, parameter
binding, errors), L{site<bitp2p.ops.control.site>} (the HTTP site and its
limits: the request deadline, the connections per address and in all, and
how an authenticated operator keeps getting in) and L{service<bitp2p.ops.control.service>} (listening, and the
cookie and port files written at start and removed at stop). This package
owns nothing itself: it re-exports their public names.
"""

from bitp2p.ops.control.auth import (
    AUTH_FAILURE_DELAY_S,
    AUTH_FAILURE_WINDOW_S,
    AUTH_FAILURES_ALLOWED,
    AUTH_TRACKED_HOSTS,
    COOKIE_USER,
    DEFAULT_USER,
    REALM,
    Authenticator,
    Guarded,
)
from bitp2p.ops.control.methods import (
    METHODS,
    RPC_CLIENT_INVALID_IP_OR_SUBNET,
    RPC_CLIENT_NODE_ALREADY_ADDED,
    RPC_CLIENT_NODE_NOT_ADDED,
    RPC_CLIENT_NODE_NOT_CONNECTED,
    RPC_INVALID_PARAMETER,
    RPC_INVALID_PARAMS,
    RPC_INVALID_REQUEST,
    RPC_METHOD_NOT_FOUND,
    RPC_MISC_ERROR,
    RPC_PARSE_ERROR,
    RPCError,
)
from bitp2p.ops.control.rpc import ControlAPI
from bitp2p.ops.control.service import ControlService
from bitp2p.ops.control.site import (
    HTTP_IDLE_TIMEOUT_S,
    HTTP_REQUEST_DEADLINE_S,
    MAX_BODY_BYTES,
    MAX_HTTP_CONNECTIONS,
    MAX_HTTP_CONNECTIONS_PER_HOST,
)

__all__ = [
    "AUTH_FAILURES_ALLOWED",
    "AUTH_FAILURE_DELAY_S",
    "AUTH_FAILURE_WINDOW_S",
    "AUTH_TRACKED_HOSTS",
    "COOKIE_USER",
    "DEFAULT_USER",
    "HTTP_IDLE_TIMEOUT_S",
    "HTTP_REQUEST_DEADLINE_S",
    "MAX_BODY_BYTES",
    "MAX_HTTP_CONNECTIONS",
    "MAX_HTTP_CONNECTIONS_PER_HOST",
    "METHODS",
    "REALM",
    "RPC_CLIENT_INVALID_IP_OR_SUBNET",
    "RPC_CLIENT_NODE_ALREADY_ADDED",
    "RPC_CLIENT_NODE_NOT_ADDED",
    "RPC_CLIENT_NODE_NOT_CONNECTED",
    "RPC_INVALID_PARAMETER",
    "RPC_INVALID_PARAMS",
    "RPC_INVALID_REQUEST",
    "RPC_METHOD_NOT_FOUND",
    "RPC_MISC_ERROR",
    "RPC_PARSE_ERROR",
    "Authenticator",
    "ControlAPI",
    "ControlService",
    "Guarded",
    "RPCError",
]
