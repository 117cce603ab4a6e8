"""
The web dashboard (L{bitp2p.ops.web}): over real HTTP with twisted.web's Agent
against real nodes on loopback, and in a real headless Chromium driven by
Playwright against nodes run in subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unittest
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from twisted.internet import defer, reactor
from twisted.web.client import Agent
from twisted.web.http_headers import Headers

from bitp2p.address import Address
from bitp2p.ops.control.auth import DENIED_PAGE
from bitp2p.ops.web import dashboardResource, sameOrigin

from .helpers import firstLine, learn, stopProcess
from .test_control import ControlTestCase, _Body, basic, readBody

PASSWORD = "secret"
CREDENTIALS = f"bitp2p:{PASSWORD}"
ROOT = Path(__file__).resolve().parent.parent


class DashboardHTTPTests(ControlTestCase):
    timeout = 20

    def startDashboard(self):
        node = self.startNode(datadir=False)
        control = self.startControl(node, password=PASSWORD)
        control.root.putHome(b"dashboard", dashboardResource(node))
        return node, control

    def origin(self, control) -> bytes:
        return b"http://127.0.0.1:%d" % (control.address.port,)

    def request(
        self,
        control,
        method: bytes = b"GET",
        path: bytes = b"/dashboard/",
        form: dict | None = None,
        credentials: str | None = CREDENTIALS,
        headers: dict | None = None,
    ) -> defer.Deferred:
        h = Headers()
        if credentials is not None:
            h.addRawHeader(b"authorization", basic(credentials))
        for name, value in (headers or {}).items():
            h.addRawHeader(name, value)
        producer = None
        if form is not None:
            h.addRawHeader(b"content-type", b"application/x-www-form-urlencoded")
            producer = _Body(urlencode(form).encode())
        url = b"http://127.0.0.1:%d%s" % (control.address.port, path)
        d = Agent(reactor).request(method, url, h, producer)
        return d.addCallback(
            lambda r: readBody(r).addCallback(lambda body: (r.code, r.headers, body))
        )

    def post(self, control, action: str, form: dict, origin: bytes | None = None):
        headers = {b"origin": origin if origin is not None else self.origin(control)}
        return self.request(control, b"POST", b"/dashboard/" + action.encode(), form, headers=headers)

    def flash(self, headers) -> tuple[str, str]:
        location = headers.getRawHeaders(b"location")[0].decode()
        self.assertTrue(location.startswith("./?"), location)
        query = parse_qs(urlsplit(location).query)
        return query["msg"][0], query["ok"][0]

    @defer.inlineCallbacks
    def state(self, control) -> defer.Deferred:
        status, headers, body = yield self.request(control, path=b"/dashboard/state")
        self.assertEqual(status, 200)
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        return json.loads(body)

    @defer.inlineCallbacks
    def test_guarded(self):
        """
        Every dashboard path answers 401 with a Basic challenge without
        credentials, or with wrong ones.
        """
        node, control = self.startDashboard()
        for path in (b"/dashboard/", b"/dashboard/state", b"/dashboard/app.js", b"/dashboard"):
            for credentials in (None, "bitp2p:wrong"):
                status, headers, body = yield self.request(
                    control, path=path, credentials=credentials
                )
                self.assertEqual(status, 401, path)
                self.assertEqual(body, DENIED_PAGE)
                self.assertIn(b"Credentials needed", body)
                self.assertEqual(
                    headers.getRawHeaders(b"www-authenticate"), [b'Basic realm="bitp2p"']
                )
        status, headers, body = yield self.request(
            control, b"POST", b"/dashboard/connect", {"target": "127.0.0.1:1"},
            credentials=None, headers={b"origin": self.origin(control)},
        )
        self.assertEqual(status, 401)

    @defer.inlineCallbacks
    def test_pageAndStatic(self):
        """
        The page is rendered with the node id and the peers by the server,
        with a refresh for browsers without JavaScript; its static files
        are served; /dashboard redirects to /dashboard/.
        """
        node, control = self.startDashboard()
        status, headers, body = yield self.request(control)
        self.assertEqual(status, 200)
        page = body.decode()
        self.assertIn(node.node_id, page)
        self.assertIn("No peers yet.", page)
        self.assertIn('<noscript><meta http-equiv="refresh"', page)
        self.assertIn("No bans.", page)
        # The known addresses' time is labelled for what it is (Core's nTime,
        # 2 h back for relayed addresses), not as when we heard of them.
        self.assertIn("Time stamp age", page)
        self.assertIn("<th title=\"When this node last heard of the address (its own clock)\">Heard</th>", page)
        self.assertIn("not when this node heard of it", page)
        self.assertNotIn("{{", page)
        self.assertIn(b"script-src 'self'", headers.getRawHeaders(b"content-security-policy")[0])

        other = self.startNode(datadir=False)
        yield self.connected(other, node)
        status, headers, body = yield self.request(control)
        page = body.decode()
        self.assertIn(f'data-node-id="{other.node_id}"', page)
        self.assertNotIn("No peers yet.", page)

        for name, kind in ((b"app.js", b"text/javascript"), (b"style.css", b"text/css")):
            status, headers, body = yield self.request(control, path=b"/dashboard/" + name)
            self.assertEqual(status, 200, name)
            self.assertTrue(headers.getRawHeaders(b"content-type")[0].startswith(kind))
            self.assertEqual(body, (ROOT / "bitp2p" / "ops" / "dashboard" / name.decode()).read_bytes())
        status, headers, _ = yield self.request(control, path=b"/dashboard")
        self.assertEqual((status, headers.getRawHeaders(b"location")), (301, [b"dashboard/"]))
        status, _, _ = yield self.request(control, path=b"/dashboard/nothing")
        self.assertEqual(status, 404)

    @defer.inlineCallbacks
    def test_escaping(self):
        """
        What peers say (their user agent, here) and the flash message are
        HTML-escaped in the server's rendering.
        """
        node, control = self.startDashboard()
        other = self.startNode(datadir=False, user_agent="/<script>alert(1)</script>/")
        yield self.connected(other, node)
        status, _, body = yield self.request(
            control, path=b"/dashboard/?" + urlencode({"msg": "<b>hi</b>", "ok": "0"}).encode()
        )
        page = body.decode()
        self.assertNotIn("<script>alert", page)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", page)
        self.assertIn('class="flash error" role="status">&lt;b&gt;hi&lt;/b&gt;</p>', page)

    @defer.inlineCallbacks
    def test_state(self):
        """
        The JSON snapshot: the node, its peers, the known addresses with
        their sources, traffic, and the graph's nodes and edges.
        """
        node, control = self.startDashboard()
        other = self.startNode(datadir=False)
        yield self.connected(other, node)
        peer = next(p for p in node.peers() if p.node_id == other.node_id)
        learn(node, Address.of("10.1.2.3", 8333), source=peer.address.host)
        # The source is matched by address: teach it with the peer's own port.
        node.book.add([(Address.of("10.4.5.6", 8333), node.reactor.seconds())], peer.address,
                      node.reactor.seconds())
        state = yield self.state(control)
        self.assertEqual(state["node"]["id"], node.node_id)
        self.assertEqual(state["node"]["listening"], str(node.listeningAddress))
        self.assertFalse(state["node"]["tls"])
        self.assertGreaterEqual(state["node"]["uptime"], 0)
        [info] = state["peers"]
        self.assertEqual(info["node_id"], other.node_id)
        self.assertEqual(info["direction"], "inbound")
        self.assertEqual(info["address"], str(other.listeningAddress))
        self.assertGreater(info["bytes_in"], 0)
        known = {k["address"]: k for k in state["known"]}
        self.assertEqual(known["10.4.5.6:8333"]["source"], str(peer.address))
        self.assertEqual(known["10.4.5.6:8333"]["table"], "new")
        self.assertIsNone(known["10.4.5.6:8333"]["last_success"])
        # A relayed address heard just now: heard now, though its time stamp
        # is 2 h back (Core's penalty), and the two are shown apart.
        now = node.reactor.seconds()
        node.book.add([(Address.of("10.7.8.9", 8333), now)], peer.address, now, penalty_s=7200)
        state = yield self.state(control)
        relayed = {k["address"]: k for k in state["known"]}["10.7.8.9:8333"]
        self.assertLess(state["now"] - relayed["heard"], 60)
        self.assertGreater(state["now"] - relayed["last_seen"], 7000)
        types = {(t["direction"], t["type"]) for t in state["traffic"]}
        self.assertIn(("in", "version"), types)
        self.assertIn(("out", "verack"), types)
        graph = state["graph"]
        ids = {n["id"]: n["kind"] for n in graph["nodes"]}
        self.assertEqual(ids["self"], "self")
        # Nodes are labelled by their address; the node id goes along.
        labels = {n["id"]: (n["label"], n.get("node_id")) for n in graph["nodes"]}
        self.assertEqual(labels["self"], (str(node.listeningAddress), node.node_id))
        self.assertEqual(
            labels["peer:" + other.node_id], (str(other.listeningAddress), other.node_id)
        )
        self.assertEqual(labels["addr:10.4.5.6:8333"][0], "10.4.5.6:8333")
        self.assertEqual(ids["peer:" + other.node_id], "peer")
        self.assertEqual(ids["addr:10.4.5.6:8333"], "known")
        edges = {(e["from"], e["to"]) for e in graph["edges"]}
        self.assertIn(("self", "peer:" + other.node_id), edges)
        self.assertIn(("peer:" + other.node_id, "addr:10.4.5.6:8333"), edges)
        # 10.1.2.3 was told by a host that is not a peer: a "source" node.
        source = next(k["source"] for k in state["known"] if k["address"] == "10.1.2.3:8333")
        self.assertEqual(ids["source:" + source], "source")
        self.assertIn(("source:" + source, "addr:10.1.2.3:8333"), edges)

    @defer.inlineCallbacks
    def test_connect(self):
        """
        POST /dashboard/connect dials the target and answers 303 to the page
        with a flash message; a bad target gets an error message.
        """
        node, control = self.startDashboard()
        third = self.startNode(datadir=False)
        status, headers, _ = yield self.post(
            control, "connect", {"target": str(third.listeningAddress)}
        )
        self.assertEqual(status, 303)
        message, ok = self.flash(headers)
        self.assertEqual(ok, "1", message)
        self.assertIn(third.node_id, message)
        self.assertIn(third.node_id, [p.node_id for p in node.peers()])
        state = yield self.state(control)
        self.assertEqual([p["node_id"] for p in state["peers"]], [third.node_id])

        status, headers, _ = yield self.post(control, "connect", {"target": "not a target"})
        self.assertEqual(status, 303)
        message, ok = self.flash(headers)
        self.assertEqual(ok, "0")
        self.assertIn("Cannot connect", message)

    @defer.inlineCallbacks
    def test_crossOrigin(self):
        """
        A form post without an Origin (or Referer) naming this host is
        refused with 403, and nothing is done.
        """
        node, control = self.startDashboard()
        third = self.startNode(datadir=False)
        target = {"target": str(third.listeningAddress)}
        for headers in (
            {},
            {b"origin": b"http://evil.example"},
            {b"origin": b"null"},
            {b"origin": b"http://127.0.0.1:1"},
            {b"referer": b"http://evil.example/dashboard/"},
        ):
            status, _, body = yield self.request(
                control, b"POST", b"/dashboard/connect", target, headers=headers
            )
            self.assertEqual(status, 403, headers)
            self.assertIn(b"Forbidden", body)
        self.assertEqual(node.peers(), [])
        # A Referer from the page itself will do.
        status, _, _ = yield self.request(
            control, b"POST", b"/dashboard/ban", {"subnet": "10.9.9.9"},
            headers={b"referer": self.origin(control) + b"/dashboard/"},
        )
        self.assertEqual(status, 303)

    @defer.inlineCallbacks
    def test_disconnectAndBan(self):
        """
        The disconnect form closes the connection to a peer; the ban form
        bans a subnet (for the seconds given); bad input gets error messages.
        """
        node, control = self.startDashboard()
        other = self.startNode(datadir=False)
        yield self.connected(other, node)
        status, headers, _ = yield self.post(control, "disconnect", {"node_id": other.node_id})
        self.assertEqual(status, 303)
        message, ok = self.flash(headers)
        self.assertEqual(ok, "1", message)
        self.assertEqual(node.peers(), [])
        status, headers, _ = yield self.post(control, "disconnect", {"node_id": "ffff"})
        self.assertEqual(self.flash(headers)[1], "0")

        status, headers, _ = yield self.post(control, "ban", {"subnet": "10.0.0.0/8", "seconds": "60"})
        self.assertEqual(status, 303)
        message, ok = self.flash(headers)
        self.assertEqual(ok, "1", message)
        bans = dict(node.bans.bans(node.reactor.seconds()))
        self.assertIn("10.0.0.0/8", bans)
        self.assertTrue(55 < bans["10.0.0.0/8"] - node.reactor.seconds() <= 60, bans)
        state = yield self.state(control)
        self.assertEqual([b["subnet"] for b in state["bans"]], ["10.0.0.0/8"])
        # The page lists the bans as the server renders it (without JavaScript).
        status, _, body = yield self.request(control)
        page = body.decode()
        self.assertIn('<span class="badge" id="ban-count">1</span>', page)
        self.assertRegex(page, r"<tr><td>10\.0\.0\.0/8</td><td>\d+ s left</td></tr>")
        self.assertNotIn("No bans.", page)
        for form in ({"subnet": "nonsense"}, {"subnet": "10.1.1.1", "seconds": "-5"}, {}):
            status, headers, _ = yield self.post(control, "ban", form)
            self.assertEqual((status, self.flash(headers)[1]), (303, "0"), form)


class SameOriginTests(unittest.TestCase):
    def check(self, headers: dict) -> bool:
        from twisted.web.test.requesthelper import DummyRequest

        request = DummyRequest([b""])
        for name, value in headers.items():
            request.requestHeaders.addRawHeader(name, value)
        return sameOrigin(request)

    def test_sameOrigin(self):
        host = {b"host": b"127.0.0.1:8080"}
        self.assertTrue(self.check({**host, b"origin": b"http://127.0.0.1:8080"}))
        self.assertTrue(self.check({**host, b"referer": b"https://127.0.0.1:8080/dashboard/"}))
        self.assertFalse(self.check({**host, b"origin": b"http://127.0.0.1:8081"}))
        self.assertFalse(self.check({**host, b"origin": b"null"}))
        self.assertFalse(self.check({**host, b"origin": b"ftp://127.0.0.1:8080"}))
        self.assertFalse(self.check(host))
        self.assertFalse(self.check({b"origin": b"http://127.0.0.1:8080"}))


# -- in a real browser --------------------------------------------------------------


def _artifacts() -> Path:
    path = Path(os.environ.get("BITP2P_ARTIFACTS") or ROOT / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


class BrowserTests(unittest.TestCase):
    """
    The page in headless Chromium (Debian's, driven by Playwright), with
    nodes in subprocesses (tests/dashboard_node.py).
    """

    def startProcess(self, *args: str) -> dict:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "dashboard_node.py"), PASSWORD, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

        self.addCleanup(stopProcess, proc, True, 5)
        line = firstLine(proc, "the node process")
        return json.loads(line)

    def test_liveDashboard(self):
        """
        The page shows the node; a peer that connects appears in the table
        without a reload; the connect form dials a third node; the graph
        draws the peers; screenshots go to BITP2P_ARTIFACTS.
        """
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            self.fail(
                "the browser test needs Playwright: .venv/bin/pip install playwright "
                "(no `playwright install`: it uses the system's chromium)"
            )
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            self.fail("the browser test needs chromium on PATH: run .ci/system-deps (as root)")

        first = self.startProcess()
        artifacts = _artifacts()
        url = f"http://127.0.0.1:{first['http']}/"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                self.drive(browser, url, first, artifacts)
            finally:
                browser.close()

    def drive(self, browser, url: str, first: dict, artifacts: Path) -> None:
        from playwright.sync_api import expect

        context = browser.new_context(
            http_credentials={"username": "bitp2p", "password": PASSWORD},
            viewport={"width": 1280, "height": 1000},
        )
        context.set_default_timeout(10_000)
        expect.set_options(timeout=10_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "console",
            lambda m: errors.append(m.text) if m.type == "error" else None,
        )
        page.goto(url)  # the site's root: the dashboard
        expect(page).to_have_url(url + "dashboard/")
        expect(page.locator("#node code.nodeid")).to_have_text(first["node_id"])
        expect(page.locator("#live-text")).to_have_text("live")
        expect(page.locator("#peers tbody tr.empty")).to_have_count(1)

        # A second node dials the first: the table shows it, no reload.
        page.evaluate("window.__sameDocument = true")
        second = self.startProcess("--connect", f"127.0.0.1:{first['p2p']}")
        row = page.locator(f'#peers tbody tr[data-node-id="{second["node_id"]}"]')
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(2)).to_have_text("inbound")
        self.assertTrue(page.evaluate("window.__sameDocument === true"), "the page reloaded")

        # The connect form dials a third.
        third = self.startProcess()
        page.fill("#target", f"127.0.0.1:{third['p2p']}")
        page.click("#connect-form button")
        expect(page.locator("#flash")).to_contain_text(third["node_id"])
        row3 = page.locator(f'#peers tbody tr[data-node-id="{third["node_id"]}"]')
        expect(row3).to_have_count(1)
        expect(row3.locator("td").nth(2)).to_have_text("outbound")
        expect(page.locator("#peer-count")).to_have_text("2")

        # The graph: this node in the centre, a circle per peer.
        expect(page.locator("#graph circle.self")).to_have_count(1)
        expect(page.locator("#graph circle.peer")).to_have_count(2)
        for info in (second, third):
            expect(
                page.locator(f'#graph circle.peer[data-id="peer:{info["node_id"]}"]')
            ).to_have_count(1)
        expect(page.locator("#traffic polyline.series").first).to_be_visible()
        # Peers are labelled by their address (the node id in the tooltip).
        expect(page.locator("#graph text", has_text=f"127.0.0.1:{second['p2p']}")).to_have_count(1)
        expect(page.locator("#graph text", has_text=f"127.0.0.1:{third['p2p']}")).to_have_count(1)
        # Every label of the chart and the graph is at least 11 px on screen.
        sizes = page.evaluate(
            """() => Array.from(document.querySelectorAll("#traffic text, #graph text"), (t) => {
                const svg = t.ownerSVGElement;
                const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
                return parseFloat(getComputedStyle(t).fontSize) * scale;
            })"""
        )
        self.assertGreater(len(sizes), 5)
        self.assertGreaterEqual(min(sizes), 11, sizes)
        page.wait_for_timeout(1600)  # one more poll: a longer traffic line
        page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

        # The per-row disconnect button.
        row.locator("button").click()
        expect(row).to_have_count(0)
        expect(page.locator("#peer-count")).to_have_text("1")
        self.assertEqual(errors, [])
        # Credentials that stop working (the node restarted with a new
        # cookie): the page says so, rather than "disconnected".
        page.route("**/dashboard/state", lambda route: route.fulfill(status=401, body=""))
        expect(page.locator("#live-text")).to_contain_text("credentials needed")
        page.unroute("**/dashboard/state")
        context.close()

        # Without JavaScript: the server's rendering, forms posted as such.
        plain = browser.new_context(
            http_credentials={"username": "bitp2p", "password": PASSWORD},
            java_script_enabled=False,
            viewport={"width": 1280, "height": 1000},
        )
        plain.set_default_timeout(10_000)
        page = plain.new_page()
        page.goto(url)
        expect(page.locator(f'#peers tr[data-node-id="{third["node_id"]}"]')).to_have_count(1)
        page.fill("#subnet", "10.66.0.0/16")
        page.click("#ban-form button")
        expect(page.locator("#flash")).to_contain_text("Banned 10.66.0.0/16")
        expect(page.locator("#bans tbody tr", has_text="10.66.0.0/16")).to_have_count(1)
        page.screenshot(path=str(artifacts / "dashboard-nojs.png"), full_page=True)
        plain.close()

        # Without credentials: a page that says which are needed and where.
        anonymous = browser.new_context(viewport={"width": 1280, "height": 1000})
        anonymous.set_default_timeout(10_000)
        # (Headless Chromium aborts a navigation answered 401 with no
        # credentials to offer, where a desktop one shows the page once the
        # login prompt is cancelled: the page is fetched, then shown.)
        response = anonymous.request.get(url)
        self.assertEqual(response.status, 401)
        self.assertEqual(response.headers["www-authenticate"], 'Basic realm="bitp2p"')
        page = anonymous.new_page()
        page.set_content(response.text())
        expect(page.locator("h1")).to_have_text("Credentials needed")
        expect(page.locator("body")).to_contain_text("--rpc-password")
        expect(page.locator("body")).to_contain_text(".cookie")
        anonymous.close()
