"""
The control API (L{bitp2p.ops.control}) over real HTTP: real nodes on loopback,
a real L{ControlService}, requests made with twisted.web's L{Agent}.

These are trial TestCases run by the real reactor; they run under trial and
under pytest. Every wait is bounded.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat

from twisted.internet import defer, reactor, task
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import server
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer

from bitp2p import __version__
from bitp2p.address import Address
from bitp2p.constants import (
    COOKIE_FILE,
    HTTP_IDLE_TIMEOUT_S,
    HTTP_REQUEST_DEADLINE_S,
    MAX_HTTP_CONNECTIONS,
    MAX_HTTP_CONNECTIONS_PER_HOST,
    RPC_PORT_FILE,
)
from bitp2p.ops.control import (
    AUTH_FAILURE_DELAY_S,
    AUTH_FAILURE_WINDOW_S,
    AUTH_FAILURES_ALLOWED,
    MAX_BODY_BYTES,
    Authenticator,
    ControlService,
)
from bitp2p.ops.control.auth import DENIED_PAGE
from bitp2p.node import Node, NodeConfig
from bitp2p.peer import Peer

from .helpers import learn, tempDir

# No seeds, no automatic outbound connections: every connection in these
# tests is made by the test (or the API it drives).
QUIET = dict(seeds=(), interface="127.0.0.1", max_outbound=0)


@implementer(IBodyProducer)
class _Body:
    """
    A request body written at once; of unknown length (sent chunked) if
    C{chunked}.
    """

    def __init__(self, data: bytes, chunked: bool = False) -> None:
        self.data = data
        self.length = UNKNOWN_LENGTH if chunked else len(data)

    def startProducing(self, consumer):
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class _Collect(Protocol):
    """
    Gathers a response body (twisted.web.client.readBody does the same, but
    warns, with Agent's transports, of a missing abortConnection).
    """

    def __init__(self, done: defer.Deferred) -> None:
        self.done = done
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)


def readBody(response) -> defer.Deferred:
    done: defer.Deferred = defer.Deferred()
    response.deliverBody(_Collect(done))
    return done


class _Text(Resource):
    isLeaf = True

    def __init__(self, text: bytes) -> None:
        super().__init__()
        self.text = text

    def render_GET(self, request) -> bytes:
        return self.text


def basic(credentials: str) -> bytes:
    return b"Basic " + base64.b64encode(credentials.encode())


class ControlTestCase(TestCase):
    timeout = 30

    def startNode(self, datadir: bool = True, **config) -> Node:
        config = {**QUIET, **config}
        if datadir:
            config["datadir"] = tempDir(self)
        node = Node(NodeConfig(port=0, **config))
        node.startService()
        self.addCleanup(lambda: node.stopService() if node.running else None)
        return node

    def startControl(self, node: Node, **kwargs) -> ControlService:
        control = ControlService(node, "tcp:0:interface=127.0.0.1", **kwargs)
        control.startService()
        self.addCleanup(lambda: control.stopService() if control.running else None)
        return control

    def cookie(self, control: ControlService) -> str:
        with open(os.path.join(control.node.config.datadir, COOKIE_FILE)) as f:
            return f.read()

    def request(
        self,
        control: ControlService,
        method: bytes = b"POST",
        body: bytes = b"",
        credentials: str | None = "cookie",
        path: bytes = b"/",
        chunked: bool = False,
    ) -> defer.Deferred:
        """
        One HTTP request to the control API.

        @param credentials: C{"cookie"} for the cookie file's, a C{USER:PASSWORD},
            or L{None} for none.
        @return: a Deferred of C{(status, headers, body)}.
        """
        headers = Headers()
        if credentials is not None:
            if credentials == "cookie":
                credentials = self.cookie(control)
            headers.addRawHeader(b"authorization", basic(credentials))
        url = b"http://127.0.0.1:%d%s" % (control.address.port, path)
        producer = _Body(body, chunked) if method == b"POST" else None
        d = Agent(reactor).request(method, url, headers, producer)

        def got(response):
            return readBody(response).addCallback(
                lambda data: (response.code, response.headers, data)
            )

        return d.addCallback(got)

    def post(self, control: ControlService, payload, **kwargs) -> defer.Deferred:
        """
        POST C{payload} as JSON.

        @return: a Deferred of C{(status, decoded reply)}.
        """
        d = self.request(control, body=json.dumps(payload).encode(), **kwargs)
        return d.addCallback(lambda r: (r[0], json.loads(r[2])))

    def call(self, control: ControlService, method: str, *params, **kwargs) -> defer.Deferred:
        """
        One JSON-RPC call: a Deferred of C{(status, reply)}.
        """
        payload = {"jsonrpc": "1.0", "id": "t", "method": method, "params": list(params)}
        return self.post(control, payload, **kwargs)

    @defer.inlineCallbacks
    def result(self, control: ControlService, method: str, *params):
        """
        The result of a call that must succeed.
        """
        status, reply = yield self.call(control, method, *params)
        self.assertEqual((status, reply["error"]), (200, None), reply)
        self.assertEqual(reply["id"], "t")
        return reply["result"]

    @defer.inlineCallbacks
    def error(self, control: ControlService, method: str, *params, status: int = 500):
        """
        The error of a call that must fail with HTTP C{status}.
        """
        got, reply = yield self.call(control, method, *params)
        self.assertEqual(got, status, reply)
        self.assertIsNone(reply["result"])
        return reply["error"]

    @defer.inlineCallbacks
    def waitFor(self, predicate, what: str, seconds: float = 10.0):
        for _ in range(int(seconds / 0.02)):
            if predicate():
                return
            yield task.deferLater(reactor, 0.02, lambda: None)
        self.fail(f"timed out after {seconds} s waiting for {what}")

    @defer.inlineCallbacks
    def connected(self, dialer: Node, target: Node):
        """
        C{dialer} dials C{target}; wait until C{target} lists it too.

        @return: C{target}'s L{Peer} for C{dialer}.
        """
        yield dialer.connect(str(target.listeningAddress))
        yield self.waitFor(
            lambda: any(p.node_id == dialer.node_id for p in target.peers()), "the handshake"
        )
        return next(p for p in target.peers() if p.node_id == dialer.node_id)


class AuthenticationTests(ControlTestCase):
    @defer.inlineCallbacks
    def test_unauthorisedLearnsNothing(self):
        """
        Without credentials, or with wrong ones, every request gets the same
        401 with a Basic challenge and the same page (which says what
        credentials are needed): a known method, an unknown one, a GET, a
        path that does not exist.
        """
        control = self.startControl(self.startNode())
        known = json.dumps({"method": "getpeerinfo", "params": [], "id": 1}).encode()
        unknown = json.dumps({"method": "nosuchmethod", "params": [], "id": 1}).encode()
        answers = []
        for kwargs in (
            dict(body=known, credentials=None),
            dict(body=known, credentials="bitp2p:wrong"),
            dict(body=unknown, credentials="bitp2p:wrong"),
            dict(body=known, credentials="__cookie__:" + "0" * 64),
            dict(body=b"{not json", credentials="bitp2p:wrong"),
            dict(body=b" " * (MAX_BODY_BYTES + 1), credentials="bitp2p:wrong"),
            dict(method=b"GET", credentials=None),
            dict(method=b"GET", path=b"/metrics", credentials="x:y"),
        ):
            status, headers, body = yield self.request(control, **kwargs)
            self.assertEqual(status, 401, kwargs)
            self.assertEqual(body, DENIED_PAGE)
            self.assertEqual(headers.getRawHeaders(b"www-authenticate"), [b'Basic realm="bitp2p"'])
            answers.append(
                sorted((k, v) for k, v in headers.getAllRawHeaders() if k.lower() != b"date")
            )
        self.assertEqual([a for a in answers if a != answers[0]], [])

    @defer.inlineCallbacks
    def test_cookieFileWhileRunning(self):
        """
        The cookie is in DATADIR/.cookie, mode 0600, while the service runs,
        and authenticates; the port is in .rpcport; both go at stop.
        """
        node = self.startNode()
        control = self.startControl(node)
        path = os.path.join(node.config.datadir, COOKIE_FILE)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertRegex(self.cookie(control), r"\A__cookie__:[0-9a-f]{64}\Z")
        portFile = os.path.join(node.config.datadir, RPC_PORT_FILE)
        with open(portFile) as f:
            self.assertEqual(int(f.read()), control.address.port)
        self.assertEqual((yield self.result(control, "getconnectioncount")), 0)
        yield control.stopService()
        self.assertFalse(os.path.exists(path))
        self.assertFalse(os.path.exists(portFile))
        self.assertIsNone(control.port)

    @defer.inlineCallbacks
    def test_password(self):
        """
        With a password, USER:PASSWORD authenticates (user bitp2p by
        default); a wrong user, a wrong password, or a made-up cookie do not.
        """
        node = self.startNode(datadir=False)
        control = self.startControl(node, password="s3cret")
        status, reply = yield self.call(control, "uptime", credentials="bitp2p:s3cret")
        self.assertEqual(status, 200)
        self.assertIsInstance(reply["result"], int)
        for wrong in ("bitp2p:s3cre", "alice:s3cret", "bitp2p:s3cret ", "__cookie__:s3cret"):
            status, _, body = yield self.request(control, body=b"{}", credentials=wrong)
            self.assertEqual((status, body), (401, DENIED_PAGE), wrong)
        other = self.startControl(node, password="pw", user="alice")
        status, _ = yield self.call(other, "uptime", credentials="alice:pw")
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_cookieAndPasswordTogether(self):
        node = self.startNode()
        control = self.startControl(node, password="pw")
        status, _ = yield self.call(control, "uptime")
        self.assertEqual(status, 200)
        status, _ = yield self.call(control, "uptime", credentials="bitp2p:pw")
        self.assertEqual(status, 200)

    def test_needsADatadirOrAPassword(self):
        node = Node(NodeConfig(port=0, **QUIET))
        with self.assertRaises(ValueError) as e:
            ControlService(node, "tcp:0:interface=127.0.0.1")
        self.assertEqual(
            str(e.exception), "the control API needs --datadir (for its cookie) or --rpc-password"
        )
        self.assertRaises(ValueError, ControlService, node, "tcp:0", password="")
        self.assertRaises(ValueError, ControlService, node, "tcp:0", password="pw", user="a:b")
        self.assertRaises(ValueError, ControlService, node, "nonsense:0", password="pw")

    @defer.inlineCallbacks
    def test_describeAndExtend(self):
        """
        GET /rpc (and GET /, without a home page) describes the API; a
        resource added to the root is served behind the same
        authentication; unknown paths are 404 once authenticated.
        """
        node = self.startNode()
        control = self.startControl(node)
        for path in (b"/rpc", b"/"):
            status, headers, body = yield self.request(control, method=b"GET", path=path)
            self.assertEqual(status, 200)
            self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
            description = json.loads(body)
            self.assertEqual(description["node_id"], node.node_id)
            self.assertEqual(description["version"], __version__)
            self.assertIn("getpeerinfo", description["methods"])
        control.root.putChild(b"metrics", _Text(b"up 1\n"))
        status, _, body = yield self.request(control, method=b"GET", path=b"/metrics")
        self.assertEqual((status, body), (200, b"up 1\n"))
        status, _, body = yield self.request(
            control, method=b"GET", path=b"/metrics", credentials=None
        )
        self.assertEqual((status, body), (401, DENIED_PAGE))
        status, _, _ = yield self.request(control, method=b"GET", path=b"/nothing")
        self.assertEqual(status, 404)


    @defer.inlineCallbacks
    def test_home(self):
        """
        With a home page (the dashboard), a GET of / is redirected to it,
        while JSON-RPC POSTs to / (bitp2p-cli's, bitcoin-cli's) and to /rpc
        still reach the API, and GET /rpc describes it.
        """
        node = self.startNode()
        control = self.startControl(node)
        control.root.putHome(b"dashboard", _Text(b"the page"))
        status, headers, _ = yield self.request(control, method=b"GET")
        self.assertEqual((status, headers.getRawHeaders(b"location")), (302, [b"dashboard/"]))
        status, _, body = yield self.request(control, method=b"GET", path=b"/dashboard")
        self.assertEqual((status, body), (200, b"the page"))
        for path in (b"/", b"/rpc"):
            status, reply = yield self.call(control, "getconnectioncount", path=path)
            self.assertEqual((status, reply["result"]), (200, 0), path)
        status, _, body = yield self.request(control, method=b"GET", path=b"/rpc")
        self.assertEqual((status, json.loads(body)["node_id"]), (200, node.node_id))
        status, _, body = yield self.request(control, method=b"GET", credentials=None)
        self.assertEqual((status, body), (401, DENIED_PAGE))
        self.assertIn(b"__cookie__", DENIED_PAGE)
        self.assertIn(b"--rpc-password", DENIED_PAGE)


class HealthTests(ControlTestCase):
    """
    C{GET /health}: C{up}/C{down} without credentials, and nothing else.
    """

    def get(self, port: int, path: bytes = b"/health", method: bytes = b"GET",
            authorization: bytes | None = None) -> defer.Deferred:
        headers = Headers()
        if authorization is not None:
            headers.addRawHeader(b"authorization", authorization)
        url = b"http://127.0.0.1:%d%s" % (port, path)
        d = Agent(reactor).request(method, url, headers)
        return d.addCallback(
            lambda r: readBody(r).addCallback(lambda data: (r.code, r.headers, data))
        )

    @defer.inlineCallbacks
    def test_upWithoutCredentialsOnEveryPort(self):
        """
        A running, listening node's /health answers 200 C{up} as plain
        text, with no credentials, wrong ones or right ones alike, on the
        --rpc-port and the --web-port; it tells nothing else (no node id).
        """
        node = self.startNode()
        control = ControlService(node, "tcp:0:interface=127.0.0.1")
        control.addEndpoint("tcp:0:interface=127.0.0.1")
        control.startService()
        self.addCleanup(lambda: control.stopService() if control.running else None)
        ports = [control.address.port, control.extraPorts[0].getHost().port]
        cookie = basic(self.cookie(control))
        for port in ports:
            for authorization in (None, basic("bitp2p:wrong"), cookie):
                status, headers, body = yield self.get(port, authorization=authorization)
                self.assertEqual((status, body), (200, b"up\n"), (port, authorization))
                self.assertEqual(
                    headers.getRawHeaders(b"content-type"), [b"text/plain; charset=utf-8"]
                )
                self.assertNotIn(node.node_id.encode(), body)
            status, _, body = yield self.get(port, path=b"/health/")
            self.assertEqual((status, body), (200, b"up\n"))
            status, _, body = yield self.get(port, method=b"HEAD")
            self.assertEqual((status, body), (200, b""))
            # Nothing under it, and nothing but GET and HEAD.
            status, _, body = yield self.get(port, path=b"/health/peers")
            self.assertEqual(status, 404)
            self.assertNotIn(node.node_id.encode(), body)
            status, _, _ = yield self.get(port, method=b"POST")
            self.assertEqual(status, 405)
            # The rest of the tree still wants credentials.
            status, _, body = yield self.get(port, path=b"/rpc")
            self.assertEqual((status, body), (401, DENIED_PAGE))

    @defer.inlineCallbacks
    def test_downWhenTheNodeIsStopped(self):
        """
        Once the node has stopped (the control API still up), /health
        answers 503 C{down}.
        """
        node = self.startNode()
        control = self.startControl(node)
        yield node.stopService()
        status, headers, body = yield self.get(control.address.port)
        self.assertEqual((status, body), (503, b"down\n"))
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"text/plain; charset=utf-8"])

    @defer.inlineCallbacks
    def test_downWhenNotListening(self):
        """
        A running node that should listen but is not listening is down; one
        told not to listen (C{listen=False}) is up while it runs.
        """
        node = self.startNode()
        control = self.startControl(node)
        yield defer.gatherResults(node.connman.stopListening())
        status, _, body = yield self.get(control.address.port)
        self.assertEqual((status, body), (503, b"down\n"))
        quiet = self.startNode(listen=False)
        other = self.startControl(quiet)
        status, _, body = yield self.get(other.address.port)
        self.assertEqual((status, body), (200, b"up\n"))


class HealthAuthTests(SynchronousTestCase):
    """
    /health does not look at credentials: it cannot test a password, does
    not count against the failed-authentication throttle, and does not
    mark a connection as an authenticated client's.
    """

    def render(self, tree, path: bytes, authorization: bytes | None):
        from twisted.web.resource import getChildForRequest

        request = DummyRequest(path.lstrip(b"/").split(b"/"))
        request.client = IPv4Address("TCP", "10.0.0.1", 40000)
        if authorization is not None:
            request.requestHeaders.setRawHeaders(b"authorization", [authorization])
        resource = getChildForRequest(tree, request)
        return request, resource.render(request)

    def test_noThrottleNoAdmission(self):
        from bitp2p.ops.control.auth import Guarded
        from bitp2p.ops.control.site import Health, Root

        admittedRequests = []
        auth = Authenticator(password="pw", reactor=Clock(), onAdmitted=admittedRequests.append)
        tree = Guarded(Root(), auth)
        tree.putOpen(b"health", Health(lambda: True))
        for _ in range(AUTH_FAILURES_ALLOWED + 5):
            request, answer = self.render(tree, b"/health", basic("bitp2p:nope"))
            self.assertEqual((answer, request.responseCode), (b"up\n", 200))
        request, answer = self.render(tree, b"/health", basic("bitp2p:pw"))
        self.assertEqual(answer, b"up\n")
        self.assertEqual(admittedRequests, [])
        # The host's wrong tries at /health did not count: its first wrong
        # try elsewhere is answered at once, not late.
        request, answer = self.render(tree, b"/rpc", basic("bitp2p:nope"))
        self.assertEqual((answer, request.responseCode), (DENIED_PAGE, 401))
        for _ in range(AUTH_FAILURES_ALLOWED):
            self.render(tree, b"/rpc", basic("bitp2p:nope"))
        request, answer = self.render(tree, b"/rpc", basic("bitp2p:nope"))
        self.assertIs(answer, server.NOT_DONE_YET)  # the throttle does work here
        auth.stop()


class ThrottleTests(SynchronousTestCase):
    """
    A host that keeps failing gets its 401s late (on the reactor's clock).
    """

    def deny(self, auth: Authenticator, authorization: bytes | None, host: str = "10.0.0.1"):
        request = DummyRequest([b""])
        request.client = IPv4Address("TCP", host, 40000)
        if authorization is not None:
            request.requestHeaders.setRawHeaders(b"authorization", [authorization])
        self.assertFalse(auth.admit(request))
        return request, auth.deny(request)

    def test_lateAfterTooManyFailures(self):
        clock = Clock()
        auth = Authenticator(password="pw", reactor=clock)
        for _ in range(AUTH_FAILURES_ALLOWED):
            request, answer = self.deny(auth, basic("bitp2p:nope"))
            self.assertEqual((answer, request.responseCode), (DENIED_PAGE, 401))
        request, answer = self.deny(auth, basic("bitp2p:nope"))
        self.assertIs(answer, server.NOT_DONE_YET)
        self.assertEqual(request.finished, 0)
        clock.advance(AUTH_FAILURE_DELAY_S)
        self.assertEqual((request.finished, request.responseCode), (1, 401))
        self.assertEqual(b"".join(request.written), DENIED_PAGE)
        # Other hosts, and requests with no credentials at all, are not slowed.
        self.assertEqual(self.deny(auth, basic("bitp2p:nope"), host="10.0.0.2")[1], DENIED_PAGE)
        self.assertEqual(self.deny(auth, None)[1], DENIED_PAGE)
        # A failing host's late answers end with the window.
        clock.advance(AUTH_FAILURE_WINDOW_S)
        self.assertEqual(self.deny(auth, basic("bitp2p:nope"))[1], DENIED_PAGE)

    def test_stopDropsLateAnswers(self):
        clock = Clock()
        auth = Authenticator(password="pw", reactor=clock)
        for _ in range(AUTH_FAILURES_ALLOWED + 1):
            request, answer = self.deny(auth, basic("bitp2p:nope"))
        self.assertIs(answer, server.NOT_DONE_YET)
        auth.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_check(self):
        auth = Authenticator(password="pw", reactor=Clock())
        self.assertTrue(auth.check(basic("bitp2p:pw")))
        self.assertTrue(auth.check(b"basic " + base64.b64encode(b"bitp2p:pw")))
        for bad in (None, b"", b"Basic", b"Basic !!!", b"Bearer " + base64.b64encode(b"bitp2p:pw"),
                    basic("bitp2p:pw:"), basic("bitp2p")):
            self.assertFalse(auth.check(bad), bad)

    def test_cookieReplacedByAnotherIsNotRemoved(self):
        auth = Authenticator(reactor=Clock())
        datadir = tempDir(self)
        path = auth.writeCookie(datadir)
        self.assertTrue(auth.check(basic(path.read_text())))
        path.write_text("__cookie__:someone-else")
        auth.removeCookie()
        self.assertTrue(path.exists())
        self.assertIsNone(auth.cookie)


class PeerMethodsTests(ControlTestCase):
    @defer.inlineCallbacks
    def test_getpeerinfo(self):
        a, b = self.startNode(), self.startNode()
        control = self.startControl(a)
        peer = yield self.connected(b, a)
        [info] = yield self.result(control, "getpeerinfo")
        self.assertIsInstance(info["id"], int)
        self.assertEqual(info["node_id"], b.node_id)
        self.assertEqual(info["addr"], str(b.listeningAddress))
        self.assertEqual(info["remote"], peer.remote)
        self.assertEqual(info["addrbind"], str(a.listeningAddress))
        self.assertEqual(info["network"], "ipv4")
        self.assertIs(info["inbound"], True)
        self.assertEqual(info["connection_type"], "inbound")
        self.assertEqual(info["subver"], b.config.user_agent)
        self.assertEqual(info["version"], 1)
        self.assertGreater(info["bytessent"], 0)
        self.assertGreater(info["bytesrecv"], 0)
        self.assertGreater(info["conntime"], 1e9)  # unix seconds
        for key in ("lastsend", "lastrecv"):
            self.assertIsInstance(info[key], int)
        for direction in ("sent", "recv"):
            self.assertIsInstance(info[f"bytes{direction}_per_msg"], dict)
            self.assertIsInstance(info[f"msgs{direction}_per_msg"], dict)
        self.assertEqual(info["msgsrecv_per_msg"]["version"], 1)
        self.assertGreater(info["bytessent_per_msg"]["version"], 0)
        self.assertGreater(info["lastrecv"], 1e9)
        # The id stays the same while connected.
        [again] = yield self.result(control, "getpeerinfo")
        self.assertEqual(again["id"], info["id"])

    @defer.inlineCallbacks
    def test_pingShowsRoundTrips(self):
        a, b = self.startNode(), self.startNode()
        control = self.startControl(a)
        peer = yield self.connected(b, a)
        self.assertIsNone((yield self.result(control, "ping")))
        yield self.waitFor(lambda: peer.rtt_s is not None, "the pong")
        [info] = yield self.result(control, "getpeerinfo")
        self.assertGreaterEqual(info["pingtime"], 0)
        self.assertGreaterEqual(info["minping"], 0)
        self.assertNotIn("pingwait", info)

    @defer.inlineCallbacks
    def test_networkInfoCountsAndUptime(self):
        a, b = self.startNode(), self.startNode()
        control = self.startControl(a)
        yield self.connected(b, a)
        info = yield self.result(control, "getnetworkinfo")
        self.assertEqual(info["version"], __version__)
        self.assertEqual(info["subversion"], a.config.user_agent)
        self.assertEqual(info["protocolversion"], 1)
        self.assertEqual(info["node_id"], a.node_id)
        self.assertEqual(info["listening"], str(a.listeningAddress))
        self.assertEqual(
            info["localaddresses"],
            [{"address": "127.0.0.1", "port": a.listeningPort, "score": 1}],
        )
        self.assertEqual(
            (info["connections"], info["connections_in"], info["connections_out"]), (1, 1, 0)
        )
        self.assertIs(info["networkactive"], True)
        self.assertIs(info["tls"], False)
        self.assertEqual(info["timeoffset"], 0)
        self.assertEqual(info["warnings"], "")
        self.assertIn("published", info["gossip"])
        self.assertEqual((yield self.result(control, "getconnectioncount")), 1)
        self.assertGreaterEqual((yield self.result(control, "uptime")), 0)

    @defer.inlineCallbacks
    def test_getnodeaddresses(self):
        node = self.startNode()
        control = self.startControl(node)
        self.assertEqual((yield self.result(control, "getnodeaddresses", 0)), [])
        v4 = [Address.of(f"10.{i}.0.1", 5000 + i) for i in range(1, 4)]
        v6 = Address.of("2001:db8::1", 6000)
        learn(node, *v4, v6)
        [one] = yield self.result(control, "getnodeaddresses")
        self.assertEqual(sorted(one), ["address", "network", "port", "services", "time"])
        self.assertEqual(one["services"], 0)
        self.assertIsInstance(one["time"], int)
        everything = yield self.result(control, "getnodeaddresses", 0)
        self.assertEqual(
            sorted((e["address"], e["port"], e["network"]) for e in everything),
            sorted(
                [(a.host, a.port, "ipv4") for a in v4] + [("2001:db8::1", 6000, "ipv6")]
            ),
        )
        self.assertEqual(len((yield self.result(control, "getnodeaddresses", 2))), 2)
        self.assertEqual(len((yield self.result(control, "getnodeaddresses", 99))), 4)
        [ipv6] = yield self.result(control, "getnodeaddresses", 0, "ipv6")
        self.assertEqual((ipv6["address"], ipv6["network"]), ("2001:db8::1", "ipv6"))
        self.assertEqual(len((yield self.result(control, "getnodeaddresses", 2, "ipv4"))), 2)
        self.assertEqual((yield self.error(control, "getnodeaddresses", -1))["code"], -8)
        self.assertEqual((yield self.error(control, "getnodeaddresses", 1, "tor"))["code"], -8)


class ConnectionMethodsTests(ControlTestCase):
    @defer.inlineCallbacks
    def test_addnodeAddAndRemove(self):
        a, b = self.startNode(), self.startNode()
        control = self.startControl(a)
        target = str(b.listeningAddress)
        self.assertEqual((yield self.result(control, "getaddednodeinfo")), [])
        self.assertIsNone((yield self.result(control, "addnode", target, "add")))
        yield self.waitFor(lambda: [p.node_id for p in a.peers()] == [b.node_id], "a to dial b")
        [added] = yield self.result(control, "getaddednodeinfo")
        self.assertEqual(added["addednode"], target)
        self.assertIs(added["connected"], True)
        self.assertEqual(added["addresses"], [{"address": target, "connected": "outbound"}])
        self.assertEqual((yield self.result(control, "getaddednodeinfo", target)), [added])
        [info] = yield self.result(control, "getpeerinfo")
        self.assertEqual(info["connection_type"], "manual")
        self.assertIs(info["inbound"], False)
        error = yield self.error(control, "addnode", "tcp:" + target, "add")
        self.assertEqual(error, {"code": -23, "message": "Error: Node already added"})
        self.assertIsNone((yield self.result(control, "addnode", target, "remove")))
        self.assertEqual((yield self.error(control, "addnode", target, "remove"))["code"], -24)
        self.assertEqual((yield self.error(control, "getaddednodeinfo", target))["code"], -24)
        self.assertEqual((yield self.result(control, "getaddednodeinfo")), [])
        # As in Bitcoin Core, removing does not disconnect.
        self.assertEqual([p.node_id for p in a.peers()], [b.node_id])
        self.assertEqual((yield self.error(control, "addnode", "nonsense", "add"))["code"], -8)
        error = yield self.error(control, "addnode", target, "sometimes")
        self.assertEqual(error["code"], -32602)

    @defer.inlineCallbacks
    def test_addnodeOnetry(self):
        a, b = self.startNode(), self.startNode()
        control = self.startControl(a)
        target = str(b.listeningAddress)
        self.assertIsNone((yield self.result(control, "addnode", target, "onetry")))
        yield self.waitFor(lambda: [p.node_id for p in a.peers()] == [b.node_id], "a to dial b")
        self.assertEqual((yield self.result(control, "getaddednodeinfo")), [])
        # A dial that fails is only logged.
        self.assertIsNone((yield self.result(control, "addnode", "127.0.0.1:1", "onetry")))

    @defer.inlineCallbacks
    def test_disconnectnode(self):
        a, b, c, d = (self.startNode() for _ in range(4))
        control = self.startControl(a)
        peerB = yield self.connected(b, a)
        peerC = yield self.connected(c, a)
        peerD = yield self.connected(d, a)
        infos = yield self.result(control, "getpeerinfo")
        ids = {info["node_id"]: info["id"] for info in infos}
        self.assertEqual(len(set(ids.values())), 3)
        # By address.
        self.assertIsNone((yield self.result(control, "disconnectnode", str(b.listeningAddress))))
        yield self.waitFor(lambda: peerB not in a.peers(), "b to go")
        # By the id of getpeerinfo, as bitcoin-cli does it, and as bitp2p-cli may.
        self.assertIsNone((yield self.result(control, "disconnectnode", "", ids[c.node_id])))
        yield self.waitFor(lambda: peerC not in a.peers(), "c to go")
        # An id in the address's place (bitp2p-cli's "disconnectnode 3").
        self.assertIsNone((yield self.result(control, "disconnectnode", ids[d.node_id])))
        yield self.waitFor(lambda: peerD not in a.peers(), "d to go")
        self.assertEqual((yield self.result(control, "getpeerinfo")), [])
        for params in ((str(b.listeningAddress),), ("", ids[c.node_id]), ("", "ffff")):
            error = yield self.error(control, "disconnectnode", *params)
            self.assertEqual(error["code"], -29, params)
        self.assertEqual(
            (yield self.error(control, "disconnectnode", "127.0.0.1:1", 3))["code"], -32602
        )
        self.assertEqual((yield self.error(control, "disconnectnode"))["code"], -32602)

    @defer.inlineCallbacks
    def test_disconnectnodeByNodeId(self):
        a, b = self.startNode(), self.startNode()
        control = self.startControl(a)
        peer = yield self.connected(b, a)
        self.assertIsNone((yield self.result(control, "disconnectnode", "", b.node_id[:10])))
        yield self.waitFor(lambda: peer not in a.peers(), "b to go")


class BanMethodsTests(ControlTestCase):
    @defer.inlineCallbacks
    def test_setbanListbannedClearbanned(self):
        node = self.startNode()
        control = self.startControl(node)
        self.assertEqual((yield self.result(control, "listbanned")), [])
        self.assertIsNone((yield self.result(control, "setban", "10.1.2.3/24", "add", 3600)))
        [ban] = yield self.result(control, "listbanned")
        self.assertEqual(ban["address"], "10.1.2.0/24")
        self.assertEqual(ban["ban_duration"], 3600)
        self.assertEqual(ban["banned_until"] - ban["ban_created"], 3600)
        self.assertTrue(3590 <= ban["time_remaining"] <= 3600, ban)
        self.assertTrue(node.isBanned("10.1.2.200"))
        error = yield self.error(control, "setban", "10.1.2.0/24", "add")
        self.assertEqual(error, {"code": -23, "message": "Error: IP/Subnet already banned"})
        self.assertEqual((yield self.error(control, "setban", "nonsense", "add"))["code"], -30)
        self.assertEqual((yield self.error(control, "setban", "10.9.9.9", "remove"))["code"], -30)
        self.assertEqual((yield self.error(control, "setban", "10.9.9.9", "ban"))["code"], -32602)
        self.assertIsNone((yield self.result(control, "setban", "10.1.2.0/24", "remove")))
        self.assertEqual((yield self.result(control, "listbanned")), [])
        # The default duration (bantime 0, or none), and an absolute time.
        yield self.result(control, "setban", "10.3.0.0/16", "add")
        yield self.result(control, "setban", "10.4.4.4", "add", 0)
        until = int(reactor.seconds()) + 100
        yield self.result(control, "setban", "2001:db8::/32", "add", until, True)
        bans = {b["address"]: b for b in (yield self.result(control, "listbanned"))}
        self.assertEqual(sorted(bans), ["10.3.0.0/16", "10.4.4.4/32", "2001:db8::/32"])
        self.assertEqual(bans["10.4.4.4/32"]["ban_duration"], 24 * 3600)
        self.assertAlmostEqual(bans["2001:db8::/32"]["banned_until"], until, delta=1)
        error = yield self.error(control, "setban", "10.5.5.5", "add", 1000, True)
        self.assertEqual(error["code"], -8)
        # Bans made elsewhere are listed, without a creation time.
        node.ban("10.6.6.6", 60)
        bans = yield self.result(control, "listbanned")
        [other] = [b for b in bans if b["address"] == "10.6.6.6/32"]
        self.assertNotIn("ban_created", other)
        self.assertIsNone((yield self.result(control, "clearbanned")))
        self.assertEqual((yield self.result(control, "listbanned")), [])
        self.assertEqual(node.bans.bans(0), [])

    @defer.inlineCallbacks
    def test_setbanDisconnects(self):
        a, b = self.startNode(), self.startNode()
        control = self.startControl(a)
        peer = yield self.connected(b, a)
        yield self.result(control, "setban", "127.0.0.1", "add", 60)
        yield self.waitFor(lambda: peer not in a.peers(), "the banned peer to go")


class ProtocolTests(ControlTestCase):
    @defer.inlineCallbacks
    def test_errors(self):
        control = self.startControl(self.startNode())
        status, reply = yield self.call(control, "nosuchmethod")
        self.assertEqual(status, 404)
        error = {"code": -32601, "message": "Method not found"}
        self.assertEqual(reply, {"result": None, "error": error, "id": "t"})
        status, _, body = yield self.request(control, body=b'{"method": "uptime", ')
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["error"], {"code": -32700, "message": "Parse error"})
        status, _, body = yield self.request(control, body=b'{"method": "uptime", "id": NaN}')
        self.assertEqual((status, json.loads(body)["error"]["code"]), (400, -32700))
        status, _, body = yield self.request(control, body=b"[" * 100000)
        self.assertEqual((status, json.loads(body)["error"]["code"]), (400, -32700))
        for payload in (3, {"params": []}, {"method": 3}, {"method": "uptime", "params": 3}):
            status, reply = yield self.post(control, payload)
            self.assertEqual((status, reply["error"]["code"]), (400, -32600), payload)
        for params in (("x",), (1, "ipv4", 3), (True,)):
            error = yield self.error(control, "getnodeaddresses", *params)
            self.assertEqual(error["code"], -32602, params)
            self.assertNotIn("\n", error["message"])
        error = yield self.error(control, "addnode", "127.0.0.1:5000")
        self.assertEqual(
            error["message"],
            "addnode: missing parameter 'command' "
            '(usage: addnode "node" "add|remove|onetry")',
        )
        self.assertEqual((yield self.error(control, "uptime", 1))["code"], -32602)

    @defer.inlineCallbacks
    def test_namedParams(self):
        node = self.startNode()
        control = self.startControl(node)
        learn(node, Address.of("10.1.0.1", 5000), Address.of("10.2.0.1", 5000))
        payload = {"id": 7, "method": "getnodeaddresses", "params": {"count": 0}}
        status, reply = yield self.post(control, payload)
        self.assertEqual((status, len(reply["result"]), reply["id"]), (200, 2, 7))
        payload["params"] = {"cnt": 0}
        status, reply = yield self.post(control, payload)
        self.assertEqual((status, reply["error"]["code"]), (500, -32602))

    @defer.inlineCallbacks
    def test_batch(self):
        control = self.startControl(self.startNode())
        batch = [
            {"id": 1, "method": "getconnectioncount"},
            {"id": 2, "method": "nosuchmethod"},
            {"id": 3, "method": "help", "params": ["ping"]},
            "not a request",
        ]
        status, replies = yield self.post(control, batch)
        self.assertEqual(status, 200)
        self.assertEqual([r.get("id") for r in replies], [1, 2, 3, None])
        self.assertEqual(replies[0]["result"], 0)
        self.assertEqual(replies[1]["error"]["code"], -32601)
        self.assertIn("ping", replies[2]["result"])
        self.assertEqual(replies[3]["error"]["code"], -32600)
        status, reply = yield self.post(control, [])
        self.assertEqual((status, reply["error"]["code"]), (400, -32600))

    @defer.inlineCallbacks
    def test_bodyTooLarge(self):
        control = self.startControl(self.startNode())
        request = json.dumps({"id": 1, "method": "uptime"}).encode()
        largest = request + b" " * (MAX_BODY_BYTES - len(request))
        status, _, _ = yield self.request(control, body=largest)
        self.assertEqual(status, 200)
        for chunked in (False, True):
            status, _, body = yield self.request(control, body=largest + b" ", chunked=chunked)
            self.assertEqual(status, 413, chunked)
            self.assertEqual(json.loads(body)["error"]["code"], -32600)
        status, _, _ = yield self.request(control, body=request, chunked=True)
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_help(self):
        control = self.startControl(self.startNode())
        text = yield self.result(control, "help")
        lines = text.splitlines()
        self.assertEqual(lines[0], "== Network ==")
        self.assertIn('addnode "node" "add|remove|onetry"', lines)
        self.assertIn("getpeerinfo", lines)
        self.assertEqual(len(lines), 14)
        self.assertTrue(
            re.match(r'setban "subnet" "add\|remove" \( bantime absolute \)\n\n.+\.\Z',
                     (yield self.result(control, "help", "setban")), re.S)
        )
        self.assertEqual(
            (yield self.result(control, "help", "nosuch")), "help: unknown command: nosuch"
        )


class BatchTests(SynchronousTestCase):
    """
    Issue 16, item 8: a batch of 10,000 calls stalled the reactor for 2.1 s.
    A batch is now capped, and served in slices of the reactor's time.
    """

    def api(self, cpuClock=None):
        from bitp2p.ops.control.rpc import ControlAPI

        self.clock = Clock()
        node = Node(NodeConfig(listen=False, seeds=()), reactor=self.clock)
        return ControlAPI(node, None, **({"cpuClock": cpuClock} if cpuClock else {}))

    def post(self, api, payload):
        import io

        request = DummyRequest([b""])
        request.method = b"POST"
        request.client = IPv4Address("TCP", "127.0.0.1", 40000)
        request.content = io.BytesIO(json.dumps(payload).encode())
        return request, api.render_POST(request)

    def calls(self, count: int) -> list[dict]:
        return [{"id": i, "method": "uptime", "params": []} for i in range(count)]

    def test_aBatchOverTheCapIsRefusedWhole(self):
        from bitp2p.constants import MAX_BATCH_CALLS

        request, answer = self.post(self.api(), self.calls(MAX_BATCH_CALLS + 1))
        self.assertEqual(request.responseCode, 400)
        reply = json.loads(answer)
        self.assertEqual(reply["error"]["code"], -32600)
        self.assertIn(f"over the {MAX_BATCH_CALLS} allowed", reply["error"]["message"])

    def test_aQuickBatchIsAnsweredAtOnce(self):
        from bitp2p.constants import MAX_BATCH_CALLS

        request, answer = self.post(self.api(), self.calls(MAX_BATCH_CALLS))
        self.assertEqual(request.responseCode, 200)
        self.assertEqual([r["id"] for r in json.loads(answer)], list(range(MAX_BATCH_CALLS)))

    def test_aSlowBatchIsServedInSlices(self):
        """
        Calls that take the whole slice between them are served over several
        turns of the reactor, in order, and the answer is written once all
        are done.
        """
        from bitp2p.ops.control import rpc

        self.patch(rpc, "RPC_SLICE_S", 1.0)
        ticks = iter(range(10**6))
        api = self.api(cpuClock=lambda: next(ticks) / 2)  # each call: half a slice
        request, answer = self.post(api, self.calls(10))
        self.assertIs(answer, server.NOT_DONE_YET)
        self.assertEqual(request.finished, 0)
        turns = 0
        while not request.finished and turns < 50:
            # One turn of the reactor: the one call pending, run alone (a
            # Clock's advance(0) would also run those it schedules).
            [call] = self.clock.getDelayedCalls()
            self.clock.calls.remove(call)
            call.func(*call.args, **call.kw)
            turns += 1
        self.assertEqual(request.finished, 1)
        self.assertEqual(turns, 4)  # 2 calls a slice: 2 at once, then 4 turns
        self.assertEqual([r["id"] for r in json.loads(b"".join(request.written))], list(range(10)))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_aClientGoneMidBatchStopsIt(self):
        from bitp2p.constants import RPC_SLICE_S

        ticks = iter(range(10**6))
        api = self.api(cpuClock=lambda: next(ticks) * RPC_SLICE_S)
        request, answer = self.post(api, self.calls(10))
        self.assertIs(answer, server.NOT_DONE_YET)
        request.processingFailed(Exception("gone"))
        self.clock.advance(0)
        self.assertEqual(request.written, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class _Transport(StringTransport):
    """
    A connection's transport whose closing reaches its protocol on the next
    turn of the clock, as a real one's does.
    """

    def __init__(self, protocol, clock, peer) -> None:
        super().__init__(hostAddress=IPv4Address("TCP", "127.0.0.1", 5332), peerAddress=peer)
        self.protocol = protocol
        self.clock = clock
        self.gone = False

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.clock.callLater(0, self._lost)

    def _lost(self) -> None:
        self.gone = True
        self.protocol.connectionLost(Failure(ConnectionDone()))


# What the probe of issue 16 sent on each of its connections, and then one
# byte every 20 s.
SLOW_START = b"POST / HTTP/1.1\r\nHost: x\r\n"


class ConnectionLimitTests(SynchronousTestCase):
    """
    Issue 16, item 4: 70 connections that sent the start of a request and
    then a byte every 20 s held every one of the control API's 64 slots (each
    byte reset the idle timeout), and the operator's calls all failed. Now a
    request has a deadline, an address holds at most 8 connections, and a
    newcomer takes the place of the oldest connection not authenticated.

    A real L{ControlService} on a L{MemoryReactorClock}; connections are made
    by hand, from any address.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        node = Node(NodeConfig(listen=False, seeds=()), reactor=self.clock)
        self.control = ControlService(
            node, "tcp:5332:interface=127.0.0.1", password="pw", reactor=self.clock
        )
        self.control.startService()
        [(_, self.factory, _, _)] = self.clock.tcpServers
        self.ports = iter(range(40000, 65000))

    def tearDown(self) -> None:
        self.control.stopService()
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def connect(self, host: str = "127.0.0.1", address=None) -> _Transport | None:
        """
        A connection from C{host}: its transport, or None if refused.
        """
        if address is None:
            address = IPv4Address("TCP", host, next(self.ports))
        protocol = self.factory.buildProtocol(address)
        if protocol is None:
            return None
        transport = _Transport(protocol, self.clock, address)
        protocol.makeConnection(transport)
        return transport

    def slow(self, host: str) -> _Transport:
        """
        A connection from C{host} that sent the start of a request.
        """
        transport = self.connect(host)
        self.assertIsNotNone(transport)
        transport.protocol.dataReceived(SLOW_START)
        return transport

    def send(
        self, transport: _Transport, credentials: str | None = "bitp2p:pw", then: bytes = b""
    ) -> None:
        body = json.dumps({"id": 1, "method": "getconnectioncount", "params": []}).encode()
        request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
        if credentials is not None:
            request += b"Authorization: " + basic(credentials) + b"\r\n"
        transport.protocol.dataReceived(request + b"\r\n" + body + then)

    def answered(self, transport: _Transport) -> list[bytes]:
        """
        The status lines written to C{transport} so far (and forget them).
        """
        lines = [line for line in transport.value().split(b"\r\n") if line.startswith(b"HTTP/")]
        transport.clear()
        return lines

    def call(self, transport: _Transport) -> None:
        """
        An authenticated call on C{transport}, which must be answered.
        """
        self.send(transport)
        self.assertEqual(self.answered(transport), [b"HTTP/1.1 200 OK"])

    # -- the deadline --

    def test_aTricklingRequestIsClosedAtItsDeadline(self):
        transport = self.slow("127.0.0.1")
        for _ in range(HTTP_REQUEST_DEADLINE_S - 1):
            self.clock.advance(1)
            transport.protocol.dataReceived(b"X")
            self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertEqual(self.answered(transport), [b"HTTP/1.1 408 Request Timeout"])
        self.assertTrue(transport.disconnecting)
        self.clock.advance(0)
        self.assertTrue(transport.gone)

    def test_theDeadlineCountsFromConnecting(self):
        transport = self.connect()
        self.clock.advance(HTTP_REQUEST_DEADLINE_S - 1)
        transport.protocol.dataReceived(SLOW_START)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_betweenRequestsOnlyTheIdleTimeoutRuns(self):
        """
        A connection idle after a request is kept until the idle timeout;
        the next request's deadline runs from its first byte.
        """
        transport = self.connect()
        self.clock.advance(HTTP_REQUEST_DEADLINE_S - 1)
        self.call(transport)
        self.clock.advance(HTTP_IDLE_TIMEOUT_S - 1)
        self.assertFalse(transport.disconnecting)
        transport.protocol.dataReceived(SLOW_START)
        self.clock.advance(HTTP_REQUEST_DEADLINE_S - 1)
        body = b'{"method": "uptime"}'
        transport.protocol.dataReceived(
            b"Authorization: " + basic("bitp2p:pw") + b"\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        self.assertEqual(self.answered(transport), [b"HTTP/1.1 200 OK"])
        self.clock.advance(HTTP_IDLE_TIMEOUT_S - 1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_aPipelinedRequestHasItsOwnDeadline(self):
        """
        The start of a next request sent with a whole one, in one write:
        its deadline runs from when the first is answered.
        """
        transport = self.connect()
        self.clock.advance(HTTP_REQUEST_DEADLINE_S - 1)
        self.send(transport, then=SLOW_START)
        self.assertEqual(self.answered(transport), [b"HTTP/1.1 200 OK"])
        self.clock.advance(HTTP_REQUEST_DEADLINE_S - 1)
        transport.protocol.dataReceived(b"X")
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertEqual(self.answered(transport), [b"HTTP/1.1 408 Request Timeout"])
        self.assertTrue(transport.disconnecting)

    # -- connections per address --

    def test_anAddressHoldsAtMostItsShare(self):
        """
        A ninth connection from one address takes the place of that
        address's oldest; other addresses' connections are untouched.
        """
        other = self.slow("127.0.0.2")
        first = [self.slow("127.0.0.1") for _ in range(MAX_HTTP_CONNECTIONS_PER_HOST)]
        newcomer = self.slow("127.0.0.1")
        self.clock.advance(0)
        self.assertEqual([t.gone for t in first], [True] + [False] * (len(first) - 1))
        self.assertFalse(newcomer.gone or other.gone)

    def test_unixSocketClientsCountAsOneAddress(self):
        address = UNIXAddress(None)
        first = [self.connect(address=address) for _ in range(MAX_HTTP_CONNECTIONS_PER_HOST + 1)]
        self.clock.advance(0)
        self.assertEqual([t.gone for t in first], [True] + [False] * (len(first) - 1))

    def test_authenticatedConnectionsAreNeverTakenButRefuseNewcomers(self):
        """
        When every connection of an address has made an authenticated
        request, a newcomer from that address is refused as it arrives.
        """
        kept = [self.connect("127.0.0.1") for _ in range(MAX_HTTP_CONNECTIONS_PER_HOST)]
        for transport in kept:
            self.call(transport)
        self.assertIsNone(self.connect("127.0.0.1"))
        self.clock.advance(0)
        self.assertFalse(any(t.gone for t in kept))
        self.assertIsNotNone(self.connect("127.0.0.2"))

    # -- the operator gets in --

    def attackAndCall(self, hosts: list[str], operator: str = "127.0.0.1") -> None:
        attackers = [self.slow(host) for host in hosts]
        self.clock.advance(0)
        held = [t for t in attackers if not t.gone]
        self.assertEqual(
            len(held),
            min(MAX_HTTP_CONNECTIONS, MAX_HTTP_CONNECTIONS_PER_HOST * len(set(hosts))),
        )
        # The operator, twice on a fresh connection, once on a kept one.
        for _ in range(2):
            transport = self.connect(operator)
            self.assertIsNotNone(transport)
            self.call(transport)
        # Its connection, authenticated, outlives a second wave.
        for host in hosts:
            self.slow(host)
        self.clock.advance(0)
        self.assertFalse(transport.gone)
        self.call(transport)

    def test_anOperatorGetsInPastSlowConnectionsFromItsOwnAddress(self):
        self.attackAndCall(["127.0.0.1"] * 70)

    def test_anOperatorGetsInPastSlowConnectionsFromAnotherAddress(self):
        self.attackAndCall(["127.0.0.9"] * 70)

    def test_anOperatorGetsInPastSlowConnectionsFromManyAddresses(self):
        self.attackAndCall([f"127.{n}.{n * 7 % 256}.{n % 250 + 1}" for n in range(1, 71)])

    def test_closedConnectionsAreLoggedAsCounts(self):
        """
        However many connections are taken, refused or timed out, the log
        gets the first of each kind, then a line a minute.
        """
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        for wave in range(2):
            for n in range(140):
                self.slow(f"127.{wave + 1}.{n // 250}.{n % 250 + 1}")
            self.clock.advance(HTTP_REQUEST_DEADLINE_S)
            self.clock.advance(0)
        self.clock.advance(60)  # the summaries' interval
        self.slow("127.0.0.1")
        self.clock.advance(HTTP_REQUEST_DEADLINE_S)
        infos = [
            formatEvent(e) for e in events
            if e["log_level"] >= LogLevel.info and "Control API listening" not in formatEvent(e)
        ]
        # The first of each kind in full, then one count a minute.
        self.assertEqual(len(infos), 4, infos)
        self.assertIn("closing a connection from 127.1.0.1 to make room", infos[0])
        self.assertIn(f"its request unfinished after {HTTP_REQUEST_DEADLINE_S} s", infos[1])
        self.assertIn("connections closed to make room: 151 more in the last", infos[2])
        self.assertIn("requests past their deadline: 127 more in the last", infos[3])
        debugs = [e for e in events if e.get("what") in ("evicted", "deadline")]
        self.assertEqual(len(debugs), 152 + 129)
class RepeatedLinesTests(SynchronousTestCase):
    """
    What anyone who reaches the API can make it log again and again (wrong
    credentials from many hosts, connections past the limit) is written
    once and summarised (issue 16, item 7).
    """

    def setUp(self):
        from twisted.logger import formatEvent, globalLogPublisher

        self.clock = Clock()
        self.control = ControlService(
            Node(NodeConfig(port=0, seeds=()), reactor=self.clock),
            "tcp:0:interface=127.0.0.1",
            password="pw",
            reactor=self.clock,
        )
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.lines = lambda: [
            formatEvent(e) for e in events
            if e.get("log_namespace") == "bitp2p.control" and e["log_level"].name != "debug"
        ]

    def test_wrongCredentialsFromManyHostsAreSummarised(self):
        for n in range(300):
            request = DummyRequest([b""])
            request.client = IPv4Address("TCP", f"10.1.{n // 250}.{n % 250 + 1}", 40000)
            request.requestHeaders.setRawHeaders(b"authorization", [basic("bitp2p:nope")])
            self.assertFalse(self.control.authenticator.admit(request))
            self.control.authenticator.deny(request)
        self.assertEqual(self.lines(), ["Control API: wrong credentials from 10.1.0.1"])
        self.clock.advance(60)
        self.assertEqual(
            self.lines()[1:],
            ["Control API: wrong credentials: 299 more in the last 60 s, from 299 hosts"],
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connectionsPastTheLimitAreSummarised(self):
        from bitp2p.logs import RepeatedEvents
        from bitp2p.ops.control.site import ConnectionLimit

        factory = ConnectionLimit(self.control.site, 0)
        for n in range(100):
            self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", "10.2.0.1", 40000 + n)))
        self.assertEqual(len(self.lines()), 1)
        self.assertTrue(self.lines()[0].startswith("Control API: refusing a connection from 10.2.0.1"))
        self.control.repeated.stop()
        self.assertEqual(
            self.lines()[1:], ["Control API: connections refused: 99 more in the last 0 s, from 1 host"]
        )
