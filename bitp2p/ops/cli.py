"""
C{bitp2p-cli}: call a running node's control API (L{bitp2p.ops.control}), as
C{bitcoin-cli} does for bitcoind.

    bitp2p-cli --datadir DIR getpeerinfo
    bitp2p-cli --datadir DIR -netinfo
    bitp2p-cli --datadir DIR addnode 127.0.0.1:5001 add
    bitp2p-cli --rpc-port 5332 --rpc-password SECRET --json getnetworkinfo
    bitp2p-cli --rpc-port 5332 -health

Credentials: the cookie the node writes to its data directory (C{.cookie})
when given C{--datadir}, or C{--rpc-user}/C{--rpc-password}. With neither,
the data directory is found among the per-user default ones
(L{bitp2p.ops.datadir.findNode}): the one of the running node with a
cookie (with C{--rpc-port}, the one whose control API is on that port), so
that C{twistd -n bitp2p --rpc-port 5332} then C{bitp2p-cli getpeerinfo}
just works. The address:
C{--rpc-connect} (default 127.0.0.1) and C{--rpc-port}; without a port, the
one the node wrote beside its cookie (C{.rpcport}), else
L{DEFAULT_RPC_PORT<bitp2p.constants.DEFAULT_RPC_PORT>}.

Arguments are read as JSON when they parse (C{10}, C{true}, C{null}) and as
strings otherwise. Results are printed for people (tables for
C{getpeerinfo}, C{listbanned}, C{-netinfo}; C{key: value} lines for
objects, what they nest as indented lines or sub-tables) or, with
C{--json} (or bitcoin-cli's spelling, C{-json}), as JSON. This is a command-line program, not
part of the node: it uses the standard library's blocking HTTP client.

This module owns the client's command line and its printing. It must not
import the node, Twisted or the server side: it knows the API only as
JSON over HTTP. C{-health} asks C{GET /health}, which needs no
credentials, prints C{up} or C{down} and exits 0 only when up: a container's
or a supervisor's health check. (Moved from C{bitp2p.cli}, which still re-exports it.)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import IO

from bitp2p._version import __version__
from bitp2p.constants import CLI_TIMEOUT_S as TIMEOUT_S
from bitp2p.constants import COOKIE_FILE, DEFAULT_RPC_PORT, RPC_PORT_FILE
from bitp2p.ops.datadir import findNode
from bitp2p.formatting import age, span

__all__ = ["CLIError", "call", "health", "main"]


class CLIError(Exception):
    """
    What went wrong, in one line; C{code} is the exit status.
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bitp2p-cli",
        description="Call a running bitp2p node's control API.",
        epilog="Methods: getpeerinfo, getnetworkinfo, getnodeaddresses [count], "
        "addnode HOST:PORT add|remove|onetry, getaddednodeinfo, disconnectnode ADDRESS|ID, "
        "setban SUBNET add|remove [seconds], listbanned, clearbanned, ping, "
        "getconnectioncount, uptime, help. -netinfo: a summary of the peers.",
    )
    parser.add_argument(
        "--datadir",
        "-datadir",
        help="the node's data directory (for its cookie) [default: the running node's"
        " among the per-user ones, e.g. ~/.local/share/bitp2p/*/]",
    )
    parser.add_argument("--rpc-connect", "-rpcconnect", default="127.0.0.1", metavar="HOST")
    parser.add_argument("--rpc-port", "-rpcport", type=int, metavar="PORT")
    parser.add_argument("--rpc-user", "-rpcuser", default="bitp2p", metavar="USER")
    parser.add_argument("--rpc-password", "-rpcpassword", metavar="PASSWORD")
    parser.add_argument(
        "--json", "-json", action="store_true", help="print results as JSON (also -json)"
    )
    parser.add_argument(
        "--version",
        "-version",
        action="version",
        version=f"bitp2p-cli {__version__}",
        help="print bitp2p-cli's version and exit",
    )
    parser.add_argument("-netinfo", "--netinfo", action="store_true", help="a summary of the peers")
    parser.add_argument(
        "-health",
        "--health",
        action="store_true",
        help="ask GET /health (no credentials): print up or down, exit 0 only when up",
    )
    parser.add_argument("method", nargs="?")
    parser.add_argument("params", nargs="*")
    return parser


