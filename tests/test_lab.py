"""
The lab (L{bitp2p.ops.lab}): its nodes, links, partition and broadcasts
with real nodes on loopback (trial, the real reactor); its HTTP API with
twisted.web's Agent; its command line in subprocesses; and the page in a
real headless Chromium driven by Playwright against a lab in a subprocess.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import server
from twisted.web.client import Agent
from twisted.web.http_headers import Headers

from bitp2p.ops.lab.service import Lab, LabError
from bitp2p.ops.lab.web import labResource, loopbackHost
from bitp2p.ops.lab.tap import Options
from bitp2p.ops.tap import UsageFailure

from .helpers import firstLine, stopProcess, tempDir
from .test_control import _Body, readBody

ROOT = Path(__file__).resolve().parent.parent


def _ephemeralLow() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_BELOW = max(_ephemeralLow(), 20000)


def _freeBase(span: int = 20) -> int:
    """
    A port from which C{span} ports were free a moment ago.
    """
    # Below the kernel's ephemeral range (32768 and up on Linux): while other
    # tests run, thousands of their connections sit in TIME_WAIT on ports of
    # that range, which nothing may listen on (SO_REUSEADDR or not).
    low, high = _EPHEMERAL_BELOW - 12000, _EPHEMERAL_BELOW - span
    for _ in range(50):
        base = random.randrange(low, high)
        free = True
        for port in range(base, base + span):
            s = socket.socket()
            # As listenTCP does: a port held only by connections in
            # TIME_WAIT (plenty, while other tests run) is free to listen on.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                free = False
            finally:
                s.close()
            if not free:
                break
        if free:
            return base
    raise RuntimeError("no free range of ports")


class LabTestCase(TestCase):
    timeout = 30

    def makeLab(self, **kwargs) -> Lab:
        lab = Lab(tempDir(self), basePort=_freeBase(), reactor=reactor, **kwargs)
        lab.startService()
        self.addCleanup(lab.stopService)
        return lab

    @defer.inlineCallbacks
    def until(self, condition, what: str, seconds: float = 15.0):
        """
        Wait (bounded) until C{condition()} is true.
        """
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            yield task.deferLater(reactor, 0.05, lambda: None)

    def ports(self, lab: Lab, port: int) -> set[int]:
        return {p["port"] for p in next(n for n in lab.state()["nodes"] if n["port"] == port)["peers"]}

    def texts(self, lab: Lab) -> list[str]:
        return [e["text"] for e in lab.events]


class LabTests(LabTestCase):
    def test_startOnNextFreePort(self):
        """
        Without a port, a node starts on the first free one from the base
        port, skipping a port some other program holds and the lab's own.
        """
        lab = self.makeLab()
        busy = socket.socket()
        busy.bind(("127.0.0.1", lab.basePort))
        busy.listen(1)
        self.addCleanup(busy.close)
        first = lab.startNode()
        self.assertEqual(first.port, lab.basePort + 1)
        second = lab.startNode()
        self.assertEqual(second.port, lab.basePort + 2)
        self.assertEqual(first.node.listeningPort, first.port)
        self.assertTrue((lab.directory / str(first.port)).is_dir())
        self.assertIn(f"{first.port} started", self.texts(lab)[0])

    def test_startOnBusyOrTakenPort(self):
        """
        A port in use, or a lab node's already, is one clear error; nothing
        is added.
        """
        lab = self.makeLab()
        busy = socket.socket()
        busy.bind(("127.0.0.1", lab.basePort + 5))
        busy.listen(1)
        self.addCleanup(busy.close)
        with self.assertRaises(LabError) as caught:
            lab.startNode(lab.basePort + 5)
        self.assertIn(f"cannot listen on 127.0.0.1:{lab.basePort + 5}", str(caught.exception))
        self.assertEqual(lab.nodes, {})
        node = lab.startNode(lab.basePort + 6)
        with self.assertRaises(LabError) as caught:
            lab.startNode(node.port)
        self.assertIn("already lab node", str(caught.exception))
        with self.assertRaises(LabError):
            lab.startNode(70000)

    @defer.inlineCallbacks
    def test_discovery(self):
        """
        Three nodes connected in a chain end up knowing each other; the
        feed says who connected to whom, in which direction, and who learned
        which address from whom.
        """
        lab = self.makeLab()
        a, b, c = (lab.startNode().port for _ in range(3))
        yield lab.connect(b, a)
        yield lab.connect(c, b)
        everyone = {a, b, c}
        yield self.until(
            lambda: all(
                {int(x.rsplit(":", 1)[1]) for x in n.known} == everyone - {n.port}
                for n in lab.nodes.values()
            ),
            "discovery",
        )
        texts = self.texts(lab)
        self.assertIn(f"{b} connected to {a} (outbound)", texts)
        self.assertIn(f"{a} connected to {b} (inbound)", texts)
        # c learned a's address from b (the only one that knew it then).
        self.assertIn(f"{c} learned 127.0.0.1:{a} from {b}", texts)
        state = lab.state()
        self.assertEqual([n["known"] for n in state["nodes"]], [2, 2, 2])
        self.assertIn({"from": b, "to": a, "kind": "manual"}, state["links"])

    @defer.inlineCallbacks
    def test_stopKillRestart(self):
        """
        Stop saves the node's tables; kill resets its connections and saves
        nothing; restart brings it back on its port with its data directory
        (the same node id).
        """
        lab = self.makeLab()
        a, b = lab.startNode(), lab.startNode()
        yield lab.connect(b.port, a.port)
        yield self.until(lambda: len(b.known) == 1 and len(a.known) == 1, "learning")
        idB = b.node.node_id

        lab.killNode(b.port)
        self.assertEqual(b.state, "crashed")
        self.assertIsNone(b.node)
        yield self.until(lambda: not a.node.peers(), "the crash seen by the other node")
        self.assertFalse((b.datadir / "peers.json").exists(), "a killed node saved its tables")
        self.assertTrue(any(t.startswith(f"{a.port} disconnected from {b.port}") for t in self.texts(lab)))
        with self.assertRaises(LabError):
            lab.killNode(b.port)

        yield lab.restartNode(b.port)
        self.assertEqual(b.state, "running")
        self.assertEqual(b.node.node_id, idB)
        self.assertEqual(b.node.listeningPort, b.port)
        self.assertEqual(b.known, set(), "the crash kept the address table")

        yield lab.connect(b.port, a.port)
        yield self.until(lambda: len(b.known) == 1, "learning again")
        yield lab.stopNode(b.port)
        self.assertEqual(b.state, "stopped")
        self.assertTrue((b.datadir / "peers.json").exists(), "a stopped node did not save")
        restarted = yield lab.restartNode(b.port)
        self.assertEqual(restarted.node.node_id, idB)
        self.assertEqual(len(b.known), 1, "the restarted node lost its saved table")

    @defer.inlineCallbacks
    def test_disconnectAndBan(self):
        """
        Disconnect closes one link; a ban closes it and keeps it closed when
        it forms again, until unbanned.
        """
        lab = self.makeLab()
        a, b = lab.startNode().port, lab.startNode().port
        yield lab.connect(b, a)
        yield lab.disconnect(a, b)
        yield self.until(lambda: not self.ports(lab, a) and not self.ports(lab, b), "the disconnect")
        with self.assertRaises(LabError):
            lab.disconnect(a, b)

        yield lab.connect(b, a)
        lab.ban(a, b)
        yield self.until(lambda: not self.ports(lab, a), "the ban's cut")
        self.assertEqual(lab.blocked(b, a), "ban")
        with self.assertRaises(LabError):
            lab.connect(b, a)
        # A connection made anyway (by the node itself) is dropped at once.
        lab.nodes[b].node.connect(f"127.0.0.1:{a}").addErrback(lambda _: None)
        yield self.until(lambda: any("drops" in t for t in self.texts(lab)), "a drop")
        yield self.until(lambda: not self.ports(lab, a), "the re-cut")
        lab.unban(a, b)
        yield lab.connect(b, a)
        self.assertEqual(self.ports(lab, b), {a})

    @defer.inlineCallbacks
    def test_partitionAndHeal(self):
        """
        A partition closes every connection across its two halves (lower
        ports, upper ports) and keeps them closed; heal lets them form again.
        """
        lab = self.makeLab()
        ports = [lab.startNode().port for _ in range(4)]
        for other in ports[1:]:
            yield lab.connect(other, ports[0])
        yield lab.connect(ports[3], ports[2])
        one, two = lab.partition()
        self.assertEqual((one, two), (ports[:2], ports[2:]))
        yield self.until(
            lambda: all(self.ports(lab, p) <= set(one) for p in one)
            and all(self.ports(lab, p) <= set(two) for p in two),
            "the partition",
        )
        self.assertEqual(self.ports(lab, ports[3]), {ports[2]})
        with self.assertRaises(LabError):
            lab.connect(ports[3], ports[0])
        lab.heal()
        yield lab.connect(ports[3], ports[0])
        self.assertIn(ports[0], self.ports(lab, ports[3]))
        self.assertIsNone(lab.state()["partition"])
        with self.assertRaises(LabError):
            lab.heal()

    @defer.inlineCallbacks
    def test_broadcast(self):
        """
        A broadcast from one end of a chain reaches every node; each
        receipt is recorded with its hop number.
        """
        lab = self.makeLab()
        ports = [lab.startNode().port for _ in range(3)]
        # (The nodes may also dial the addresses they learn: the last one
        # may then be one hop away too.)
        yield lab.connect(ports[1], ports[0])
        yield lab.connect(ports[2], ports[1])
        bid = lab.broadcast(ports[0], "hello")
        record = lab.broadcasts[bid]
        yield self.until(lambda: len(record["reached"]) == 3, "the broadcast everywhere")
        self.assertEqual(record["reached"][ports[0]]["hop"], 0)
        self.assertEqual(record["reached"][ports[1]]["hop"], 1)
        self.assertIn(record["reached"][ports[2]]["hop"], (1, 2))
        self.assertIn(record["reached"][ports[2]]["from"], ports[:2])
        self.assertTrue(any(t.startswith(f"{ports[1]} received {bid} from {ports[0]} (hop 1") for t in self.texts(lab)))


class BitcoinNetworkTests(LabTestCase):
    @defer.inlineCallbacks
    def test_regtest(self):
        """
        On a Bitcoin network the nodes speak Bitcoin's protocol; a broadcast
        (bitp2p's own gossip) is refused with one line.
        """
        lab = Lab(tempDir(self), network="regtest", basePort=_freeBase(), reactor=reactor)
        lab.startService()
        self.addCleanup(lab.stopService)
        a, b = lab.startNode().port, lab.startNode().port
        yield lab.connect(b, a)
        self.assertEqual(self.ports(lab, b), {a})
        self.assertEqual(lab.nodes[a].node.config.network, "regtest")
        with self.assertRaises(LabError) as caught:
            lab.broadcast(a)
        self.assertIn("regtest network does not carry", str(caught.exception))
        self.assertFalse(lab.state()["gossip"])


class EventFeedTests(SynchronousTestCase):
    def test_bounded(self):
        """
        The feed keeps the newest events only, and says when some asked
        for were dropped.
        """
        lab = Lab(self.mktemp(), reactor=task.Clock(), maxEvents=5)
        for i in range(12):
            lab.record("node", None, f"event {i}")
        events, missed = lab.eventsSince(0)
        self.assertEqual([e["text"] for e in events], [f"event {i}" for i in range(7, 12)])
        self.assertTrue(missed)
        events, missed = lab.eventsSince(9)
        self.assertEqual([e["seq"] for e in events], [10, 11, 12])
        self.assertFalse(missed)
        self.assertEqual(lab.eventsSince(12), ([], False))

    def test_loopbackHost(self):
        for host in (b"127.0.0.1:8080", b"localhost:8080", b"LOCALHOST", b"[::1]:8080", b"127.1.2.3"):
            self.assertTrue(loopbackHost(host), host)
        for host in (None, b"", b"evil.example:8080", b"127.0.0.1.evil.example", b"10.0.0.1:8080",
                     b"[::2]:80", b"localhost:80x", b"0.0.0.0:8080"):
            self.assertFalse(loopbackHost(host), host)

    def test_options(self):
        """
        Bad options end with one line, no traceback.
        """
        for argv, text in (
            (["--nodes", "x"], "--nodes must be a whole number"),
            (["--web-port", "70000"], "--web-port must be a whole number in 0..65535"),
            (["--network", "moon"], "--network must be one of"),
            (["--base-port", "0"], "--base-port must be"),
            (["--bogus"], "option --bogus not recognized"),
        ):
            options = Options()
            with self.assertRaises(UsageFailure) as caught:
                options.parseOptions(argv)
            message = str(caught.exception)
            self.assertIn(text, message)
            self.assertNotIn("\n", message)
        options = Options()
        options.parseOptions(["--nodes", "3", "--network", "regtest", "--web-port", "0"])
        self.assertEqual((options["nodes"], options["network"], options["web-port"]), (3, "regtest", 0))


class LabHTTPTests(LabTestCase):
    def serve(self):
        lab = self.makeLab()
        port = reactor.listenTCP(0, server.Site(labResource(lab)), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return lab, port.getHost().port

    def request(self, web: int, method: bytes, path: bytes, body=None, host: bytes | None = None,
                origin: bytes | None | bool = True):
        headers = Headers()
        if host is not None:
            headers.addRawHeader(b"host", host)
        if origin is True:
            origin = b"http://127.0.0.1:%d" % web
        if origin:
            headers.addRawHeader(b"origin", origin)
        producer = None
        if body is not None:
            headers.addRawHeader(b"content-type", b"application/json")
            producer = _Body(body if isinstance(body, bytes) else json.dumps(body).encode())
        url = b"http://127.0.0.1:%d%s" % (web, path)
        d = Agent(reactor).request(method, url, headers, producer)
        return d.addCallback(lambda r: readBody(r).addCallback(lambda b: (r.code, r.headers, b)))

    @defer.inlineCallbacks
    def test_api(self):
        """
        Start, connect and look through the API; errors are one line of
        JSON with a 400.
        """
        lab, web = self.serve()
        code, _, body = yield self.request(web, b"POST", b"/api/start", {})
        self.assertEqual((code, json.loads(body)["ok"]), (200, True))
        code, _, body = yield self.request(web, b"POST", b"/api/start", {})
        a, b = sorted(lab.nodes)
        code, _, body = yield self.request(web, b"POST", b"/api/connect", {"a": b, "b": a})
        self.assertEqual(json.loads(body), {"ok": True, "message": f"{b} connected to {a}"})
        code, headers, body = yield self.request(web, b"GET", b"/api/state")
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        state = json.loads(body)
        self.assertEqual([n["port"] for n in state["nodes"]], [a, b])
        self.assertIn({"from": b, "to": a, "kind": "manual"}, state["links"])
        code, _, body = yield self.request(web, b"GET", b"/api/node?port=%d" % a)
        snap = json.loads(body)
        self.assertEqual(snap["node"]["listening"], f"127.0.0.1:{a}")
        self.assertEqual([p["address"] for p in snap["peers"]], [f"127.0.0.1:{b}"])
        code, _, body = yield self.request(web, b"GET", b"/api/events?since=0")
        texts = [e["text"] for e in json.loads(body)["events"]]
        self.assertIn(f"{b} connected to {a} (outbound)", texts)

        for path, payload, message in (
            (b"/api/stop", {"port": 1}, "no lab node on port 1"),
            (b"/api/stop", {}, "give a node's port"),
            (b"/api/connect", {"a": a, "b": "x"}, "not a port: 'x'"),
            (b"/api/start", b"[1", "the body must be a JSON object"),
            (b"/api/connect", {"a": a, "b": a}, "a node cannot connect to itself"),
        ):
            code, _, body = yield self.request(web, b"POST", path, payload)
            self.assertEqual((code, json.loads(body)), (400, {"ok": False, "message": message}), path)
        code, _, body = yield self.request(web, b"GET", b"/api/node?port=1")
        self.assertEqual(code, 404)
        code, _, body = yield self.request(web, b"GET", b"/api/events?since=x")
        self.assertEqual(code, 400)

    @defer.inlineCallbacks
    def test_refusesCrossSiteAndRebinding(self):
        """
        A POST from another origin, or without one, is refused (403); any
        request for a host that is not loopback is refused (421): nothing
        starts.
        """
        lab, web = self.serve()
        for origin in (b"http://evil.example", False, b"null"):
            code, _, body = yield self.request(web, b"POST", b"/api/start", {}, origin=origin)
            self.assertEqual(code, 403, origin)
        evil = b"evil.example:%d" % web
        for method, path in ((b"GET", b"/"), (b"GET", b"/api/state"), (b"POST", b"/api/start")):
            code, _, body = yield self.request(
                web, method, path, {} if method == b"POST" else None, host=evil,
                origin=b"http://" + evil,
            )
            self.assertEqual(code, 421, path)
        self.assertEqual(lab.nodes, {})

    @defer.inlineCallbacks
    def test_page(self):
        """
        The page lists the nodes without JavaScript and says what it needs;
        its headers forbid framing and foreign scripts.
        """
        lab, web = self.serve()
        port = lab.startNode().port
        code, headers, body = yield self.request(web, b"GET", b"/")
        page = body.decode()
        self.assertEqual(code, 200)
        self.assertIn(f'<li data-port="{port}"><strong>{port}</strong> running', page)
        self.assertIn("<noscript>", page)
        self.assertIn("needs JavaScript", page)
        self.assertIn(b"script-src 'self'", headers.getRawHeaders(b"content-security-policy")[0])
        for name in (b"/app.js", b"/style.css"):
            code, _, body = yield self.request(web, b"GET", name)
            self.assertEqual(code, 200)
            self.assertTrue(body)


class CommandLineTests(unittest.TestCase):
    def run_(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bitp2p", "lab", *args],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        )

    def test_busyWebPort(self):
        """
        A busy web port: one line, status 1.
        """
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        done = self.run_("--web-port", str(port))
        self.assertEqual(done.returncode, 1)
        self.assertEqual(
            done.stderr.strip().splitlines(),
            [f"bitp2p: lab: cannot listen on 127.0.0.1:{port}: address already in use"],
        )

    def _logOf(self, command: list[str], stream: str, until: str, seconds: float = 20) -> str:
        """
        Run C{command} until its C{stream} has said C{until} (bounded), stop
        it with SIGTERM, and return all that stream said.
        """
        process = subprocess.Popen(
            command, cwd=tempDir(self), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.addCleanup(lambda: process.poll() is not None or process.kill())
        fd = getattr(process, stream).fileno()
        seen = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and until.encode() not in seen:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 65536)  # unbuffered: select sees all there is
                if not chunk:
                    break
                seen += chunk
        process.terminate()
        rest = process.communicate(timeout=seconds)[0 if stream == "stdout" else 1]
        text = seen.decode() + (rest or "")
        self.assertIn(until, text)
        return text

    def test_logsAsANodesWithoutTwistedsChatter(self):
        """
        C{bitp2p lab} logs on standard error, and C{twistd -n bitp2p-lab} on
        standard output, what a node would (its connections at info), and
        none of Twisted's talk of its own machinery: no factory starting or
        stopping, no port closed, no main loop terminated.
        """
        web = lambda: str(_freeBase())  # noqa: E731
        lab = self._logOf(
            [sys.executable, "-m", "bitp2p", "lab", "--nodes", "2", "--web-port", "0",
             "--base-port", web()],
            "stderr", "Connected to",
        )
        twistd = self._logOf(
            [os.path.join(os.path.dirname(sys.executable), "twistd"), "-n", "--pidfile=",
             "bitp2p-lab", "--nodes", "2", "--web-port", "0", "--base-port", web()],
            "stdout", "Connected to",
        )
        for text in (lab, twistd):
            self.assertIn("listening on 127.0.0.1:", text)
            for chatter in ("factory", "Port", "starting on", "Main loop terminated"):
                self.assertNotIn(chatter, text)
        quiet = self.run_("--nodes", "1", "--web-port", "0", "--log-level", "nonsense")
        self.assertEqual(quiet.returncode, 1)
        self.assertIn("--log-level must be one of", quiet.stderr)

    def test_badOption(self):
        done = self.run_("--nodes", "-1")
        self.assertEqual(done.returncode, 1)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        self.assertIn("--nodes must be a whole number", done.stderr)


# -- in a real browser --------------------------------------------------------------


def _screenshots() -> Path:
    """
    Where the screenshots go: docs/ when BITP2P_LAB_SCREENSHOTS=docs (run by
    hand to refresh the README's), else the test artifacts.
    """
    if os.environ.get("BITP2P_LAB_SCREENSHOTS") == "docs":
        return ROOT / "docs"
    path = Path(os.environ.get("BITP2P_ARTIFACTS") or ROOT / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


class BrowserTests(unittest.TestCase):
    """
    The page in headless Chromium (Debian's, driven by Playwright), with the
    lab in a subprocess (C{python -m bitp2p lab --web-port 0}).
    """

    def startLab(self) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bitp2p", "lab", "--web-port", "0", "--base-port", str(_freeBase())],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        )

        self.addCleanup(stopProcess, proc)
        line = firstLine(proc, "the lab")
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line.decode())
        self.assertIsNotNone(match, line)
        return match.group(1)

    def test_liveLab(self):
        """
        Five nodes started from the page and connected in a chain discover
        each other: the graph shows five nodes, their links and four known
        addresses each, and each node's own view lists the four others. The
        keyboard selects a node; the feed filters and pauses; a narrow
        window does not scroll sideways; without JavaScript the page says
        what it needs and lists the nodes.
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

        url = self.startLab()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                self.drive(browser, url, _screenshots())
            finally:
                browser.close()

    def drive(self, browser, url: str, shots: Path) -> None:
        from playwright.sync_api import expect

        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        expect.set_options(timeout=15_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        expect(page.locator("#live-text")).to_contain_text("live")

        # Five nodes, from the page, on the next free ports.
        for count in range(1, 6):
            page.click("#start")
            expect(page.locator("#graph g.node")).to_have_count(count)
        ports = [int(p) for p in page.locator("#graph g.node").evaluate_all(
            "gs => gs.map(g => g.dataset.port)")]
        self.assertEqual(len(set(ports)), 5)

        # A chain: each dials the one before.
        for before, after in zip(ports, ports[1:]):
            page.select_option("#link-a", str(after))
            page.select_option("#link-b", str(before))
            page.click("#connect")
            expect(page.locator("#flash")).to_have_text(f"{after} connected to {before}")
            expect(page.locator(f'#graph line.link[data-from="{after}"][data-to="{before}"]')).to_have_count(1)

        # Discovery completes: every label says four addresses.
        for port in ports:
            expect(page.locator(f'#graph g.node[data-port="{port}"] text.known')).to_have_text(
                re.compile(r"^4 addr · "), timeout=30_000
            )
        self.assertGreaterEqual(page.locator("#graph line.link").count(), 4)
        expect(page.locator("#events li.learn").first).to_be_visible()

        # From the nodes themselves: each knows every other.
        state = page.request.get(url + "api/state").json()
        self.assertEqual([n["known"] for n in state["nodes"]], [4] * 5)
        for port in ports:
            snap = page.request.get(url + f"api/node?port={port}").json()
            self.assertEqual(
                {k["address"] for k in snap["known"]},
                {f"127.0.0.1:{p}" for p in ports if p != port},
            )

        # The keyboard: a node in the graph takes focus and Enter selects it.
        node = page.locator(f'#graph g.node[data-port="{ports[2]}"]')
        node.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#detail-port")).to_have_text(str(ports[2]))
        expect(page.locator("#detail-known tbody tr")).to_have_count(4)
        expect(page.locator("#detail-peers tbody tr").first).to_be_visible()

        # The feed: a filter, a pause.
        page.fill("#filter", f"{ports[4]} learned")
        expect(page.locator("#events li").first).to_contain_text(f"{ports[4]} learned")
        for text in page.locator("#events li").all_inner_texts():
            self.assertIn(f"{ports[4]} learned", text)
        page.fill("#filter", "")
        page.click("#pause")
        expect(page.locator("#pause")).to_have_attribute("aria-pressed", "true")
        shown = page.locator("#events li").count()
        page.select_option("#node-select", str(ports[0]))
        page.click("#broadcast")
        expect(page.locator(f'#graph g.node[data-port="{ports[4]}"] text.hop')).to_be_visible()
        self.assertEqual(page.locator("#events li").count(), shown, "the paused feed moved")
        page.click("#pause")
        expect(page.locator("#events li.receive").first).to_be_visible()
        page.screenshot(path=str(shots / "lab.png"), full_page=True)

        # A narrow window: no sideways scrolling.
        page.set_viewport_size({"width": 400, "height": 900})
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "lab-narrow.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        # Kill (a crash) and restart the last node, from the page.
        page.select_option("#node-select", str(ports[4]))
        page.click("#kill")
        expect(page.locator(f'#graph g.node.crashed[data-port="{ports[4]}"]')).to_have_count(1)
        expect(page.locator(f'#graph line.link[data-from="{ports[4]}"]')).to_have_count(0)
        expect(page.locator("#events li.node", has_text=f"{ports[4]} killed")).to_have_count(1)
        page.click("#restart")
        expect(page.locator(f'#graph g.node.running[data-port="{ports[4]}"]')).to_have_count(1)
        page.set_viewport_size({"width": 400, "height": 900})
        width = page.evaluate("document.documentElement.scrollWidth")
        wide = page.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 401)"
            ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"
        )
        self.assertLessEqual(width, 400, wide)
        self.assertEqual(errors, [])
        context.close()

        # Without JavaScript: what the page needs, and the nodes as a list.
        plain = browser.new_context(java_script_enabled=False, viewport={"width": 1000, "height": 700})
        plain.set_default_timeout(15_000)
        page = plain.new_page()
        page.goto(url)
        expect(page.locator("#nojs")).to_contain_text("needs JavaScript")
        expect(page.locator("#node-list li")).to_have_count(5)
        expect(page.locator(f'#node-list li[data-port="{ports[0]}"]')).to_contain_text("knows 4 addresses")
        plain.close()
