"""
The web dashboard: a page to watch a node's peers come and go.

L{dashboardResource} makes the tree to mount under a guarded root (the
control API's, or any other L{Guarded<bitp2p.ops.control.Guarded>} one)::

    control.root.putHome(b"dashboard", dashboardResource(node))

(C{putHome} also sends a browser's C{GET /} to it: the page is what the
web port's root shows) and serves, under that mount point (all links are
relative, so any mount point works):

    - C{GET  /dashboard/}: the page (C{dashboard/index.html}), its node card
      and peer table rendered by the server (so it works without
      JavaScript: it then refreshes itself every 5 s); C{app.js} then polls
      C{state} and keeps it up to date. The graph labels nodes with their
      addresses (C{HOST:PORT}); the bans are a table, rendered by the
      server too. A known address shows when this node last heard of it
      (its own clock), then its time stamp (C{nTime}, Bitcoin Core's: 2 h
      back for a relayed address) apart, and the last connection that
      worked;
    - C{GET  /dashboard/app.js}, C{/dashboard/style.css}: the static files;
    - C{GET  /dashboard/state}: a JSON snapshot of the node (L{snapshot});
    - C{POST /dashboard/connect} (form field C{target}, C{HOST:PORT}),
      C{POST /dashboard/disconnect} (C{node_id}), C{POST /dashboard/ban}
      (C{subnet}, optional C{seconds}): classic HTML form posts; each does
      its action and answers 303 to C{./?msg=...&ok=1|0} (the page, with a
      flash message). A POST must come from the page itself: its C{Origin}
      (or, without one, its C{Referer}) must name the host the request was
      sent to, else it is refused with 403 (the browser would otherwise send
      its cached Basic credentials along with another site's form).

Everything runs in the reactor thread.

This module owns the page, its static files (C{bitp2p/ops/dashboard/}),
its JSON snapshot and its forms. It renders the node's views
(L{bitp2p.views}) and acts through the node's public methods; it must not
know a Peer's or Node's private state, nor credentials (the tree it is
mounted under checks them). (Moved from C{bitp2p.web}, which still
re-exports it.)
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import pages, server
from twisted.web.resource import Resource

from bitp2p._version import __version__
from bitp2p.constants import DASHBOARD_ACTION_WAIT_S as ACTION_WAIT_S
from bitp2p.constants import DASHBOARD_MAX_FIELD as MAX_FIELD
from bitp2p.constants import DASHBOARD_MAX_KNOWN as MAX_KNOWN
from bitp2p.constants import DEFAULT_BAN_S
from bitp2p.endpoints import parse_target
from bitp2p.formatting import duration as humanDuration
from bitp2p.views import AddressView, PeerView, addressViews, nodeView, peerView

__all__ = [
    "PAGE_CSP",
    "SECURITY_HEADERS",
    "STATIC_DIR",
    "StaticFile",
    "dashboardResource",
    "escapeText",
    "renderTemplate",
    "sameOrigin",
    "secureHeaders",
    "snapshot",
]

# The log namespace stays the one of the module's old path, bitp2p.web
# (operators filter on it).
log = Logger(namespace="bitp2p.web")

# Where the page and its static files are (installed as package data).
STATIC_DIR = Path(__file__).resolve().parent / "dashboard"

# The headers of every page and file served (the lab's too), and the
# content security policy of the pages.
SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",
    b"cache-control": b"no-store",
}
PAGE_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def secureHeaders(request) -> None:
    """
    Set the security headers of every page and file served.
    """
    for name, value in SECURITY_HEADERS.items():
        request.setHeader(name, value)


def renderTemplate(request, path: Path, slots: dict[str, str]) -> bytes:
    """
    The page at C{path} with each C{{{slot}}} replaced by its (already
    escaped) text, served as HTML with the security headers and the
    pages' content security policy.
    """
    template = path.read_text(encoding="utf-8")
    for slot, value in slots.items():
        template = template.replace(slot, value)
    secureHeaders(request)
    request.setHeader(b"content-security-policy", PAGE_CSP)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    return template.encode("utf-8")


# -- the snapshot -----------------------------------------------------------------


def _number(value) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _peerInfo(peer: PeerView) -> dict[str, Any]:
    address = peer.address
    return {
        "node_id": peer.node_id,
        "address": str(address) if address is not None else None,
        "remote": peer.remote,
        "direction": peer.direction.value,
        "kind": peer.kind.value,
        "agent": peer.user_agent,
        "since": _number(peer.established_at),
        "ping": _number(peer.rtt_s),
        "bytes_in": int(peer.bytes_in),
        "bytes_out": int(peer.bytes_out),
        "detail": _bitcoinDetail(peer),
    }


def _bitcoinDetail(peer: PeerView) -> str:
    """
    What a Bitcoin peer's C{version} said, in one line (protocol, services,
    start height, relay flag, network), or C{""} on bitp2p's own network.
    """
    if peer.services is None:
        return ""
    services = " ".join(peer.service_names) or "no services"
    relay = "relays txs" if peer.relay else "no tx relay"
    return f"{peer.protocol} · {services} · height {peer.start_height} · {relay} · {peer.network}"


def _knownInfo(known: AddressView) -> dict[str, Any]:
    return {
        "address": str(known.address),
        "table": known.table,
        "heard": _number(known.heard) or None,
        "last_seen": _number(known.last_seen),
        "last_success": _number(known.last_success) or None,
        "source": str(known.source) if known.source is not None else None,
    }


def snapshot(node) -> dict[str, Any]:
    """
    What the dashboard shows, fit for JSON: C{node}, C{peers}, C{known}
    (at most L{MAX_KNOWN} addresses, most recently seen first; C{known_total}
    counts them all), C{traffic}, C{bans}, and C{graph}: C{nodes} (this
    node, its peers, the known addresses, and the peers gone that told us
    of some) and C{edges} (this node to each peer, and each address's source
    to it when the address manager keeps sources: this node itself for the
    addresses it dialed or was seeded with).

    It renders the node's views (L{bitp2p.views}).
    """
    view = nodeView(node)
    now = view.now
    listening = view.listening
    peers = sorted(
        (peerView(p) for p in node.peers()), key=lambda p: (p.established_at or 0.0, p.node_id)
    )
    peerInfos = [_peerInfo(p) for p in peers]

    addresses = sorted(addressViews(node), key=lambda a: (-(a.last_seen or 0.0), str(a.address)))
    known = [_knownInfo(a) for a in addresses[:MAX_KNOWN]]

    return {
        "now": now,
        "version": __version__,
        "node": {
            "id": view.node_id,
            "listening": str(listening) if listening is not None else None,
            "uptime": _number(view.uptime_s) or 0.0,
            "tls": view.tls,
            "user_agent": view.user_agent,
            "network": node.config.network,
            "running": view.running,
        },
        "peers": peerInfos,
        "known": known,
        "known_total": len(addresses),
        "traffic": _traffic(node.trafficTotals()),
        "bans": [{"subnet": s, "until": _number(u)} for s, u in view.bans],
        "graph": _graph(view.node_id, listening, peerInfos, known),
    }


def _traffic(totals: dict) -> list[dict[str, Any]]:
    """
    The traffic table: one row per direction and message type, in order.
    """
    return [
        {"direction": direction, "type": str(kind), "messages": int(v[0]), "bytes": int(v[1])}
        for (direction, kind), v in sorted(
            totals.items(), key=lambda item: (item[0][0], str(item[0][1]))
        )
    ]


def _graph(nodeId: str, listening, peerInfos: list[dict], known: list[dict]) -> dict[str, list]:
    """
    The graph as this node sees it: C{nodes} (this node, its peers, the
    known addresses, and the peers gone that told us of some) and C{edges}
    (this node to each peer, and each address's source to it). Each node's
    C{label} is its address (C{HOST:PORT}); this node's and the peers' also
    carry their C{node_id}.
    """
    selfId = "self"
    nodes: list[dict] = [
        {
            "id": selfId,
            "kind": "self",
            "label": str(listening) if listening is not None else "this node",
            "node_id": nodeId,
        }
    ]
    edges: list[dict] = []
    byAddress: dict[str, str] = {}
    for info in peerInfos:
        ident = "peer:" + info["node_id"]
        nodes.append(
            {
                "id": ident,
                "kind": "peer",
                "label": info["address"] or info["remote"] or info["node_id"][:16],
                "node_id": info["node_id"],
                "address": info["address"],
            }
        )
        edges.append(
            {"from": selfId, "to": ident, "kind": "connection", "direction": info["direction"]}
        )
        if info["address"]:
            byAddress[info["address"]] = ident
    if listening is not None:
        byAddress[str(listening)] = selfId
    pending: list[tuple[str, str]] = []
    for entry in known:
        address = entry["address"]
        if address not in byAddress:
            ident = "addr:" + address
            byAddress[address] = ident
            nodes.append(
                {"id": ident, "kind": "known", "label": address, "table": entry["table"]}
            )
        if entry["source"] is not None:
            pending.append((entry["source"], address))
    linked = {(e["from"], e["to"]) for e in edges}
    for source, address in pending:
        target = byAddress[address]
        if source == address:
            origin = selfId  # dialed by us, or a seed
        else:
            origin = byAddress.get(source)
            if origin is None:  # a peer gone, still the source of addresses
                origin = byAddress[source] = "source:" + source
                nodes.append({"id": origin, "kind": "source", "label": source})
        if origin != target and (origin, target) not in linked:
            linked.add((origin, target))
            edges.append({"from": origin, "to": target, "kind": "told"})
    return {"nodes": nodes, "edges": edges}


# -- server-side rendering ----------------------------------------------------------


def escapeText(value) -> str:
    """
    C{value} as HTML text (C{None} as nothing), quotes escaped too.
    """
    return html.escape("" if value is None else str(value), quote=True)


def _ago(then: float | None, now: float) -> str:
    if then is None:
        return "-"
    seconds = max(0, int(now - then))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"


def _detail(detail: str) -> str:
    return f'<br><small class="detail">{escapeText(detail)}</small>' if detail else ""


def _ping(rtt: float | None) -> str:
    return "-" if rtt is None else f"{rtt * 1000:.1f} ms"


def _nodeCard(state: dict) -> str:
    n = state["node"]
    rows = [
        ("Node id", f'<code class="nodeid">{escapeText(n["id"])}</code>'),
        ("Listening", escapeText(n["listening"] or "not listening")),
        ("Uptime", escapeText(_ago(state["now"] - n["uptime"], state["now"]))),
        ("Network", escapeText(n["network"])),
        ("TLS", "on" if n["tls"] else "off"),
        ("User agent", escapeText(n["user_agent"])),
        ("Peers", str(len(state["peers"]))),
        ("Known addresses", str(state["known_total"])),
    ]
    return "\n".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)


def _peerRows(state: dict) -> str:
    if not state["peers"]:
        return '<tr class="empty"><td colspan="10">No peers yet.</td></tr>'
    now = state["now"]
    rows = []
    for p in state["peers"]:
        rows.append(
            f'<tr data-node-id="{escapeText(p["node_id"])}">'
            f'<td><code title="{escapeText(p["node_id"])}">{escapeText(p["node_id"][:16])}</code></td>'
            f'<td>{escapeText(p["address"] or p["remote"])}</td>'
            f'<td><span class="tag {escapeText(p["direction"])}">{escapeText(p["direction"])}</span></td>'
            f'<td>{escapeText(p["kind"])}</td>'
            f'<td class="agent">{escapeText(p["agent"])}{_detail(p["detail"])}</td>'
            f'<td>{escapeText(_ago(p["since"], now))}</td>'
            f'<td class="num">{escapeText(_ping(p["ping"]))}</td>'
            f'<td class="num">{escapeText(_size(p["bytes_in"]))}</td>'
            f'<td class="num">{escapeText(_size(p["bytes_out"]))}</td>'
            '<td><form method="post" action="disconnect" class="inline">'
            f'<input type="hidden" name="node_id" value="{escapeText(p["node_id"])}">'
            '<button type="submit" class="danger small">Disconnect</button></form></td>'
            "</tr>"
        )
    return "\n".join(rows)


def _source(known: dict) -> str:
    if known["source"] is None:
        return "-"
    return "itself / us" if known["source"] == known["address"] else known["source"]


def _knownRows(state: dict) -> str:
    if not state["known"]:
        return '<tr class="empty"><td colspan="6">No known addresses.</td></tr>'
    now = state["now"]
    return "\n".join(
        f'<tr><td>{escapeText(k["address"])}</td>'
        f'<td><span class="tag {escapeText(k["table"])}">{escapeText(k["table"])}</span></td>'
        f'<td>{escapeText(_ago(k["heard"], now))}</td>'
        f'<td>{escapeText(_ago(k["last_seen"], now))}</td>'
        f'<td>{escapeText(_ago(k["last_success"], now))}</td><td>{escapeText(_source(k))}</td></tr>'
        for k in state["known"]
    )


def _until(until: float | None, now: float) -> str:
    if until is None:
        return "-"
    return f"{_ago(now, until)} left"


def _banRows(state: dict) -> str:
    if not state["bans"]:
        return '<tr class="empty"><td colspan="2">No bans.</td></tr>'
    now = state["now"]
    return "\n".join(
        f'<tr><td>{escapeText(b["subnet"])}</td><td>{escapeText(_until(b["until"], now))}</td></tr>'
        for b in state["bans"]
    )


def _flash(request) -> str:
    message = request.args.get(b"msg", [b""])[0].decode("utf-8", "replace")[:MAX_FIELD]
    if not message:
        return '<p id="flash" class="flash" hidden></p>'
    ok = request.args.get(b"ok", [b"1"])[0] == b"1"
    kind = "ok" if ok else "error"
    return f'<p id="flash" class="flash {kind}" role="status">{escapeText(message)}</p>'


class _Page(Resource):
    """
    The page: C{index.html} with the server's rendering of the node.
    """

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request) -> bytes:
        state = snapshot(self.node)
        slots = {
            "{{node_id}}": escapeText(state["node"]["id"]),
            "{{short_id}}": escapeText(state["node"]["id"][:12]),
            "{{version}}": escapeText(state["version"]),
            "{{flash}}": _flash(request),
            "{{node_card}}": _nodeCard(state),
            "{{peer_count}}": str(len(state["peers"])),
            "{{peer_rows}}": _peerRows(state),
            "{{known_count}}": str(state["known_total"]),
            "{{known_rows}}": _knownRows(state),
            "{{ban_count}}": str(len(state["bans"])),
            "{{ban_rows}}": _banRows(state),
        }
        return renderTemplate(request, STATIC_DIR / "index.html", slots)


class _State(Resource):
    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request) -> bytes:
        secureHeaders(request)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(snapshot(self.node), allow_nan=False).encode("utf-8")


# -- the forms ----------------------------------------------------------------------


def sameOrigin(request) -> bool:
    """
    Whether a request comes from a page of this site: its C{Origin} header
    (or, without one, its C{Referer}) is an http(s) URL whose host and port
    are the C{Host} the request was sent to.
    """
    host = request.getHeader(b"host")
    source = request.getHeader(b"origin")
    if source is None:
        source = request.getHeader(b"referer")
    if not host or not source:
        return False
    try:
        parts = urlsplit(source.decode("latin-1").strip())
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and parts.netloc.lower() == host.decode("latin-1").strip().lower()
    )


def _field(request, name: str) -> str:
    value = request.args.get(name.encode("ascii"), [b""])[0]
    return value[:MAX_FIELD].decode("utf-8", "replace").strip()


def _redirect(request, message: str, ok: bool) -> bytes:
    query = urlencode({"msg": message[:MAX_FIELD], "ok": "1" if ok else "0"})
    request.setResponseCode(303)
    request.setHeader(b"location", ("./?" + query).encode("ascii"))
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    secureHeaders(request)
    return f"{message}\n".encode("utf-8")


def _bounded(d: defer.Deferred, seconds: float, reactor) -> defer.Deferred:
    """
    A Deferred that fires, never fails, with C{("done", result)},
    C{("failed", failure)}, or C{("pending", None)} if C{d} has not fired
    within C{seconds}.
    """
    out: defer.Deferred = defer.Deferred()

    def settle(outcome) -> None:
        if call.active():
            call.cancel()
        if not out.called:
            out.callback(outcome)

    def failed(failure: Failure) -> None:
        if out.called:
            log.info("Dashboard: {error}", error=failure.getErrorMessage())
        settle(("failed", failure))

    call = reactor.callLater(seconds, lambda: settle(("pending", None)))
    d.addCallbacks(lambda result: settle(("done", result)), failed)
    return out


class _Action(Resource):
    """
    A form's target: C{POST} only, from this site only (L{sameOrigin}).
    """

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request) -> bytes:
        return _redirect(request, "", True)

    def render_POST(self, request):
        if not sameOrigin(request):
            request.setResponseCode(403)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            secureHeaders(request)
            log.info("Dashboard: refused a cross-origin POST to {uri}", uri=request.uri[:200])
            return b"Forbidden: this form must be posted from the dashboard itself.\n"
        result = self.act(request)
        if not isinstance(result, defer.Deferred):
            return _redirect(request, *result)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(outcome: tuple[str, bool]) -> None:
            if gone:
                return
            request.write(_redirect(request, *outcome))
            request.finish()

        result.addCallback(answer)
        return server.NOT_DONE_YET

    def act(self, request) -> tuple[str, bool] | defer.Deferred:
        """
        Do the action.

        @return: the flash message and whether it went well, or a Deferred
            of them.
        """
        raise NotImplementedError


class _Connect(_Action):
    def act(self, request):
        target = _field(request, "target")
        if not target:
            return "Give an address to connect to (HOST:PORT).", False
        try:
            parse_target(target)
        except ValueError as e:
            return f"Cannot connect to {target}: {e}", False
        d = _bounded(self.node.connect(target), ACTION_WAIT_S, self.node.reactor)

        def told(outcome) -> tuple[str, bool]:
            what, value = outcome
            if what == "done":
                return f"Connected to {target}: peer {value.node_id}.", True
            if what == "failed":
                return f"Cannot connect to {target}: {value.getErrorMessage()}", False
            return f"Connecting to {target}...", True

        return d.addCallback(told)


class _Disconnect(_Action):
    def act(self, request):
        nodeId = _field(request, "node_id")
        if not nodeId:
            return "Give the node id of the peer to disconnect.", False
        try:
            d = self.node.disconnect(nodeId)
        except LookupError as e:
            return f"Cannot disconnect: {e.args[0] if e.args else e}", False
        d = _bounded(d, ACTION_WAIT_S, self.node.reactor)
        return d.addCallback(lambda _: (f"Disconnected {nodeId}.", True))


class _Ban(_Action):
    def act(self, request):
        subnet = _field(request, "subnet")
        if not subnet:
            return "Give an address or a subnet to ban.", False
        text = _field(request, "seconds")
        duration = float(DEFAULT_BAN_S)
        if text:
            try:
                duration = float(text)
            except ValueError:
                duration = -1.0
            if not (math.isfinite(duration) and duration > 0):
                return f"Cannot ban {subnet}: bad duration {text!r}", False
        try:
            banned = self.node.ban(subnet, duration)
        except ValueError as e:
            return f"Cannot ban {subnet}: {e}", False
        return f"Banned {banned} for {humanDuration(duration)}.", True


# -- the tree -----------------------------------------------------------------------


class StaticFile(Resource):
    """
    One static file of a page (the dashboard's or the lab's), read at each
    request (they are small), not cached, with the security headers.
    """

    isLeaf = True

    def __init__(self, path: Path, contentType: bytes) -> None:
        super().__init__()
        self._path = path
        self._type = contentType

    def render_GET(self, request) -> bytes:
        secureHeaders(request)
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"content-type", self._type)
        return self._path.read_bytes()


class _Dashboard(Resource):
    def render(self, request) -> bytes:
        # /dashboard without its slash: to the page, relatively.
        name = request.prepath[-1].decode("utf-8", "replace") if request.prepath else ""
        request.setResponseCode(301)
        request.setHeader(b"location", (name + "/").encode("utf-8") if name else b"./")
        return b""

    def getChild(self, path: bytes, request):
        return pages.notFound()


def dashboardResource(node) -> Resource:
    """
    The dashboard of C{node}, to mount (as C{b"dashboard"}) under a
    guarded root: it checks no credentials itself.
    """
    root = _Dashboard()
    root.putChild(b"", _Page(node))
    root.putChild(b"state", _State(node))
    root.putChild(b"app.js", StaticFile(STATIC_DIR / "app.js", b"text/javascript; charset=utf-8"))
    root.putChild(b"style.css", StaticFile(STATIC_DIR / "style.css", b"text/css; charset=utf-8"))
    root.putChild(b"connect", _Connect(node))
    root.putChild(b"disconnect", _Disconnect(node))
    root.putChild(b"ban", _Ban(node))
    return root