def _param(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _credentials(args) -> str:
    if args.rpc_password is not None:
        return f"{args.rpc_user}:{args.rpc_password}"
    if args.datadir is None:
        try:
            args.datadir = findNode(args.rpc_port)
        except LookupError as e:
            raise CLIError(
                f"no credentials: {e}; give --datadir (where the node writes its .cookie)"
                " or --rpc-password"
            ) from None
    path = os.path.join(args.datadir, COOKIE_FILE)
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError as e:
        raise CLIError(
            f"cannot read the cookie {path}: {e.strerror or e} "
            "(is the node running with --rpc-port and this --datadir?)"
        ) from None


def _port(args) -> int:
    if args.rpc_port is not None:
        return args.rpc_port
    if args.datadir is not None:
        try:
            with open(os.path.join(args.datadir, RPC_PORT_FILE), encoding="ascii") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            pass
    return DEFAULT_RPC_PORT


def _target(host: str, port: int) -> str:
    """
    C{host:port} as a URL has it (an IPv6 host in brackets).
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _cannotConnect(target: str, error: urllib.error.URLError) -> CLIError:
    reason = getattr(error.reason, "strerror", None) or str(error.reason)
    return CLIError(
        f"cannot connect to the node at {target}: {reason} (is it running with --rpc-port?)"
    )


def call(host: str, port: int, credentials: str, method: str, params: list) -> object:
    """
    Make one call and return its result.

    @raise CLIError: when the node cannot be reached, refuses the
        credentials, or answers with an error.
    """
    body = json.dumps({"jsonrpc": "1.0", "id": "bitp2p-cli", "method": method, "params": params})
    auth = base64.b64encode(credentials.encode()).decode("ascii")
    target = _target(host, port)
    request = urllib.request.Request(
        f"http://{target}/",
        data=body.encode(),
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as e:
        if e.code == 401:
            raise CLIError(f"the node at {target} refused the credentials (HTTP 401)") from None
        try:
            answer = json.loads(e.read())
        except ValueError:
            raise CLIError(f"the node at {target} answered HTTP {e.code}") from None
    except urllib.error.URLError as e:
        raise _cannotConnect(target, e) from None
    except (OSError, ValueError) as e:
        raise CLIError(f"no answer from the node at {target}: {e}") from None
    error = answer.get("error") if isinstance(answer, dict) else None
    if error:
        raise CLIError(f"error code: {error.get('code')}\nerror message:\n{error.get('message')}")
    return answer.get("result") if isinstance(answer, dict) else answer


def health(host: str, port: int) -> str:
    """
    Ask the node's C{GET /health}: C{"up"} or C{"down"}.

    @raise CLIError: when the node cannot be reached or answers something
        else.
    """
    target = _target(host, port)
    try:
        with urllib.request.urlopen(f"http://{target}/health", timeout=TIMEOUT_S) as response:
            status, body = response.status, response.read(64)
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read(64)
    except urllib.error.URLError as e:
        raise _cannotConnect(target, e) from None
    except OSError as e:
        raise CLIError(f"no answer from the node at {target}: {e}") from None
    state = body.decode("ascii", "replace").strip()
    if (status, state) not in ((200, "up"), (503, "down")):
        raise CLIError(f"the node at {target} answered HTTP {status} to /health")
    return state


# -- printing -------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _size(count: int | None) -> str:
    if count is None:
        return "-"
    for unit, size in (("M", 1 << 20), ("K", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _table(
    rows: list[list[str]], out: IO[str], indent: str = "", right: frozenset[int] = frozenset()
) -> None:
    """
    C{rows} (the first the header) in columns; those in C{right} aligned
    right (numbers).
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        )
        out.write((indent + "  ".join(cells)).rstrip() + "\n")


