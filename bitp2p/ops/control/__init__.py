"""
The node's control API: JSON-RPC over HTTP, as bitcoind's, on twisted.web.

A client POSTs a JSON-RPC 1.0 request to C{/}::

    {"jsonrpc": "1.0", "id": 1, "method": "getpeerinfo", "params": []}

and gets C{{"result": ..., "error": null, "id": 1}} (HTTP 200), or an error
as bitcoind gives it: C{{"result": null, "error": {"code": -32601,
"message": "Method not found"}, "id": 1}}, with HTTP 404 for an unknown
method, 400 for a request that is not JSON (-32700) or not a request
(-32600), 413 for a body over L{MAX_BODY_BYTES}, and 500 for every other
error. A JSON list of requests is a batch: one HTTP 200 answer, a list of
replies in the same order. C{params} may be a list (positional) or an object
(by name). C{GET /} describes the API.

Every request needs HTTP Basic credentials (L{Authenticator}): the cookie
the node writes to C{DATADIR/.cookie} (C{__cookie__:<64 hex>}, mode 0600,
removed at stop), or C{USER:PASSWORD} when a password is configured.
Without them the answer is a bare 401, the same for every path and method,
so that an unauthenticated client learns nothing; a host that keeps
failing (more than L{AUTH_FAILURES_ALLOWED} times in
L{AUTH_FAILURE_WINDOW_S}) gets its 401s L{AUTH_FAILURE_DELAY_S} late. The
check sits in a wrapper resource (L{Guarded}) at the root of the tree, so
the resources added beside the API later (C{/metrics}, ...) are guarded
too.

The methods, Bitcoin Core's network calls (C{help} lists them):
C{getpeerinfo}, C{getnetworkinfo}, C{getconnectioncount},
C{getnodeaddresses}, C{addnode}, C{getaddednodeinfo}, C{disconnectnode},
C{setban}, C{listbanned}, C{clearbanned}, C{ping}, C{uptime}, C{help}.

L{ControlService} listens on a server endpoint string
(C{tcp:5332:interface=127.0.0.1}), writes the cookie (and C{.rpcport}, the
port, for C{bitp2p-cli}) in the node's data directory, and undoes all of it
at stop. Everything runs in the reactor thread: no thread, no sleep.

The code is in one module per concern: L{auth<bitp2p.ops.control.auth>}
(credentials, the cookie, the guard), L{methods<bitp2p.ops.control.methods>}
(the method table, parameter binding, errors),
L{rpc<bitp2p.ops.control.rpc>} (the endpoint and its methods),
L{site<bitp2p.ops.control.site>} (the HTTP site and its limits) and
L{service<bitp2p.ops.control.service>} (listening and the files). This
package re-exports their public names.
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
from bitp2p.ops.control.site import HTTP_IDLE_TIMEOUT_S, MAX_BODY_BYTES, MAX_HTTP_CONNECTIONS

__all__ = [
    "AUTH_FAILURES_ALLOWED",
    "AUTH_FAILURE_DELAY_S",
    "AUTH_FAILURE_WINDOW_S",
    "AUTH_TRACKED_HOSTS",
    "COOKIE_USER",
    "DEFAULT_USER",
    "HTTP_IDLE_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "MAX_HTTP_CONNECTIONS",
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
