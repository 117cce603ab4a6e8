"""
The lab's web page and JSON API, for one L{Lab<bitp2p.ops.lab.service.Lab>}.

L{labResource} is the whole site (mounted at C{/}):

    - C{GET /}: the page (C{index.html}), with a plain list of the nodes
      rendered by the server (and, without JavaScript, a note saying the
      page needs it); C{app.js} and C{style.css} beside it;
    - C{GET /api/state}: the lab (L{Lab.state}) as JSON;
    - C{GET /api/events?since=N}: the events after number C{N}
      (C{{"events": [...], "missed": bool}}: C{missed} when some were
      already dropped from the bounded feed);
    - C{GET /api/node?port=N}: one node's own view, the dashboard's
      snapshot (L{bitp2p.ops.web.snapshot});
    - C{POST /api/ACTION} with a JSON object: C{start} (C{port}, optional),
      C{stop}, C{kill}, C{restart} (C{port}), C{connect}, C{disconnect},
      C{ban}, C{unban} (C{a}, C{b}), C{partition}, C{heal}, C{broadcast}
      (C{port}, C{text}); answers C{{"ok": bool, "message": str}}.

Every request must name a loopback host in C{Host} (C{localhost},
C{127.x.x.x}, C{[::1]}), against DNS rebinding; a POST must also come from
the page itself (L{sameOrigin<bitp2p.ops.web.sameOrigin>}), against
cross-site requests: the lab starts nodes on request.

It owns the page and the API's HTTP; what the lab does is
L{bitp2p.ops.lab.service}'s.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import server
from twisted.web.resource import Resource

from bitp2p._version import __version__
from bitp2p.ops.lab.service import Lab, LabError
from bitp2p.ops.web import (
    StaticFile,
    escapeText,
    renderTemplate,
    sameOrigin,
    secureHeaders,
    snapshot,
)

__all__ = ["STATIC_DIR", "labResource", "loopbackHost"]

log = Logger()

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The largest request body read.
MAX_BODY = 4096
# How long an action that waits (a dial) is waited for before answering.
ACTION_WAIT_S = 5.0


def loopbackHost(host: bytes | None) -> bool:
    """
    Whether a C{Host} header names this machine's loopback
    (C{localhost}, C{127.x.x.x}, C{[::1]}, with or without a port).
    """
    if not host:
        return False
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        name, _, rest = text[1:].partition("]")
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return False
    else:
        name, _, port = text.partition(":")
        if port and not port.isdigit():
            return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _json(request, body, code: int = 200) -> bytes:
    secureHeaders(request)
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body, allow_nan=False).encode("utf-8")


def nodeList(state: dict) -> str:
    """
    The nodes as a plain HTML list (the page without JavaScript).
    """
    if not state["nodes"]:
        return '<li class="empty">No nodes yet.</li>'
    rows = []
    for n in state["nodes"]:
        peers = ", ".join(
            f"{escapeText(p['port'] or p['address'])} ({escapeText(p['direction'])})" for p in n["peers"]
        )
        known = "" if n["known"] is None else f", knows {n['known']} addresses"
        rows.append(
            f'<li data-port="{n["port"]}"><strong>{n["port"]}</strong> {escapeText(n["state"])}{known}'
            f'{"; peers: " + peers if peers else ""}</li>'
        )
    return "\n".join(rows)


class _Page(Resource):
    isLeaf = True

    def __init__(self, lab: Lab) -> None:
        super().__init__()
        self.lab = lab

    def render_GET(self, request) -> bytes:
        state = self.lab.state()
        slots = {
            "{{node_list}}": nodeList(state),
            "{{network}}": escapeText(state["network"]),
            "{{directory}}": escapeText(state["directory"]),
            "{{version}}": escapeText(__version__),
        }
        return renderTemplate(request, STATIC_DIR / "index.html", slots)


class _State(Resource):
    isLeaf = True

    def __init__(self, lab: Lab) -> None:
        super().__init__()
        self.lab = lab

    def render_GET(self, request) -> bytes:
        return _json(request, self.lab.state())


class _Events(Resource):
    isLeaf = True

    def __init__(self, lab: Lab) -> None:
        super().__init__()
        self.lab = lab

    def render_GET(self, request) -> bytes:
        try:
            since = int(request.args.get(b"since", [b"0"])[0])
        except ValueError:
            return _json(request, {"error": "since must be a whole number"}, 400)
        events, missed = self.lab.eventsSince(since)
        return _json(request, {"events": events, "missed": missed, "last": self.lab.lastSeq})


class _NodeView(Resource):
    isLeaf = True

    def __init__(self, lab: Lab) -> None:
        super().__init__()
        self.lab = lab

    def render_GET(self, request) -> bytes:
        port = request.args.get(b"port", [b""])[0].decode("ascii", "replace")
        try:
            lab = self.lab.node(port)
        except LabError as e:
            return _json(request, {"error": str(e)}, 404)
        if not lab.running:
            return _json(request, {"error": f"node {lab.port} is {lab.state}"}, 409)
        return _json(request, snapshot(lab.node))


def _bounded(d: defer.Deferred, seconds: float, reactor) -> defer.Deferred:
    """
    C{d}'s outcome, or "still pending" after C{seconds}, whichever first.
    """
    out: defer.Deferred = defer.Deferred()

    def settle(outcome) -> None:
        if call.active():
            call.cancel()
        if not out.called:
            out.callback(outcome)

    call = reactor.callLater(seconds, lambda: settle(("pending", None)))
    d.addCallbacks(lambda r: settle(("done", r)), lambda f: settle(("failed", f)))
    return out


class _Action(Resource):
    """
    C{POST /api/ACTION}: one of the lab's actions, from the page only.
    """

    isLeaf = True

    def __init__(self, lab: Lab) -> None:
        super().__init__()
        self.lab = lab

    def render_POST(self, request):
        if not sameOrigin(request):
            log.info("Lab: refused a cross-origin POST to {uri}", uri=request.uri[:200])
            return _json(request, {"ok": False, "message": "cross-origin request refused"}, 403)
        name = request.prepath[-1].decode("ascii", "replace") if request.prepath else ""
        method = getattr(self, "do_" + name, None)
        if method is None:
            return _json(request, {"ok": False, "message": f"no action {name!r}"}, 404)
        raw = request.content.read(MAX_BODY + 1) if request.content is not None else b""
        if len(raw) > MAX_BODY:
            return _json(request, {"ok": False, "message": "request too large"}, 413)
        try:
            args = json.loads(raw or b"{}")
        except ValueError:
            return _json(request, {"ok": False, "message": "the body must be a JSON object"}, 400)
        if not isinstance(args, dict):
            return _json(request, {"ok": False, "message": "the body must be a JSON object"}, 400)
        try:
            result = method(args)
        except LabError as e:
            return _json(request, {"ok": False, "message": str(e)}, 400)
        if not isinstance(result, defer.Deferred):
            return _json(request, {"ok": True, "message": result})
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(outcome) -> None:
            if gone:
                return
            what, value = outcome
            if what == "failed":
                error = value.value
                message = str(error) if isinstance(error, LabError) else value.getErrorMessage()
                request.write(_json(request, {"ok": False, "message": message}, 400))
            else:
                text = value if isinstance(value, str) else "still in progress" if what == "pending" else "done"
                request.write(_json(request, {"ok": True, "message": text}))
            request.finish()

        _bounded(result, ACTION_WAIT_S, self.lab.reactor).addCallback(answer)
        return server.NOT_DONE_YET

    def do_start(self, args):
        port = _port(args.get("port"), optional=True)
        lab = self.lab.startNode(port)
        return f"started {lab.port}"

    def do_stop(self, args):
        port = _port(args.get("port"))
        return self.lab.stopNode(port).addCallback(lambda _: f"stopped {port}")

    def do_kill(self, args):
        port = _port(args.get("port"))
        self.lab.killNode(port)
        return f"killed {port}"

    def do_restart(self, args):
        port = _port(args.get("port"))
        return self.lab.restartNode(port).addCallback(lambda _: f"restarted {port}")

    def do_connect(self, args):
        a, b = _port(args.get("a")), _port(args.get("b"))
        return self.lab.connect(a, b).addCallback(lambda _: f"{a} connected to {b}")

    def do_disconnect(self, args):
        a, b = _port(args.get("a")), _port(args.get("b"))
        return self.lab.disconnect(a, b).addCallback(lambda _: f"{a} disconnected from {b}")

    def do_ban(self, args):
        a, b = _port(args.get("a")), _port(args.get("b"))
        self.lab.ban(a, b)
        return f"{a} banned {b}"

    def do_unban(self, args):
        a, b = _port(args.get("a")), _port(args.get("b"))
        self.lab.unban(a, b)
        return f"{a} unbanned {b}"

    def do_partition(self, args):
        one, two = self.lab.partition()
        return f"partitioned: {' '.join(map(str, one))} | {' '.join(map(str, two))}"

    def do_heal(self, args):
        self.lab.heal()
        return "healed"

    def do_broadcast(self, args):
        port = _port(args.get("port"))
        text = args.get("text", "")
        if not isinstance(text, str):
            raise LabError("text must be a string")
        return f"broadcast {self.lab.broadcast(port, text)}"


def _port(value, optional: bool = False) -> int | None:
    if value is None or value == "":
        if optional:
            return None
        raise LabError("give a node's port")
    if isinstance(value, bool):
        raise LabError(f"not a port: {value!r}")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise LabError(f"not a port: {value!r}") from None
    if not 0 < port <= 65535:
        raise LabError(f"a port is a whole number in 1..65535, not {value!r}")
    return port


class _Refused(Resource):
    isLeaf = True

    def render(self, request) -> bytes:
        secureHeaders(request)
        request.setResponseCode(421)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"The lab answers only requests to a loopback host (localhost, 127.0.0.1, [::1]).\n"


class _Root(Resource):
    """
    The site: refuses any C{Host} that is not loopback, then serves the
    tree.
    """

    def __init__(self, lab: Lab) -> None:
        super().__init__()
        self.putChild(b"", _Page(lab))
        js, css = b"text/javascript; charset=utf-8", b"text/css; charset=utf-8"
        self.putChild(b"app.js", StaticFile(STATIC_DIR / "app.js", js))
        self.putChild(b"style.css", StaticFile(STATIC_DIR / "style.css", css))
        api = Resource()
        api.putChild(b"state", _State(lab))
        api.putChild(b"events", _Events(lab))
        api.putChild(b"node", _NodeView(lab))
        action = _Action(lab)
        for name in ("start", "stop", "kill", "restart", "connect", "disconnect",
                     "ban", "unban", "partition", "heal", "broadcast"):
            api.putChild(name.encode(), action)
        self.putChild(b"api", api)

    def getChildWithDefault(self, path: bytes, request):
        if not loopbackHost(request.getHeader(b"host")):
            return _Refused()
        return super().getChildWithDefault(path, request)


def labResource(lab: Lab) -> Resource:
    """
    The lab's site, to serve at C{/} (on loopback).
    """
    return _Root(lab)
