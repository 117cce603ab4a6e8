"""
Who may use the control API: HTTP Basic credentials, the cookie file, and
the guard in front of the whole resource tree.

Every request needs HTTP Basic credentials (L{Authenticator}): the cookie
the node writes to C{DATADIR/.cookie} (C{__cookie__:<64 hex>}, mode 0600,
removed at stop), or C{USER:PASSWORD} when a password is configured.
Without them the answer is a 401 with a short page saying which
credentials are needed and where they are (L{DENIED_PAGE}: for the browser
that lands on the dashboard without them), the same for every path and
method and naming no configured user, so that an unauthenticated client
learns nothing of the node; a host that keeps
failing (more than L{AUTH_FAILURES_ALLOWED} times in
L{AUTH_FAILURE_WINDOW_S}) gets its 401s L{AUTH_FAILURE_DELAY_S} late. The
check sits in a wrapper resource (L{Guarded}) at the root of the tree, so
the resources added beside the API (C{/metrics}, the dashboard) are guarded
too.

This module owns credentials and the cookie file. It must not know the
JSON-RPC methods, the node, or how the site listens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger, LogLevel
from twisted.web import server
from twisted.web.resource import Resource

from bitp2p.constants import (
    AUTH_FAILURE_DELAY_S,
    AUTH_FAILURE_WINDOW_S,
    AUTH_FAILURES_ALLOWED,
    AUTH_TRACKED_HOSTS,
    COOKIE_FILE,
)
from bitp2p.logs import UNSUMMARISED, RepeatedEvents
from bitp2p.storage import atomic_write

__all__ = [
    "AUTH_FAILURES_ALLOWED",
    "AUTH_FAILURE_DELAY_S",
    "AUTH_FAILURE_WINDOW_S",
    "AUTH_TRACKED_HOSTS",
    "COOKIE_USER",
    "DEFAULT_USER",
    "DENIED_PAGE",
    "REALM",
    "Authenticator",
    "Guarded",
    "clientHost",
]

# The log namespace of the control API, wherever its code sits (operators
# filter on it; it was the one module bitp2p.control).
log = Logger(namespace="bitp2p.control")

# The user name that goes with the cookie, and the default user for a password.
COOKIE_USER = "__cookie__"
DEFAULT_USER = "bitp2p"
REALM = "bitp2p"

_CHALLENGE = f'Basic realm="{REALM}"'.encode("ascii")

# The body of every 401: what a browser shows once its login prompt is
# cancelled. It names no user or path of this node (the same page for all).
DENIED_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bitp2p: credentials needed</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>Credentials needed</h1>
<p>This bitp2p node's dashboard and control API need a user name and a password
(HTTP Basic authentication). Reload the page to be asked again.</p>
<ul>
<li>With <code>--rpc-password</code>: the user given by <code>--rpc-user</code>
(<code>bitp2p</code> by default) and that password.</li>
<li>Otherwise the cookie: user <code>__cookie__</code>, and as password what follows
<code>__cookie__:</code> in the file <code>.cookie</code> of the node's data directory
(<code>--datadir</code>), which the node writes at start; <code>bitp2p-cli --datadir DIR</code>
reads it by itself.</li>
</ul>
</body></html>
"""

# The kinds of the lines of failed authentications (RepeatedEvents): anyone
# who can reach the API can fail as often as they like, from many hosts.
WRONG_CREDENTIALS = "Control API: wrong credentials"
ANSWERED_LATE = "Control API: hosts answered late"


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
    @param repeated: where failed authentications are logged (a
        L{RepeatedEvents}: the first of a kind is written, the rest
        summarised); by default every one is written.
    """

    def __init__(
        self,
        password: str | None = None,
        user: str = DEFAULT_USER,
        reactor=None,
        repeated: RepeatedEvents = UNSUMMARISED,
        onAdmitted: Callable[[Any], None] | None = None,
    ) -> None:
        """
        @param onAdmitted: called with every request whose credentials are
            accepted (the site marks its connection as an authenticated
            client's, which it keeps).
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
        self._repeated = repeated
        self._onAdmitted = onAdmitted
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
        if not self.check(request.getHeader(b"authorization")):
            return False
        if self._onAdmitted is not None:
            self._onAdmitted(request)
        return True

    def deny(self, request) -> bytes | int:
        """
        Answer an unauthenticated request: 401, a C{WWW-Authenticate}
        challenge, L{DENIED_PAGE}; late for a host that keeps failing.

        @return: what the resource's C{render} returns.
        """
        request.setResponseCode(401)
        request.setHeader(b"www-authenticate", _CHALLENGE)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-length", b"%d" % len(DENIED_PAGE))
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        if request.getHeader(b"authorization") is None:
            return DENIED_PAGE  # a client's first try, before it sends credentials
        delay = self._failed(clientHost(request))
        if not delay:
            return DENIED_PAGE
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
        if request.method != b"HEAD":
            request.write(DENIED_PAGE)
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
            self._repeated.emit(
                log,
                LogLevel.info,
                WRONG_CREDENTIALS,
                host,
                "Control API: wrong credentials from {host}",
                host=host,
            )
        elif count == AUTH_FAILURES_ALLOWED + 1:
            self._repeated.emit(
                log,
                LogLevel.warn,
                ANSWERED_LATE,
                host,
                "Control API: {count} wrong credentials from {host} within {window:g} s; "
                "answering it {delay:g} s late",
                count=count,
                host=host,
                window=AUTH_FAILURE_WINDOW_S,
                delay=AUTH_FAILURE_DELAY_S,
            )
        return AUTH_FAILURE_DELAY_S if count > AUTH_FAILURES_ALLOWED else 0.0


def clientHost(request) -> str:
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
    request carries accepted credentials; except the few children put with
    L{putOpen} (C{/health}), which are served to anyone, their credentials
    (if any) not even looked at: they neither admit a connection nor count
    as failures.

    @ivar wrapped: the tree guarded; L{putChild} adds to it.
    """

    def __init__(self, wrapped: Resource, authenticator: Authenticator) -> None:
        super().__init__()
        self.wrapped = wrapped
        self._authenticator = authenticator
        self._open: dict[bytes, Resource] = {}

    def putOpen(self, path: bytes, child) -> None:
        """
        Serve C{child} at C{/PATH} without authentication. It must tell
        nothing a stranger may not know.
        """
        self._open[path] = child

    def getChildWithDefault(self, path: bytes, request):
        if path in self._open:
            return self._open[path]
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
