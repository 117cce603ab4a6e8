"""
The JSON-RPC endpoint (L{ControlAPI}): JSON-RPC 1.0 over HTTP, as
bitcoind's, and its C{rpc_<name>} methods.

A client POSTs a JSON-RPC 1.0 request to C{/} (or C{/rpc})::

    {"jsonrpc": "1.0", "id": 1, "method": "getpeerinfo", "params": []}

and gets C{{"result": ..., "error": null, "id": 1}} (HTTP 200), or an error
as bitcoind gives it: C{{"result": null, "error": {"code": -32601,
"message": "Method not found"}, "id": 1}}, with HTTP 404 for an unknown
method, 400 for a request that is not JSON (-32700) or not a request
(-32600), 413 for a body over L{MAX_BODY_BYTES}, and 500 for every other
error. A JSON list of requests is a batch: one HTTP 200 answer, a list of
replies in the same order. C{params} may be a list (positional) or an object
(by name). C{GET /rpc} describes the API (and so does C{GET /} when the
tree has no home page: L{Root.putHome<bitp2p.ops.control.site.Root.putHome>}).

Peers and the node are rendered from their views (L{bitp2p.views}); the
node is changed only through its public methods.

This module owns the request/reply format and what each method answers. It
must not know how credentials are checked (L{bitp2p.ops.control.auth}),
how the site listens (L{bitp2p.ops.control.site}), or a Peer's or Node's
private state.
"""

from __future__ import annotations

import json
import time
import weakref
from typing import Any, Callable, Mapping

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from bitp2p._version import __version__
from bitp2p.address import Address, AddressError, address_network, split_host_port
from bitp2p.banman import BanMan
from bitp2p.constants import DEFAULT_BAN_S, MAX_BATCH_CALLS, PROTOCOL_VERSION, RPC_SLICE_S
from bitp2p.endpoints import parse_target
from bitp2p.ops.control.auth import Authenticator, clientHost
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
    show,
)
from bitp2p.ops.control.site import MAX_BODY_BYTES
from bitp2p.peer import Peer
from bitp2p.views import nodeView, peerView

__all__ = ["ControlAPI"]

# The log namespace of the control API, wherever its code sits (operators
# filter on it; it was the one module bitp2p.control).
log = Logger(namespace="bitp2p.control")

_JSON = b"application/json"


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

    def __init__(
        self,
        node,
        auth: Authenticator | None,
        cpuClock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """
        @param auth: checked for every request; L{None} only when the API
            sits under a L{Guarded} tree that checks it.
        @param cpuClock: what measures how long a slice of a batch has taken
            (the reactor's clock does not move while the reactor is busy).
        """
        super().__init__()
        self.node = node
        self._auth = auth
        self._cpuClock = cpuClock
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
                "usage": 'POST JSON-RPC 1.0 to / or /rpc: '
                '{"id": 1, "method": "getpeerinfo", "params": []}',
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
        client = clientHost(request)
        if isinstance(payload, list):
            if not payload:
                request.setResponseCode(400)
                return _encode(_reply(None, RPCError(RPC_INVALID_REQUEST, "empty batch")))
            if len(payload) > MAX_BATCH_CALLS:
                request.setResponseCode(400)
                error = RPCError(
                    RPC_INVALID_REQUEST,
                    f"batch of {len(payload)} calls, over the {MAX_BATCH_CALLS} allowed",
                )
                return _encode(_reply(None, error))
            return self._serveBatch(request, payload, client)
        reply, status = self._handle(payload, client)
        return self._answer(request, reply, status)

    def _serveBatch(self, request, calls: list, client: str) -> bytes | object:
        """
        Run a batch in slices of at most about C{RPC_SLICE_S} of the
        reactor's time, each later slice on a later turn of the reactor, so
        that a batch of slow calls never stalls the node and its peers.

        @return: the answer, when the batch took one slice; else
            C{NOT_DONE_YET}, and the answer is written when it is done
            (nothing, if the client went away meanwhile).
        """
        replies: list[dict] = []
        pending = iter(calls)
        gone: list[bool] = []

        def slice_() -> bool:
            started = self._cpuClock()
            for call in pending:
                replies.append(self._handle(call, client)[0])
                if len(replies) < len(calls) and self._cpuClock() - started >= RPC_SLICE_S:
                    return False
            return True

        if slice_():
            return self._answer(request, replies, 200)
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def later() -> None:
            if gone:
                return
            if not slice_():
                self.node.reactor.callLater(0, later)
                return
            request.write(self._answer(request, replies, 200))
            request.finish()

        self.node.reactor.callLater(0, later)
        return server.NOT_DONE_YET

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
        if view.services is not None:
            # A Bitcoin peer: what its version said, as bitcoind shows it.
            info["services"] = f"{view.services:016x}"
            info["servicesnames"] = list(view.service_names)
            info["relaytxes"] = view.relay
            info["startingheight"] = view.start_height
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
            # Bitcoin Core's: the addresses others may reach this node at
            # (the concrete ones it advertises, never 0.0.0.0).
            "localaddresses": [
                {"address": a.host, "port": a.port, "score": 1} for a in view.local_addresses
            ],
            "tls": view.tls,
            "gossip": dict(view.gossip),
            "warnings": "",
        }

    def rpc_getnodeaddresses(self, count: int, network: str | None) -> list[dict]:
        if count < 0:
            raise RPCError(RPC_INVALID_PARAMETER, "Address count out of range")
        if network is not None and network not in ("ipv4", "ipv6", "onion", "i2p", "cjdns"):
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
            kind = address_network(info.address)
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
                f"addnode: command must be add, remove or onetry, not {show(command)}",
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
                RPC_INVALID_PARAMS, f"setban: command must be add or remove, not {show(command)}"
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
