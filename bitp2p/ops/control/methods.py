"""
The control API's vocabulary: its methods (L{METHODS}: name, parameters,
synopsis, summary), the binding of a request's C{params} to them, and its
errors (L{RPCError} and Bitcoin Core's error codes).

The methods, Bitcoin Core's network calls (C{help} lists them):
C{getpeerinfo}, C{getnetworkinfo}, C{getconnectioncount},
C{getnodeaddresses}, C{addnode}, C{getaddednodeinfo}, C{disconnectnode},
C{setban}, C{listbanned}, C{clearbanned}, C{ping}, C{uptime}, C{help}.

This module owns the table and parameter checking. It must not know the
node, HTTP, or what a method does (that is L{bitp2p.ops.control.rpc}).
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import attrs

__all__ = [
    "METHODS",
    "RPCError",
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
    "show",
]

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


class RPCError(Exception):
    """
    A JSON-RPC error: C{code} (Bitcoin Core's numbers) and a one-line
    C{message}.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
                    f"{self.name}: {param.name} must be {param.kind}, not {show(value)}",
                )
            else:
                bound.append(value)
        return bound


def show(value: object) -> str:
    """
    A parameter as an error message shows it: JSON for a scalar, else its
    type, at most 40 characters.
    """
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