def _scalar(value: object) -> str:
    """
    One value of a result as people read it: C{-} for null, C{true} and
    C{false}, numbers and strings as they are.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def printObject(result: dict, out: IO[str], indent: str = "") -> None:
    """
    An object as C{key  value} lines, what it nests rendered readably, never
    as JSON: an object as indented lines of its own, a list of scalars on
    one line, a list of objects as an indented table (one row each), an
    empty list as C{none}.
    """
    width = max((len(str(k)) for k in result), default=0)
    for key, value in result.items():
        label = f"{indent}{str(key).ljust(width)}"
        if isinstance(value, dict):
            out.write(f"{indent}{key}\n" if value else f"{label}  none\n")
            if value:
                printObject(value, out, indent + "  ")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.write(f"{indent}{key}\n")
            columns = list(dict.fromkeys(k for v in value for k in v))
            rows = [columns] + [[_scalar(v.get(c)) for c in columns] for v in value]
            _table(rows, out, indent + "  ")
        elif isinstance(value, list):
            text = ", ".join(
                _scalar(v) if not isinstance(v, (dict, list)) else json.dumps(v) for v in value
            )
            out.write(f"{label}  {text or 'none'}\n".rstrip() + "\n")
        else:
            out.write(f"{label}  {_scalar(value)}".rstrip() + "\n")


def printPeers(peers: list[dict], out: IO[str], now: float | None = None) -> None:
    """
    The peers of C{getpeerinfo} as a table.
    """
    now = time.time() if now is None else now
    if not peers:
        out.write("no peers\n")
        return
    rows = [["id", "node", "dir", "type", "ping ms", "min ms", "send", "recv", "age",
             "bytes in", "bytes out", "agent", "address"]]
    for p in peers:
        rows.append([
            str(p.get("id")),
            str(p.get("node_id", ""))[:8],
            "in" if p.get("inbound") else "out",
            str(p.get("connection_type", "")),
            _ms(p.get("pingtime")),
            _ms(p.get("minping")),
            age(now, p.get("lastsend")),
            age(now, p.get("lastrecv")),
            age(now, p.get("conntime")),
            _size(p.get("bytesrecv")),
            _size(p.get("bytessent")),
            str(p.get("subver", "")),
            str(p.get("addr", "")),
        ])
    _table(rows, out)


def printNetinfo(network: dict, peers: list[dict], out: IO[str], now: float | None = None) -> None:
    """
    The C{-netinfo} summary: this node, then its peers, then the totals
    by direction, in the columns and units of the peers' table (bytes as
    C{K}/C{M}, pings in ms), as Bitcoin Core's C{-netinfo} ends with a
    table of counts.
    """
    local = ", ".join(
        f"{a.get('address')}:{a.get('port')}"
        if ":" not in str(a.get("address"))
        else f"[{a.get('address')}]:{a.get('port')}"
        for a in network.get("localaddresses") or []
    )
    out.write(
        f"bitp2p {network.get('subversion', '')} node {network.get('node_id', '')}"
        f"{'  (tls)' if network.get('tls') else ''}\n"
        f"listening {network.get('listening') or '-'}\n"
        f"local addresses {local or 'none'}\n\n"
    )
    printPeers(peers, out, now)
    rows = [["", "peers", "bytes in", "bytes out", "median ping ms"]]
    groups = (
        ("in", [p for p in peers if p.get("inbound")]),
        ("out", [p for p in peers if not p.get("inbound")]),
        ("total", peers),
    )
    for name, group in groups:
        pings = sorted(p["pingtime"] for p in group if p.get("pingtime") is not None)
        rows.append([
            name,
            str(len(group)),
            _size(sum(p.get("bytesrecv") or 0 for p in group)),
            _size(sum(p.get("bytessent") or 0 for p in group)),
            _ms(pings[len(pings) // 2]) if pings else "-",
        ])
    out.write("\n")
    _table(rows, out, right=frozenset({1, 2, 3, 4}))


def printResult(method: str, result: object, out: IO[str]) -> None:
    """
    A result for people.
    """
    if result is None:
        return
    if method == "getpeerinfo" and isinstance(result, list):
        printPeers(result, out)
    elif method == "listbanned" and isinstance(result, list):
        if not result:
            out.write("no bans\n")
            return
        now = time.time()
        rows = [["subnet", "banned until", "left"]]
        for ban in result:
            until = ban.get("banned_until")
            rows.append([
                str(ban.get("address")),
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(until)) if until else "-",
                span(until - now) if until and until > now else "-",
            ])
        _table(rows, out)
    elif isinstance(result, dict):
        printObject(result, out)
    elif isinstance(result, str):
        out.write(result + "\n")
    else:
        out.write(json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    try:
        try:
            return _main(argv, sys.stdout if out is None else out)
        finally:
            # --help and --version exit through SystemExit, their text still
            # in the buffer: flush it here, where a closed pipe is caught.
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (bitp2p-cli ... | head): not an error. Python
        # would complain again when flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None, out: IO[str]) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not args.netinfo and not args.health and not args.method:
        _parser().print_usage(sys.stderr)
        sys.stderr.write("bitp2p-cli: give a method (see --help), -netinfo or -health\n")
        return 2
    try:
        if args.health:
            state = health(args.rpc_connect, _port(args))
            out.write(state + "\n")
            return 0 if state == "up" else 1
        credentials = _credentials(args)
        port = _port(args)
        if args.netinfo:
            network = call(args.rpc_connect, port, credentials, "getnetworkinfo", [])
            peers = call(args.rpc_connect, port, credentials, "getpeerinfo", [])
            if args.json:
                out.write(json.dumps({"network": network, "peers": peers}, indent=2) + "\n")
            else:
                printNetinfo(network, peers, out)
            return 0
        result = call(args.rpc_connect, port, credentials, args.method, [_param(p) for p in args.params])
    except CLIError as e:
        sys.stderr.write(f"bitp2p-cli: {e}\n" if "\n" not in str(e) else f"{e}\n")
        return e.code
    if args.json:
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        printResult(args.method, result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
