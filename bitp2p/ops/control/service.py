"""
The control API as a service (L{ControlService}): it listens on a server
endpoint string (C{tcp:5332:interface=127.0.0.1}), writes the cookie (and
C{.rpcport}, the port, for C{bitp2p-cli}) in the node's data directory,
and undoes all of it at stop. Everything runs in the reactor thread: no
thread, no sleep.

This module owns the control API's life: listening, its files, shutdown. It
wires L{bitp2p.ops.control.auth}, L{bitp2p.ops.control.rpc} and
L{bitp2p.ops.control.site} together; it must not know what a method
answers or how a credential is checked.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from twisted.application import service
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger

from bitp2p.constants import RPC_PORT_FILE
from bitp2p.endpoints import listenNow, serverEndpoint
from bitp2p.logs import RepeatedEvents
from bitp2p.ops.control.auth import DEFAULT_USER, Authenticator, Guarded
from bitp2p.ops.control.rpc import ControlAPI
from bitp2p.ops.control.site import (
    HTTP_IDLE_TIMEOUT_S,
    MAX_HTTP_CONNECTIONS,
    MAX_HTTP_CONNECTIONS_PER_HOST,
    ClosedConnections,
    ConnectionLimit,
    ControlSite,
    Health,
    Root,
    admitted,
)
from bitp2p.storage import atomic_write
from bitp2p.views import hostPort

__all__ = ["ControlService"]

# The log namespace of the control API, wherever its code sits (operators
# filter on it; it was the one module bitp2p.control).
log = Logger(namespace="bitp2p.control")


class ControlService(service.Service):
    """
    The control API as a service: it listens on C{endpoint} (synchronously
    at start, so that a busy port fails it with C{CannotListenError}),
    writes the cookie (and C{.rpcport}) to the node's data directory, and
    at stop closes everything and removes both files.

    @ivar node: the node controlled.
    @ivar authenticator: the L{Authenticator}.
    @ivar repeated: the L{RepeatedEvents<bitp2p.logs.RepeatedEvents>} of the
        lines anyone who reaches the API can cause (refused connections,
        wrong credentials): the first written, the rest summarised.
    @ivar api: the L{ControlAPI}, at C{/rpc} and (for POSTs) at C{/}.
    @ivar root: the resource tree (L{Root}): C{root.putChild(b"metrics",
        ...)} adds a resource beside the API, behind the same
        authentication; C{root.putHome(b"dashboard", ...)} also sends a
        browser's C{GET /} there. C{/health} (L{Health}) is served beside
        it without authentication.
    @ivar site: the twisted.web site served.
    @ivar port: the listening port, once listening (else L{None}).
    @ivar address: the address listened on, once listening (else L{None}).
    """

    name = "bitp2p-control"

    def __init__(
        self,
        node,
        endpoint: str,
        password: str | None = None,
        user: str = DEFAULT_USER,
        reactor=None,
    ) -> None:
        """
        @raise ValueError: with neither a data directory (for the cookie)
            nor a password, for a bad password or user name, or an endpoint
            string Twisted cannot parse.
        """
        if reactor is None:
            from twisted.internet import reactor
        if password is None and not node.config.datadir:
            raise ValueError("the control API needs --datadir (for its cookie) or --rpc-password")
        self.node = node
        self._reactor = reactor
        # The main endpoint first, then those of addEndpoint (--web-port).
        self._endpoints = [(endpoint, serverEndpoint(reactor, endpoint))]
        # The log lines anyone who reaches the API can cause (refusals,
        # wrong credentials, connections closed to make room), summarised.
        self.repeated = RepeatedEvents(reactor)
        # Each request admitted marks its connection as an authenticated
        # client's, which the connection limit keeps (site.py says why).
        self.authenticator = Authenticator(
            password, user, reactor, self.repeated, onAdmitted=admitted
        )
        self.api = ControlAPI(node, self.authenticator)
        self.root = Root()
        self.root.putAPI(self.api)
        guarded = Guarded(self.root, self.authenticator)
        # The one path served without credentials (site.py says why).
        guarded.putOpen(b"health", Health(self._nodeIsUp))
        self.site = ControlSite(guarded, timeout=HTTP_IDLE_TIMEOUT_S, reactor=reactor)
        self.site.closed = ClosedConnections(self.repeated)
        self._factory = ConnectionLimit(
            self.site, MAX_HTTP_CONNECTIONS, MAX_HTTP_CONNECTIONS_PER_HOST
        )
        self.port = None
        self.address = None
        self._pending: list[defer.Deferred] = []  # endpoints that listen later
        self._portFile: tuple[Path, bytes] | None = None
        self.extraPorts: list = []

    def _nodeIsUp(self) -> bool:
        """
        What C{/health} says: the node runs and, unless told not to listen,
        listens.
        """
        node = self.node
        return bool(node.running) and (
            node.listeningAddress is not None or not node.config.listen
        )

    def addEndpoint(self, endpoint: str) -> None:
        """
        Serve the same site, with the same authentication, on one more
        endpoint too (C{--web-port}, for the dashboard).

        @raise ValueError: for an endpoint string Twisted cannot parse.
        """
        self._endpoints.append((endpoint, serverEndpoint(self._reactor, endpoint)))

    def privilegedStartService(self) -> None:
        self._listen()
        service.Service.privilegedStartService(self)

    def startService(self) -> None:
        self._listen()
        service.Service.startService(self)
        datadir = self.node.config.datadir
        if datadir:
            path = self.authenticator.writeCookie(datadir)
            log.info("Control API cookie written to {path}", path=str(path))
        self._writePortFile()

    def stopService(self) -> defer.Deferred:
        service.Service.stopService(self)
        self.authenticator.removeCookie()
        self._removePortFile()
        self.authenticator.stop()
        self.repeated.stop()
        pending, self._pending = self._pending, []
        for d in pending:
            d.cancel()
        waits = []
        if self.port is not None:
            waits.append(defer.maybeDeferred(self.port.stopListening))
        self.port = self.address = None
        extra, self.extraPorts = self.extraPorts, []
        waits.extend(defer.maybeDeferred(port.stopListening) for port in extra)
        waits.extend(self._factory.closeAll())
        return defer.gatherResults(waits).addCallback(lambda _: None)

    def _listen(self) -> None:
        """
        Listen now on every endpoint (an endpoint that listens later, such
        as an onion service, is waited for in the background).

        @raise twisted.internet.error.CannotListenError: if it cannot listen.
        """
        if self.port is not None or self.extraPorts or self._pending:
            return
        try:
            for index, (description, endpoint) in enumerate(self._endpoints):
                listened = self._listening if index == 0 else self._listeningAlso
                port, later = listenNow(endpoint, self._factory, description, listened)
                if later is not None:
                    self._pending.append(later)
                else:
                    listened(port)
        except BaseException:
            for port in [self.port, *self.extraPorts]:
                if port is not None:
                    port.stopListening()
            self.port = self.address = None
            self.extraPorts = []
            raise

    def _listeningAlso(self, port) -> None:
        self.extraPorts.append(port)
        log.info(
            "Control API and dashboard also on {address}", address=hostPort(port.getHost())
        )

    def _listening(self, port) -> None:
        self.port = port
        self.address = port.getHost()
        log.info("Control API listening on {address}", address=hostPort(self.address))
        host = getattr(self.address, "host", None)
        if isinstance(host, str):
            try:
                loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                log.warn(
                    "The control API listens on {host}, not on loopback: anyone who can "
                    "reach it may try passwords",
                    host=host,
                )
        if self.running:  # an endpoint that listened later
            self._writePortFile()

    def _writePortFile(self) -> None:
        """
        Write the TCP port to C{DATADIR/.rpcport}, where C{bitp2p-cli} looks.
        """
        datadir = self.node.config.datadir
        if not datadir or not isinstance(self.address, (IPv4Address, IPv6Address)):
            return
        path = Path(datadir) / RPC_PORT_FILE
        data = f"{self.address.port}\n".encode("ascii")
        try:
            atomic_write(path, data, mode=0o644)
        except OSError as e:
            log.warn("Cannot write {path}: {error}", path=str(path), error=e)
            return
        self._portFile = (path, data)

    def _removePortFile(self) -> None:
        if self._portFile is None:
            return
        (path, data), self._portFile = self._portFile, None
        try:
            if path.read_bytes() == data:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warn("Cannot remove {path}: {error}", path=str(path), error=e)
