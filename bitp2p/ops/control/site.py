"""
The control API's HTTP plumbing: the twisted.web site, its bounded request
bodies, its limit on open connections, and the root of its resource tree.

This module owns HTTP limits (L{MAX_BODY_BYTES}, L{MAX_HTTP_CONNECTIONS},
L{HTTP_IDLE_TIMEOUT_S}) and access logging. It must not know the JSON-RPC
methods, credentials, or the node.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.protocols.policies import WrappingFactory
from twisted.web import pages, server
from twisted.web.resource import Resource

from bitp2p.constants import HTTP_IDLE_TIMEOUT_S, MAX_BODY_BYTES, MAX_HTTP_CONNECTIONS
from bitp2p.logs import UNSUMMARISED, RepeatedEvents
from bitp2p.ops.control.auth import clientHost

__all__ = [
    "HTTP_IDLE_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "MAX_HTTP_CONNECTIONS",
    "BoundedRequest",
    "ConnectionLimit",
    "ControlSite",
    "Root",
]

# The log namespace of the control API, wherever its code sits (operators
# filter on it; it was the one module bitp2p.control).
log = Logger(namespace="bitp2p.control")



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
    The control API's site: its requests keep bounded bodies, and the access
    log goes to twisted.logger at debug level.
    """

    noisy = False
    requestFactory = BoundedRequest

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
    Counts the open HTTP connections, refuses those past C{limit}, and
    closes them all at shutdown.

    @param repeated: where refusals are logged (a L{RepeatedEvents}:
        anyone who can reach the port can cause them at will).
    """

    noisy = False

    def __init__(
        self, site: server.Site, limit: int, repeated: RepeatedEvents = UNSUMMARISED
    ) -> None:
        super().__init__(site)
        self._limit = limit
        self._repeated = repeated
        self._closing: dict[Any, list[defer.Deferred]] = {}

    def buildProtocol(self, addr):
        if len(self.protocols) >= self._limit:
            host = getattr(addr, "host", "?")
            self._repeated.emit(
                log,
                LogLevel.info,
                "Control API: connections refused",
                host,
                "Control API: refusing a connection from {host}: {limit} open already",
                host=host,
                limit=self._limit,
            )
            return None
        return super().buildProtocol(addr)

    def unregisterProtocol(self, p) -> None:
        super().unregisterProtocol(p)
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


class Root(Resource):
    """
    The root of the control API's tree: the API at C{/}, other resources
    beside it.
    """

    def getChild(self, path: bytes, request):
        return pages.notFound()
