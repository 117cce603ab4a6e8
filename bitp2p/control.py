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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import ipaddress
import json
import math
import os
import secrets
import weakref
from pathlib import Path
from typing import Any, Callable, Mapping

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.web import pages, server
from twisted.web.resource import Resource

from bitp2p._version import __version__
from bitp2p.address import Address, AddressError, split_host_port
from bitp2p.banman import BanMan
from bitp2p.constants import COOKIE_FILE, DEFAULT_BAN_S, PROTOCOL_VERSION, RPC_PORT_FILE
from bitp2p.endpoints import listenNow, parse_target, serverEndpoint
from bitp2p.peer import Peer
from bitp2p.storage import atomic_write
from bitp2p.views import hostPort, nodeView, peerView

__all__ = [
    "Authenticator",
    "ControlAPI",
    "ControlService",
    "Guarded",
    "RPCError",
]

log = Logger()

# Bitcoin Core's error codes (src/rpc/protocol.h).
RPC_MISC_ERROR = -1
RPC_INVALID_PARAMETER = -8
RPC_CLIENT_NODE_ALREADY_ADDED = -23
RPC_CLIENT_NODE_NOT_ADDED = -24
RPC_CLIENT_NODE_NOT_CONNECTED = -29
RPC_CLIENT_INVALID_IP_OR_SUBNET = -30
RPC_INVALID_REQUEST = -32600
RPC_METHOD_NOT_FOUND = -32601
RPC_INVALID_PARAMS = -32602
RPC_PARSE_ERROR = -32700

# The longest request body taken; a longer one is read and dropped, and
# answered 413.
MAX_BODY_BYTES = 1024 * 1024
# HTTP connections open at once at most (each may hold a body of
# MAX_BODY_BYTES); more are closed as they arrive.
MAX_HTTP_CONNECTIONS = 64
# An idle HTTP connection is closed after this long.
HTTP_IDLE_TIMEOUT_S = 60
# The user name that goes with the cookie, and the default user for a password.
COOKIE_USER = "__cookie__"
DEFAULT_USER = "bitp2p"
REALM = "bitp2p"
# Failed authentications from one host: past AUTH_FAILURES_ALLOWED in
# AUTH_FAILURE_WINDOW_S, each 401 is sent AUTH_FAILURE_DELAY_S late.
# At most AUTH_TRACKED_HOSTS hosts are remembered (the oldest forgotten).
AUTH_FAILURES_ALLOWED = 10
AUTH_FAILURE_WINDOW_S = 60.0
AUTH_FAILURE_DELAY_S = 2.0
AUTH_TRACKED_HOSTS = 4096

_CHALLENGE = f'Basic realm="{REALM}"'.encode("ascii")
_JSON = b"application/json"


