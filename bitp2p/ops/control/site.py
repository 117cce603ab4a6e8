"""
The control API's HTTP plumbing: the twisted.web site, its bounded request
bodies, its limits on open connections and on how long a request may take
to arrive, and the root of its resource tree.

Anyone who can reach the port can open connections, and who the operator is
shows only once a request's headers have arrived. So the limits hold
without knowing who is asking, and the connections that have made an
authenticated request (the operator's) are kept apart:

  - Every request has a deadline (L{HTTP_REQUEST_DEADLINE_S}): its headers
    and body must all have arrived within that long of its first byte (of
    the connection itself, for its first request); bytes trickling in do
    not extend it, as they extend the idle timeout. Past it the client gets
    a 408 and the connection is closed. Between requests a connection only
    has the idle timeout (L{HTTP_IDLE_TIMEOUT_S}). So a slow request holds a
    slot for a bounded time, whatever it sends.
  - At most L{MAX_HTTP_CONNECTIONS} connections are open at once, and at
    most L{MAX_HTTP_CONNECTIONS_PER_HOST} from one address (UNIX socket
    clients, which have none, count as one address, C{local}).
  - A connection that has made an authenticated request is never closed to
    make room. When a newcomer finds its address's connections, or all of
    them, taken, it takes the place of the oldest connection (of that
    address, or of all) that has not: the connection is closed at once. If
    every connection it could take has authenticated, the newcomer is
    closed as it arrives.

Why evict rather than refuse, and why the oldest: authentication is only
known once a request has arrived, so at accept time the operator's
connection looks like any other, and any rule that refuses newcomers when
the slots are full (a reserve of slots included: a reserve can only be
given to connections already authenticated) locks the operator out as soon
as the attacker holds the slots, as 70 slow connections did (issue 16).
Taking the place of the oldest unauthenticated connection instead means a
newcomer always gets in, and keeps its slot until
L{MAX_HTTP_CONNECTIONS} newer connections have arrived (or, from its own
address, L{MAX_HTTP_CONNECTIONS_PER_HOST}): an operator's request on
loopback takes a millisecond, and once it is authenticated its connection
can no longer be taken. Holding the slots then costs the attacker a new
connection for each one it loses, and each it keeps lasts at most the
deadline. The limit per address is enforced the same way, not by refusing:
the operator often shares its address with the attacker (127.0.0.1 for
every local user, the Tor daemon's address for every onion client), and a
refusal would lock it out with a mere 8 connections. What the limit per
address buys is that one address's churn only takes that address's
connections. Many addresses (all of 127/8 is the host's own) only reach the
limit of all connections, with the same rule. What is left: an attacker
connecting more than 64 times in the time an operator's request takes to
arrive (a connection flood) could still crowd it out.

Connections closed this way (refused, taken, past the deadline, idle) are
logged one by one at debug, and at info the first of each kind, then as
counts at most once a minute (L{ClosedConnections}, through the node's
L{RepeatedEvents<bitp2p.logs.RepeatedEvents>}), so that an attacker cannot
fill the log.

One path answers without credentials: C{GET /health} (L{Health}), for
process supervisors, load balancers and Kubernetes probes. It says C{up}
(200) or C{down} (503), and nothing else about the node; it does not look
at credentials, so it can neither test a password nor count against the
failed-authentication throttle, and its requests do not make a connection
an authenticated one.

This module owns HTTP limits (L{MAX_BODY_BYTES}, L{MAX_HTTP_CONNECTIONS},
L{MAX_HTTP_CONNECTIONS_PER_HOST}, L{HTTP_REQUEST_DEADLINE_S},
L{HTTP_IDLE_TIMEOUT_S}) and access logging. It must not know the JSON-RPC
methods, credentials, or the node: it learns that a request was
authenticated through L{admitted}, which the service gives the
authenticator to call.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger, LogLevel
from twisted.protocols.policies import WrappingFactory
from twisted.web import http, pages, server
from twisted.web.resource import Resource

from bitp2p.constants import (
    HTTP_IDLE_TIMEOUT_S,
    HTTP_REQUEST_DEADLINE_S,
    MAX_BODY_BYTES,
    MAX_HTTP_CONNECTIONS,
    MAX_HTTP_CONNECTIONS_PER_HOST,
)
from bitp2p.logs import UNSUMMARISED, RepeatedEvents
from bitp2p.ops.control.auth import clientHost

__all__ = [
    "HTTP_IDLE_TIMEOUT_S",
    "HTTP_REQUEST_DEADLINE_S",
    "MAX_BODY_BYTES",
    "MAX_HTTP_CONNECTIONS",
    "MAX_HTTP_CONNECTIONS_PER_HOST",
    "BoundedRequest",
    "ClosedConnections",
    "ConnectionLimit",
    "ControlChannel",
    "ControlSite",
    "Health",
    "Root",
    "admitted",
]

# The log namespace of the control API, wherever its code sits (operators
# filter on it; it was the one module bitp2p.control).
log = Logger(namespace="bitp2p.control")

_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)


def _hostOf(address) -> str:
    """
    The client address a connection counts against: its IP, or C{local}
    for a UNIX socket.
    """
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else "local"


def admitted(request) -> None:
    """
    Mark the connection that carried C{request} as an authenticated
    client's (L{ControlChannel.admitted}): it is no longer closed to make
    room for others. The authenticator calls this for every request whose
    credentials it accepts.
    """
    channel = getattr(request, "channel", None)
    if isinstance(channel, ControlChannel):
        channel.admitted = True


class ClosedConnections:
    """
    The connections the control API closed on its own (refused, taken for a
    newcomer, past the request deadline, idle), logged through the
    service's L{RepeatedEvents<bitp2p.logs.RepeatedEvents>}: the first of
    each kind at info, then a count at most once a minute, and each one at
    debug, so that however many there are the log gets a line a minute.
    """

    _KINDS = {
        "refused": (
            "Control API: connections refused",
            "Control API: refusing a connection from {host}: every slot it could take is held"
            " by an authenticated client",
        ),
        "evicted": (
            "Control API: connections closed to make room",
            "Control API: closing a connection from {host} to make room for a newcomer",
        ),
        "deadline": (
            "Control API: requests past their deadline",
            "Control API: closing a connection from {host}: its request unfinished after"
            " {deadline} s",
        ),
        "idle": (
            "Control API: idle connections closed",
            "Control API: closing an idle connection from {host}",
        ),
    }

    def __init__(self, repeated: RepeatedEvents = UNSUMMARISED) -> None:
        self.repeated = repeated

    def count(self, what: str, host: str) -> None:
        """
        One connection from C{host} closed for C{what} (C{refused},
        C{evicted}, C{deadline}, C{idle}).
        """
        kind, format = self._KINDS[what]
        self.repeated.emit(
            log, LogLevel.info, kind, host, format,
            host=host, what=what, deadline=HTTP_REQUEST_DEADLINE_S,
        )


class ControlChannel(http.HTTPChannel):
    """
    An HTTP connection whose every request has a deadline: its headers and
    body must all have arrived within L{HTTP_REQUEST_DEADLINE_S} of its
    first byte (of the connection, for the first request), however the
    bytes trickle in. Past it the client gets a 408 and the connection is
    closed. Between requests only the idle timeout runs; bytes of a next
    request that arrived while one was being answered count from the time
    the channel reads them.

    @ivar admitted: whether the connection has carried a request with
        accepted credentials (L{admitted}); such a connection is not closed
        to make room for others.
    @ivar deadline: the deadline of each request, in seconds.
    """

    admitted = False
    deadline: float = HTTP_REQUEST_DEADLINE_S
    _deadlineCall: IDelayedCall | None = None
    _abortCall: IDelayedCall | None = None
    _closing = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self._startDeadline()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if self._deadlineCall is None and not self._handlingRequest:
            # The first byte of a request. (Bytes that came while a request
            # was being answered are held, and given here again once it is.)
            self._startDeadline()
        super().dataReceived(data)

    def allContentReceived(self) -> None:
        self._stopDeadline()
        super().allContentReceived()

    def timeoutConnection(self) -> None:
        # Twisted's own logs every idle timeout at info.
        self._close("idle")

    def connectionLost(self, reason) -> None:
        self._stopDeadline()
        if self._abortCall is not None and self._abortCall.active():
            self._abortCall.cancel()
        self._abortCall = None
        super().connectionLost(reason)

    def _startDeadline(self) -> None:
        self._stopDeadline()
        self._deadlineCall = self.callLater(self.deadline, self._deadlinePassed)

    def _stopDeadline(self) -> None:
        if self._deadlineCall is not None and self._deadlineCall.active():
            self._deadlineCall.cancel()
        self._deadlineCall = None

    def _deadlinePassed(self) -> None:
        self._deadlineCall = None
        self.transport.write(_TIMED_OUT)
        self._close("deadline")

    def _close(self, why: str) -> None:
        """
        Close the connection (the 408 written, if any, first), and abort it
        if it is still there C{abortTimeout} seconds later.
        """
        if self._closing:
            return
        self._closing = True
        self.setTimeout(None)
        site = getattr(self, "site", None)
        if isinstance(site, ControlSite):
            site.closed.count(why, _hostOf(self.transport.getPeer()))
        self._abortCall = self.callLater(self.abortTimeout, self.transport.abortConnection)
        self.loseConnection()


class BoundedRequest(server.Request):
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


class ControlSite(server.Site):
    """
    The control API's site: its connections are L{ControlChannel}s (each
    request with a deadline; HTTP/1.1 only, where Twisted's default channel
    would switch to HTTP/2 when TLS negotiates it), its requests keep
    bounded bodies, and the access log goes to twisted.logger at debug
    level.

    @ivar closed: the connections closed on the site's own account
        (L{ClosedConnections}), which L{ConnectionLimit} adds to; the
        service gives it its L{RepeatedEvents<bitp2p.logs.RepeatedEvents>}.
    """

    noisy = False
    protocol = ControlChannel
    requestFactory = BoundedRequest

    def __init__(self, resource, *args, **kwargs) -> None:
        super().__init__(resource, *args, **kwargs)
        self.closed = ClosedConnections()

    def startFactory(self) -> None:
        pass  # no access log file, and no timer for its dates

    def stopFactory(self) -> None:
        pass

    def log(self, request) -> None:
        log.debug(
            "Control API: {client} {method} {uri} {code}",
            client=clientHost(request),
            method=request.method.decode("ascii", "replace"),
            uri=request.uri.decode("ascii", "replace")[:200],
            code=request.code,
        )


class ConnectionLimit(WrappingFactory):
    """
    The table of open HTTP connections: at most C{limit} in all and
    C{perHost} from one address. A newcomer past either takes the place of
    the oldest connection (of its address, or of all) that has not made an
    authenticated request, which is closed at once; with none such, the
    newcomer is closed as it arrives (see the module docstring for why).
    Closes them all at shutdown.
    """

    noisy = False

    def __init__(
        self, site: ControlSite, limit: int, perHost: int = MAX_HTTP_CONNECTIONS_PER_HOST
    ) -> None:
        super().__init__(site)
        self._limit = limit
        self._perHostLimit = perHost
        # The connections that count, oldest first, and each one's address;
        # one closed to make room leaves at once, before it is gone.
        self._open: dict[Any, str] = {}
        self._perHost: Counter[str] = Counter()
        self._closing: dict[Any, list[defer.Deferred]] = {}

    def buildProtocol(self, addr):
        host = _hostOf(addr)
        if self._perHost[host] >= self._perHostLimit:
            made = self._makeRoom(host)
        elif len(self._open) >= self._limit:
            made = self._makeRoom(None)
        else:
            made = True
        if not made:
            self.wrappedFactory.closed.count("refused", host)
            return None
        p = super().buildProtocol(addr)
        self._open[p] = host
        self._perHost[host] += 1
        return p

    def unregisterProtocol(self, p) -> None:
        super().unregisterProtocol(p)
        self._forget(p)
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

    def _makeRoom(self, host: str | None) -> bool:
        """
        Close the oldest connection (from C{host}, or from anywhere) that
        has not made an authenticated request.

        @return: whether there was one.
        """
        for p, pHost in self._open.items():
            if (host is None or pHost == host) and not getattr(
                p.wrappedProtocol, "admitted", False
            ):
                break
        else:
            return False
        self._forget(p)
        self.wrappedFactory.closed.count("evicted", pHost)
        if p.transport is not None:
            p.transport.abortConnection()
        return True

    def _forget(self, p) -> None:
        host = self._open.pop(p, None)
        if host is not None:
            self._perHost[host] -= 1
            if not self._perHost[host]:
                del self._perHost[host]


class Root(Resource):
    """
    The root of the control API's tree: the API (L{putAPI}) at C{/rpc} and
    at C{/} for C{POST}s (where C{bitcoin-cli}-style clients post), other
    resources beside it. A C{GET} of C{/} is sent to the home page, when
    one is given (L{putHome}: the dashboard), else to the API's
    description.

    @ivar home: the child a C{GET} of C{/} is redirected to, or L{None}.
    """

    home: bytes | None = None

    def putAPI(self, api: Resource) -> None:
        """
        Serve C{api} at C{/rpc}, and at C{/} for every method but a
        browser's C{GET} when there is a home page.
        """
        self.putChild(b"rpc", api)
        self.putChild(b"", _Front(self, api))

    def putHome(self, path: bytes, child: Resource) -> None:
        """
        Serve C{child} at C{/PATH/}, and send a C{GET} of C{/} there.
        """
        self.putChild(path, child)
        self.home = path

    def getChild(self, path: bytes, request):
        return pages.notFound()


class _Front(Resource):
    """
    What C{/} answers: a C{GET} or C{HEAD} goes to the home page (a 302 to
    C{PATH/}, relative, so that any mount point works) when there is one;
    everything else, and every method when there is none, goes to the API.
    """

    isLeaf = True

    def __init__(self, root: Root, api: Resource) -> None:
        super().__init__()
        self._root = root
        self._api = api

    def render(self, request):
        home = self._root.home
        if home is None or request.method not in (b"GET", b"HEAD"):
            return self._api.render(request)
        request.setResponseCode(302)
        request.setHeader(b"location", home + b"/")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"The dashboard is at " + home + b"/; the control API at rpc.\n"


class Health(Resource):
    """
    C{/health}: C{up} (200) while C{isUp()} is true, else C{down} (503), as
    plain text, for C{GET} and C{HEAD}; nothing else about the node. It is
    served without authentication (L{Guarded.putOpen
    <bitp2p.ops.control.auth.Guarded.putOpen>}); paths under it are 404.
    """

    def __init__(self, isUp: Callable[[], bool]) -> None:
        super().__init__()
        self._isUp = isUp

    def render(self, request) -> bytes:
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"GET or HEAD only\n"
        up = self._isUp()
        request.setResponseCode(200 if up else 503)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return b"up\n" if up else b"down\n"

    def getChild(self, path: bytes, request):
        if path == b"":
            return self  # /health/
        return pages.notFound()