class RPCError(Exception):
    """
    A JSON-RPC error: C{code} (Bitcoin Core's numbers) and a one-line
    C{message}.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- authentication ---------------------------------------------------------------


def _digest(credentials: bytes) -> bytes:
    return hashlib.sha256(credentials).digest()


class Authenticator:
    """
    Who may use the control API: HTTP Basic credentials, compared in
    constant time (as hashes, so that not even their length shows).

    Accepted: C{__cookie__:<cookie>} once L{writeCookie} made a cookie, and
    C{<user>:<password>} when a password is given.

    @ivar cookie: the cookie's secret (64 hex digits), or L{None}.
    @ivar cookiePath: the cookie file written, or L{None}.
    """

    def __init__(
        self, password: str | None = None, user: str = DEFAULT_USER, reactor=None
    ) -> None:
        """
        @raise ValueError: for an empty password, or a user name that is
            empty, holds a colon, or is the cookie's.
        """
        if reactor is None:
            from twisted.internet import reactor
        if password is not None and not password:
            raise ValueError("the control API password must not be empty")
        if not user or ":" in user or user == COOKIE_USER:
            raise ValueError(f"bad control API user name {user!r}")
        self._reactor = reactor
        self._passwordDigest = (
            _digest(f"{user}:{password}".encode()) if password is not None else None
        )
        self._cookieDigest: bytes | None = None
        self.cookie: str | None = None
        self.cookiePath: Path | None = None
        # host -> (start of its window, failures in it), oldest host first
        self._failures: dict[str, tuple[float, int]] = {}
        self._delayed: set[IDelayedCall] = set()

    # -- the cookie --

    def writeCookie(self, datadir: str | os.PathLike) -> Path:
        """
        Make a new cookie and write it to C{datadir/.cookie} atomically,
        readable by this user only (mode 0600). It replaces any earlier
        cookie of this authenticator.

        @return: the file's path.
        @raise OSError: if it cannot be written.
        """
        secret = secrets.token_hex(32)
        path = Path(datadir) / COOKIE_FILE
        atomic_write(path, f"{COOKIE_USER}:{secret}".encode("ascii"), mode=0o600)
        self.cookie, self.cookiePath = secret, path
        self._cookieDigest = _digest(f"{COOKIE_USER}:{secret}".encode("ascii"))
        return path

    def removeCookie(self) -> None:
        """
        Forget the cookie and delete its file (unless another process
        replaced it meanwhile).
        """
        path, secret = self.cookiePath, self.cookie
        self.cookie = self.cookiePath = self._cookieDigest = None
        if path is None:
            return
        try:
            if path.read_bytes() == f"{COOKIE_USER}:{secret}".encode("ascii"):
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warn("Cannot remove {path}: {error}", path=str(path), error=e)

    # -- checking --

    def check(self, authorization: bytes | None) -> bool:
        """
        Whether an C{Authorization} header value carries accepted credentials.
        """
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            given = _digest(base64.b64decode(token.strip(), validate=True))
        except (binascii.Error, ValueError):
            return False
        accepted = False
        for expected in (self._passwordDigest, self._cookieDigest):
            if expected is not None:
                accepted |= hmac.compare_digest(given, expected)
        return accepted

    def admit(self, request) -> bool:
        """
        Whether C{request} may go on. If not, answer it with L{deny}.
        """
        return self.check(request.getHeader(b"authorization"))

    def deny(self, request) -> bytes | int:
        """
        Answer an unauthenticated request: 401, a C{WWW-Authenticate}
        challenge, no body; late for a host that keeps failing.

        @return: what the resource's C{render} returns.
        """
        request.setResponseCode(401)
        request.setHeader(b"www-authenticate", _CHALLENGE)
        request.setHeader(b"content-length", b"0")
        if request.getHeader(b"authorization") is None:
            return b""  # a client's first try, before it sends credentials
        delay = self._failed(_clientHost(request))
        if not delay:
            return b""
        call = self._reactor.callLater(delay, self._finish, request)
        self._delayed.add(call)

        def gone(_):
            self._delayed.discard(call)
            if call.active():
                call.cancel()

        request.notifyFinish().addBoth(gone)
        return server.NOT_DONE_YET

    def stop(self) -> None:
        """
        Drop the 401s still waiting to be sent (at shutdown).
        """
        delayed, self._delayed = self._delayed, set()
        for call in delayed:
            if call.active():
                call.cancel()

    def _finish(self, request) -> None:
        request.finish()

    def _failed(self, host: str) -> float:
        """
        Count a failed authentication from C{host}.

        @return: how long to wait before answering it.
        """
        now = self._reactor.seconds()
        start, count = self._failures.pop(host, (now, 0))
        if now - start >= AUTH_FAILURE_WINDOW_S:
            start, count = now, 0
        count += 1
        self._failures[host] = (start, count)
        if len(self._failures) > AUTH_TRACKED_HOSTS:
            del self._failures[next(iter(self._failures))]
        if count == 1:
            log.info("Control API: wrong credentials from {host}", host=host)
        elif count == AUTH_FAILURES_ALLOWED + 1:
            log.warn(
                "Control API: {count} wrong credentials from {host} within {window:g} s; "
                "answering it {delay:g} s late",
                count=count,
                host=host,
                window=AUTH_FAILURE_WINDOW_S,
                delay=AUTH_FAILURE_DELAY_S,
            )
        return AUTH_FAILURE_DELAY_S if count > AUTH_FAILURES_ALLOWED else 0.0


def _clientHost(request) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else "local"


class _Denied(Resource):
    """
    What an unauthenticated request gets, whatever it asked for.
    """

    isLeaf = True

    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self._authenticator = authenticator

    def render(self, request):
        return self._authenticator.deny(request)


class Guarded(Resource):
    """
    A resource tree behind authentication: every path under it, and the
    tree's root itself, answers 401 (L{Authenticator.deny}) unless the
    request carries accepted credentials.

    @ivar wrapped: the tree guarded; L{putChild} adds to it.
    """

    def __init__(self, wrapped: Resource, authenticator: Authenticator) -> None:
        super().__init__()
        self.wrapped = wrapped
        self._authenticator = authenticator

    def getChildWithDefault(self, path: bytes, request):
        if not self._authenticator.admit(request):
            return _Denied(self._authenticator)
        # Traversal goes on from the wrapped root, with this segment again
        # (as twisted.web.guard does).
        request.postpath.insert(0, request.prepath.pop())
        return self.wrapped

    def putChild(self, path: bytes, child) -> None:
        self.wrapped.putChild(path, child)

    def render(self, request):
        if not self._authenticator.admit(request):
            return self._authenticator.deny(request)
        return self.wrapped.render(request)


# -- the JSON-RPC methods -----------------------------------------------------------


def _isInt(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _isNumber(value: object) -> bool:
    return (_isInt(value) or isinstance(value, float)) and math.isfinite(value)


_KINDS: dict[str, Callable[[object], bool]] = {
    "a string": lambda v: isinstance(v, str),
    "an integer": _isInt,
    "a number": _isNumber,
    "a boolean": lambda v: isinstance(v, bool),
    "a string or an integer": lambda v: isinstance(v, str) or _isInt(v),
}


@attrs.frozen
class _Param:
    name: str
    kind: str
    required: bool = False
    default: Any = None


@attrs.frozen
class _Method:
    """
    One JSON-RPC method: its parameters, a synopsis and a one-line summary.
    """

    name: str
    params: tuple[_Param, ...]
    synopsis: str
    summary: str

    def bind(self, params: object) -> list:
        """
        The arguments to call the method with, defaults filled in.

        @raise RPCError: C{-32602} with a one-line message, for a wrong
            number of parameters or a parameter of the wrong type.
        """
        usage = f"(usage: {self.name} {self.synopsis})".replace(" )", ")")
        if params is None:
            values: list = []
        elif isinstance(params, dict):
            names = [p.name for p in self.params]
            unknown = sorted(str(k) for k in params if k not in names)
            if unknown:
                raise RPCError(
                    RPC_INVALID_PARAMS, f"{self.name}: unknown parameter {unknown[0]!r} {usage}"
                )
            values = [params.get(name) for name in names]
        else:
            values = list(params)
            if len(values) > len(self.params):
                raise RPCError(
                    RPC_INVALID_PARAMS,
                    f"{self.name} takes at most {len(self.params)} parameters, "
                    f"got {len(values)} {usage}",
                )
        values += [None] * (len(self.params) - len(values))
        bound = []
        for param, value in zip(self.params, values):
            if value is None:
                if param.required:
                    raise RPCError(
                        RPC_INVALID_PARAMS, f"{self.name}: missing parameter {param.name!r} {usage}"
                    )
                bound.append(param.default)
            elif not _KINDS[param.kind](value):
                raise RPCError(
                    RPC_INVALID_PARAMS,
                    f"{self.name}: {param.name} must be {param.kind}, not {_show(value)}",
                )
            else:
                bound.append(value)
        return bound


def _show(value: object) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _method(name: str, synopsis: str, summary: str, *params: _Param) -> _Method:
    return _Method(name, params, synopsis, summary)


METHODS: dict[str, _Method] = {
    m.name: m
    for m in (
        _method(
            "addnode",
            '"node" "add|remove|onetry"',
            "keep a peer (HOST:PORT or an endpoint) connected, stop keeping it, or dial it once",
            _Param("node", "a string", True),
            _Param("command", "a string", True),
        ),
        _method("clearbanned", "", "lift every ban"),
        _method(
            "disconnectnode",
            '( "address" nodeid )',
            "close a connection: by address (HOST:PORT), or by the id of getpeerinfo or a node id",
            _Param("address", "a string or an integer", default=""),
            _Param("nodeid", "a string or an integer"),
        ),
        _method(
            "getaddednodeinfo",
            '( "node" )',
            "the peers kept connected (addnode, --addnode, --connect) and whether they are",
            _Param("node", "a string"),
        ),
        _method("getconnectioncount", "", "the number of established peers"),
        _method("getnetworkinfo", "", "this node: version, node id, address, connection counts"),
        _method(
            "getnodeaddresses",
            '( count "network" )',
            "known addresses at random: count of them (default 1, 0 for all), of ipv4 or ipv6",
            _Param("count", "an integer", default=1),
            _Param("network", "a string"),
        ),
        _method("getpeerinfo", "", "every established peer, one object each"),
        _method(
            "help",
            '( "command" )',
            "this list, or one method's usage",
            _Param("command", "a string"),
        ),
        _method("listbanned", "", "the bans in force"),
        _method("ping", "", "ping every peer (see pingtime in getpeerinfo)"),
        _method(
            "setban",
            '"subnet" "add|remove" ( bantime absolute )',
            "ban an address or subnet for bantime seconds (default 24 h; or until the unix "
            "time bantime if absolute), or lift a ban",
            _Param("subnet", "a string", True),
            _Param("command", "a string", True),
            _Param("bantime", "a number", default=0),
            _Param("absolute", "a boolean", default=False),
        ),
        _method("uptime", "", "seconds since the node started"),
    )
}


def _normalAddress(text: str) -> Address | None:
    try:
        return Address.of(*split_host_port(text))
    except (AddressError, ValueError, TypeError):
        return None


def _column(table: Mapping[str, tuple[int, int]], index: int) -> dict[str, int]:
    """
    One column (0: messages, 1: bytes) of a peer view's C{recv_per_type} or
    C{send_per_type}, without zeroes, as Bitcoin Core's C{*_per_msg}.
    """
    return {kind: counter[index] for kind, counter in table.items() if counter[index]}


class ControlAPI(Resource):
    """
    The JSON-RPC endpoint (see the module docstring): C{POST} a request or
    a batch, C{GET} a description.

    Peers get a small integer id (C{id} in C{getpeerinfo}, and what
    C{disconnectnode} takes), counted from 0 in the order this API first
    sees them, kept while they stay connected.

    @ivar node: the L{Node<bitp2p.node.Node>} controlled.
    """

    isLeaf = True

    def __init__(self, node, auth: Authenticator | None) -> None:
        """
        @param auth: checked for every request; L{None} only when the API
            sits under a L{Guarded} tree that checks it.
        """
        super().__init__()
        self.node = node
        self._auth = auth
        self._ids: weakref.WeakKeyDictionary[Peer, int] = weakref.WeakKeyDictionary()
        self._nextId = 0
        # When each ban made through the API was made (listbanned's
        # ban_created); bans made otherwise show none.
        self._banCreated: dict[str, float] = {}

    # -- HTTP --

    def render(self, request):
        if self._auth is not None and not self._auth.admit(request):
            return self._auth.deny(request)
        return super().render(request)

    def render_GET(self, request) -> bytes:
        request.setHeader(b"content-type", _JSON)
        return _encode(
            {
                "name": "bitp2p control API",
                "version": __version__,
                "node_id": self.node.node_id,
                "usage": 'POST JSON-RPC 1.0 to /: {"id": 1, "method": "getpeerinfo", "params": []}',
                "methods": sorted(METHODS),
            }
        )

    def render_POST(self, request) -> bytes:
        request.setHeader(b"content-type", _JSON)
        body = _body(request)
        if body is None:
            request.setResponseCode(413)
            error = RPCError(RPC_INVALID_REQUEST, f"request body over {MAX_BODY_BYTES} bytes")
            return _encode(_reply(None, error))
        try:
            payload = json.loads(body, parse_constant=_noConstant)
        except (ValueError, RecursionError):
            request.setResponseCode(400)
            return _encode(_reply(None, RPCError(RPC_PARSE_ERROR, "Parse error")))
        client = _clientHost(request)
        if isinstance(payload, list):
            if not payload:
                request.setResponseCode(400)
                return _encode(_reply(None, RPCError(RPC_INVALID_REQUEST, "empty batch")))
            replies = [self._handle(item, client)[0] for item in payload]
            return self._answer(request, replies, 200)
        reply, status = self._handle(payload, client)
        return self._answer(request, reply, status)

    def _answer(self, request, reply, status: int) -> bytes:
        try:
            data = _encode(reply)
        except (TypeError, ValueError) as e:
            log.failure("Control API: cannot encode a reply", Failure(e))
            request.setResponseCode(500)
            error = RPCError(RPC_MISC_ERROR, "result cannot be encoded as JSON")
            return _encode(_reply(None, error))
        request.setResponseCode(status)
        return data

    def _handle(self, call: object, client: str) -> tuple[dict, int]:
        """
        Run one request.

        @return: the reply, and the HTTP status it would have alone.
        """
        if not isinstance(call, dict):
            return _reply(None, RPCError(RPC_INVALID_REQUEST, "Invalid Request object")), 400
        ident = call.get("id")
        name = call.get("method")
        if not isinstance(name, str):
            return _reply(ident, RPCError(RPC_INVALID_REQUEST, "Method must be a string")), 400
        params = call.get("params")
        if params is not None and not isinstance(params, (list, dict)):
            return (
                _reply(ident, RPCError(RPC_INVALID_REQUEST, "Params must be an array or object")),
                400,
            )
        method = METHODS.get(name)
        if method is None:
            return _reply(ident, RPCError(RPC_METHOD_NOT_FOUND, "Method not found")), 404
        log.debug("Control API: {method} from {client}", method=name, client=client)
        try:
            result = getattr(self, f"rpc_{name}")(*method.bind(params))
        except RPCError as e:
            return _reply(ident, e), 400 if e.code == RPC_INVALID_REQUEST else 500
        except Exception as e:
            log.failure("Control API: {method} failed", method=name)
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            return _reply(ident, RPCError(RPC_MISC_ERROR, message)), 500
        return {"result": result, "error": None, "id": ident}, 200

    # -- peers --

    def _number(self, peers: list[Peer]) -> None:
        """
        Give the peers not seen yet their ids, oldest connection first.
        """
        new = [p for p in peers if p not in self._ids]
        for peer in sorted(new, key=lambda p: p.connected_at):
            self._ids[peer] = self._nextId
            self._nextId += 1

    def _peerInfo(self, peer: Peer, now: float) -> dict:
        view = peerView(peer)
        info: dict[str, Any] = {
            "id": self._ids[peer],
            "node_id": view.node_id,
            "addr": str(view.address) if view.address is not None else view.remote,
            "remote": view.remote,
            "addrbind": view.local,
        }
        if view.addr_recv is not None:
            info["addrlocal"] = str(view.addr_recv)
        info.update(
            {
                "network": view.network,
                "inbound": view.inbound,
                "connection_type": view.kind.value,
                "subver": view.user_agent,
                "version": view.protocol,
                "conntime": int(view.connected_at),
                "lastsend": int(view.last_send),
                "lastrecv": int(view.last_recv),
                "bytessent": int(view.bytes_out),
                "bytesrecv": int(view.bytes_in),
                "timeoffset": 0,
            }
        )
        if view.rtt_s is not None:
            info["pingtime"] = view.rtt_s
        if view.min_rtt_s is not None:
            info["minping"] = view.min_rtt_s
        wait = view.pingWait(now)
        if wait is not None:
            info["pingwait"] = wait
        info["bytessent_per_msg"] = _column(view.send_per_type, 1)
        info["bytesrecv_per_msg"] = _column(view.recv_per_type, 1)
        info["msgssent_per_msg"] = _column(view.send_per_type, 0)
        info["msgsrecv_per_msg"] = _column(view.recv_per_type, 0)
        return info

    def _findPeer(self, address: str, nodeid: str | int | None) -> Peer:
        peers = self.node.peers()
        if address:
            wanted = _normalAddress(address)
            for peer in peers:
                remote = peer.remote
                if address == remote or (
                    wanted is not None
                    and (peer.address == wanted or _normalAddress(remote) == wanted)
                ):
                    return peer
        elif isinstance(nodeid, int):
            self._number(peers)
            for peer in peers:
                if self._ids.get(peer) == nodeid:
                    return peer
        else:
            try:
                return self.node.findPeer(nodeid)
            except LookupError as e:
                raise RPCError(RPC_CLIENT_NODE_NOT_CONNECTED, str(e.args[0])) from None
        raise RPCError(RPC_CLIENT_NODE_NOT_CONNECTED, "Node not found in connected nodes")

    # -- the methods (rpc_<name>, with the arguments METHODS describes) --

    def rpc_getpeerinfo(self) -> list[dict]:
        peers = self.node.peers()
        self._number(peers)
        now = self.node.reactor.seconds()
        return [self._peerInfo(p, now) for p in sorted(peers, key=lambda p: self._ids[p])]

    def rpc_getconnectioncount(self) -> int:
        return len(self.node.peers())

    def rpc_getnetworkinfo(self) -> dict:
        view = nodeView(self.node)
        listening = view.listening
        return {
            "version": __version__,
            "subversion": view.user_agent,
            "protocolversion": PROTOCOL_VERSION,
            "node_id": view.node_id,
            "localrelay": True,
            "timeoffset": 0,
            "networkactive": view.running,
            "connections": view.peers,
            "connections_in": view.peers_inbound,
            "connections_out": view.peers - view.peers_inbound,
            "listening": str(listening) if listening is not None else None,
            "localaddresses": (
                [{"address": listening.host, "port": listening.port, "score": 1}]
                if listening is not None
                else []
            ),
            "tls": view.tls,
            "gossip": dict(view.gossip),
            "warnings": "",
        }

    def rpc_getnodeaddresses(self, count: int, network: str | None) -> list[dict]:
        if count < 0:
            raise RPCError(RPC_INVALID_PARAMETER, "Address count out of range")
        if network is not None and network not in ("ipv4", "ipv6"):
            raise RPCError(RPC_INVALID_PARAMETER, f"Network not recognized: {network}")
        book = self.node.book
        size = len(book)
        if size == 0:
            return []
        wanted = size if count == 0 or network is not None else min(count, size)
        # Every entry may be drawn (Bitcoin Core: max_pct 0), the terrible ones excepted.
        infos = book.get_addr(self.node.reactor.seconds(), wanted, 100, size)
        result = []
        for info in infos:
            kind = "ipv6" if info.address.is_ipv6 else "ipv4"
            if network is not None and kind != network:
                continue
            result.append(
                {
                    "time": int(info.last_seen),
                    "services": 0,
                    "address": info.address.host,
                    "port": info.address.port,
                    "network": kind,
                }
            )
        return result[:count] if count else result

    def rpc_addnode(self, target: str, command: str) -> None:
        if command not in ("add", "remove", "onetry"):
            raise RPCError(
                RPC_INVALID_PARAMS,
                f"addnode: command must be add, remove or onetry, not {_show(command)}",
            )
        try:
            parse_target(target)
        except ValueError as e:
            raise RPCError(RPC_INVALID_PARAMETER, str(e)) from None
        if command == "onetry":
            self.node.connect(target).addErrback(self._oneTryFailed, target)
        elif command == "add":
            if not self.node.addManual(target):
                raise RPCError(RPC_CLIENT_NODE_ALREADY_ADDED, "Error: Node already added")
        elif not self.node.removeManual(target):
            raise RPCError(
                RPC_CLIENT_NODE_NOT_ADDED,
                "Error: Node could not be removed. It has not been added previously.",
            )
        return None

    def _oneTryFailed(self, failure: Failure, target: str) -> None:
        log.info(
            "addnode {target} onetry: {error}", target=target, error=failure.getErrorMessage()
        )

    def rpc_getaddednodeinfo(self, target: str | None) -> list[dict]:
        entries = self.node.manualPeers()
        if target is not None:
            try:
                key = str(parse_target(target))
            except ValueError:
                key = target
            entries = [(text, peer) for text, peer in entries if text == key]
            if not entries:
                raise RPCError(RPC_CLIENT_NODE_NOT_ADDED, "Error: Node has not been added.")
        result = []
        for text, peer in entries:
            addresses = []
            if peer is not None:
                view = peerView(peer)
                addresses.append(
                    {"address": view.remote, "connected": "inbound" if view.inbound else "outbound"}
                )
            result.append(
                {"addednode": text, "connected": peer is not None, "addresses": addresses}
            )
        return result

    def rpc_disconnectnode(self, address: str | int, nodeid: str | int | None) -> None:
        if isinstance(address, int):  # disconnectnode 3: an id where the address goes
            if nodeid is not None:
                raise RPCError(
                    RPC_INVALID_PARAMS, "Only one of address and nodeid should be provided."
                )
            address, nodeid = "", address
        if address and nodeid is not None:
            raise RPCError(RPC_INVALID_PARAMS, "Only one of address and nodeid should be provided.")
        if not address and nodeid in (None, ""):
            raise RPCError(RPC_INVALID_PARAMS, "disconnectnode: give an address or a node id")
        peer = self._findPeer(address, nodeid)
        self.node.disconnect(peer.node_id)
        return None

    def rpc_setban(self, subnet: str, command: str, bantime: float, absolute: bool) -> None:
        if command not in ("add", "remove"):
            raise RPCError(
                RPC_INVALID_PARAMS, f"setban: command must be add or remove, not {_show(command)}"
            )
        now = self.node.reactor.seconds()
        try:
            normal = BanMan().ban(subnet, now + 1)  # the subnet's normal form, nothing banned
        except ValueError:
            raise RPCError(RPC_CLIENT_INVALID_IP_OR_SUBNET, "Error: Invalid IP/Subnet") from None
        if command == "remove":
            if not self.node.unban(subnet):
                raise RPCError(
                    RPC_CLIENT_INVALID_IP_OR_SUBNET,
                    "Error: Unban failed. "
                    "Requested address/subnet was not previously manually banned.",
                )
            self._banCreated.pop(normal, None)
            return None
        current = dict(self.node.bans.bans(now))
        if normal in current:
            raise RPCError(RPC_CLIENT_NODE_ALREADY_ADDED, "Error: IP/Subnet already banned")
        if bantime <= 0:
            duration = float(DEFAULT_BAN_S)  # as Bitcoin Core: the default ban
        elif absolute:
            duration = bantime - now
            if duration <= 0:
                raise RPCError(RPC_INVALID_PARAMETER, "Error: Absolute timestamp is in the past")
        else:
            duration = float(bantime)
        try:
            self.node.ban(subnet, duration)
        except ValueError as e:
            raise RPCError(RPC_CLIENT_INVALID_IP_OR_SUBNET, str(e)) from None
        # Forget the creation times of bans gone, and note this one's (on
        # the node's own clock reading: ban_duration is then exact).
        self._banCreated = {s: t for s, t in self._banCreated.items() if s in current}
        until = dict(self.node.bans.bans(now)).get(normal)
        self._banCreated[normal] = until - duration if until is not None else now
        return None

    def rpc_listbanned(self) -> list[dict]:
        now = self.node.reactor.seconds()
        result = []
        for subnet, until in self.node.bans.bans(now):
            entry: dict[str, Any] = {"address": subnet}
            created = self._banCreated.get(subnet)
            if created is not None:
                entry["ban_created"] = int(created)
            entry["banned_until"] = int(until)
            if created is not None:
                entry["ban_duration"] = int(until - created)
            entry["time_remaining"] = int(until - now)
            result.append(entry)
        return result

    def rpc_clearbanned(self) -> None:
        self.node.clearBans()
        self._banCreated.clear()
        return None

    def rpc_ping(self) -> None:
        self.node.pingAll()
        return None

    def rpc_uptime(self) -> int:
        return int(self.node.uptime())

    def rpc_help(self, command: str | None) -> str:
        if command is None:
            lines = ["== Network =="]
            lines += [f"{m.name} {m.synopsis}".rstrip() for m in METHODS.values()]
            return "\n".join(lines)
        method = METHODS.get(command)
        if method is None:
            return f"help: unknown command: {command}"
        return f"{method.name} {method.synopsis}".rstrip() + f"\n\n{method.summary}."


def _reply(ident: object, error: RPCError) -> dict:
    return {"result": None, "error": {"code": error.code, "message": error.message}, "id": ident}


def _encode(value: object) -> bytes:
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def _noConstant(name: str):
    raise ValueError(f"{name} is not JSON")


def _body(request) -> bytes | None:
    """
    The request's body, or L{None} if it is over L{MAX_BODY_BYTES}.
    """
    if getattr(request, "bodyTooLarge", False):
        return None
    content = request.content
    content.seek(0)
    data = content.read(MAX_BODY_BYTES + 1)
    return data if len(data) <= MAX_BODY_BYTES else None


# -- the HTTP server --------------------------------------------------------------


class _Request(server.Request):
    """
    A request that keeps at most L{MAX_BODY_BYTES} of its body, in memory:
    past that, the rest is read and dropped, and C{bodyTooLarge} is set.
    """

    bodyTooLarge = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_BODY_BYTES:
            self.bodyTooLarge = True
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self.bodyTooLarge:
            return
        self._received += len(data)
        if self._received > MAX_BODY_BYTES:
            self.bodyTooLarge = True
            self.content = io.BytesIO()
            return
        self.content.write(data)


class _Site(server.Site):
    """
    The control API's site: its requests keep bounded bodies, and the access
    log goes to twisted.logger at debug level.
    """

    noisy = False
    requestFactory = _Request

    def startFactory(self) -> None:
        pass  # no access log file, and no timer for its dates

    def stopFactory(self) -> None:
        pass

    def log(self, request) -> None:
        log.debug(
            "Control API: {client} {method} {uri} {code}",
            client=_clientHost(request),
            method=request.method.decode("ascii", "replace"),
            uri=request.uri.decode("ascii", "replace")[:200],
            code=request.code,
        )


class _Connections(WrappingFactory):
    """
    Counts the open HTTP connections, refuses those past C{limit}, and
    closes them all at shutdown.
    """

    noisy = False

    def __init__(self, site: server.Site, limit: int) -> None:
        super().__init__(site)
        self._limit = limit
        self._closing: dict[Any, list[defer.Deferred]] = {}

    def buildProtocol(self, addr):
        if len(self.protocols) >= self._limit:
            log.info(
                "Control API: refusing a connection from {host}: {limit} open already",
                host=getattr(addr, "host", "?"),
                limit=self._limit,
            )
            return None
        return super().buildProtocol(addr)

    def unregisterProtocol(self, p) -> None:
        super().unregisterProtocol(p)
        for d in self._closing.pop(p, ()):
            d.callback(None)

    def closeAll(self) -> list[defer.Deferred]:
        """
        Abort every open connection.

        @return: a Deferred per connection, fired once it is closed.
        """
        waits = []
        for p in list(self.protocols):
            d: defer.Deferred = defer.Deferred()
            self._closing.setdefault(p, []).append(d)
            waits.append(d)
            p.transport.abortConnection()
        return waits


class _Root(Resource):
    """
    The root of the control API's tree: the API at C{/}, other resources
    beside it.
    """

    def getChild(self, path: bytes, request):
        return pages.notFound()


class ControlService(service.Service):
    """
    The control API as a service: it listens on C{endpoint} (synchronously
    at start, so that a busy port fails it with C{CannotListenError}),
    writes the cookie (and C{.rpcport}) to the node's data directory, and
    at stop closes everything and removes both files.

    @ivar node: the node controlled.
    @ivar authenticator: the L{Authenticator}.
    @ivar api: the L{ControlAPI}, at C{/}.
    @ivar root: the resource tree: C{root.putChild(b"metrics", ...)} adds
        a resource beside the API, behind the same authentication.
    @ivar site: the twisted.web site served.
    @ivar port: the listening port, once listening (else L{None}).
    @ivar address: the address listened on, once listening (else L{None}).
    """

    name = "bitp2p-control"

    def __init__(
        self,
        node,
        endpoint: str,
        password: str | None = None,
        user: str = DEFAULT_USER,
        reactor=None,
    ) -> None:
        """
        @raise ValueError: with neither a data directory (for the cookie)
            nor a password, for a bad password or user name, or an endpoint
            string Twisted cannot parse.
        """
        if reactor is None:
            from twisted.internet import reactor
        if password is None and not node.config.datadir:
            raise ValueError("the control API needs --datadir (for its cookie) or --rpc-password")
        self.node = node
        self._reactor = reactor
        # The main endpoint first, then those of addEndpoint (--web-port).
        self._endpoints = [(endpoint, serverEndpoint(reactor, endpoint))]
        self.authenticator = Authenticator(password, user, reactor)
        self.api = ControlAPI(node, self.authenticator)
        self.root = _Root()
        self.root.putChild(b"", self.api)
        self.site = _Site(
            Guarded(self.root, self.authenticator), timeout=HTTP_IDLE_TIMEOUT_S, reactor=reactor
        )
        self._factory = _Connections(self.site, MAX_HTTP_CONNECTIONS)
        self.port = None
        self.address = None
        self._pending: list[defer.Deferred] = []  # endpoints that listen later
        self._portFile: tuple[Path, bytes] | None = None
        self.extraPorts: list = []

    def addEndpoint(self, endpoint: str) -> None:
        """
        Serve the same site, with the same authentication, on one more
        endpoint too (C{--web-port}, for the dashboard).

        @raise ValueError: for an endpoint string Twisted cannot parse.
        """
        self._endpoints.append((endpoint, serverEndpoint(self._reactor, endpoint)))

    def privilegedStartService(self) -> None:
        self._listen()
        service.Service.privilegedStartService(self)

    def startService(self) -> None:
        self._listen()
        service.Service.startService(self)
        datadir = self.node.config.datadir
        if datadir:
            path = self.authenticator.writeCookie(datadir)
            log.info("Control API cookie written to {path}", path=str(path))
        self._writePortFile()

    def stopService(self) -> defer.Deferred:
        service.Service.stopService(self)
        self.authenticator.removeCookie()
        self._removePortFile()
        self.authenticator.stop()
        pending, self._pending = self._pending, []
        for d in pending:
            d.cancel()
        waits = []
        if self.port is not None:
            waits.append(defer.maybeDeferred(self.port.stopListening))
        self.port = self.address = None
        extra, self.extraPorts = self.extraPorts, []
        waits.extend(defer.maybeDeferred(port.stopListening) for port in extra)
        waits.extend(self._factory.closeAll())
        return defer.gatherResults(waits).addCallback(lambda _: None)

    def _listen(self) -> None:
        """
        Listen now on every endpoint (an endpoint that listens later, such
        as an onion service, is waited for in the background).

        @raise twisted.internet.error.CannotListenError: if it cannot listen.
        """
        if self.port is not None or self.extraPorts or self._pending:
            return
        try:
            for index, (description, endpoint) in enumerate(self._endpoints):
                listened = self._listening if index == 0 else self._listeningAlso
                port, later = listenNow(endpoint, self._factory, description, listened)
                if later is not None:
                    self._pending.append(later)
                else:
                    listened(port)
        except BaseException:
            for port in [self.port, *self.extraPorts]:
                if port is not None:
                    port.stopListening()
            self.port = self.address = None
            self.extraPorts = []
            raise

    def _listeningAlso(self, port) -> None:
        self.extraPorts.append(port)
        log.info(
            "Control API and dashboard also on {address}", address=hostPort(port.getHost())
        )

    def _listening(self, port) -> None:
        self.port = port
        self.address = port.getHost()
        log.info("Control API listening on {address}", address=hostPort(self.address))
        host = getattr(self.address, "host", None)
        if isinstance(host, str):
            try:
                loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                log.warn(
                    "The control API listens on {host}, not on loopback: anyone who can "
                    "reach it may try passwords",
                    host=host,
                )
        if self.running:  # an endpoint that listened later
            self._writePortFile()

    def _writePortFile(self) -> None:
        """
        Write the TCP port to C{DATADIR/.rpcport}, where C{bitp2p-cli} looks.
        """
        datadir = self.node.config.datadir
        if not datadir or not isinstance(self.address, (IPv4Address, IPv6Address)):
            return
        path = Path(datadir) / RPC_PORT_FILE
        data = f"{self.address.port}\n".encode("ascii")
        try:
            atomic_write(path, data, mode=0o644)
        except OSError as e:
            log.warn("Cannot write {path}: {error}", path=str(path), error=e)
            return
        self._portFile = (path, data)

    def _removePortFile(self) -> None:
        if self._portFile is None:
            return
        (path, data), self._portFile = self._portFile, None
        try:
            if path.read_bytes() == data:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warn("Cannot remove {path}: {error}", path=str(path), error=e)
