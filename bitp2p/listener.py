"""
Listening: the node's server endpoints.

L{Listener} listens on the configured endpoint strings (or on C{port} and
C{interface}), synchronously, so that a busy port fails the start with a
one-line message; an endpoint that listens later (an onion service) is
waited for in the background. It works out, once, the address the node
advertises (the first TCP one), tells the node which of its addresses are
local, and stops listening at the stop.

It owns the listening ports; it knows nothing of what arrives on them (the
server factory it is given builds each connection) and nothing of peers.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Callable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from bitp2p.address import Address
from bitp2p.constants import LISTEN_BACKLOG
from bitp2p.endpoints import listenNow, serverEndpoint
from bitp2p.logs import UNSUMMARISED

if TYPE_CHECKING:
    from bitp2p.config import NodeConfig
    from bitp2p.logs import RepeatedEvents
    from bitp2p.tls import Identity

log = Logger()


class Listener:
    """
    The node's listening ports.

    @param serverFactory: builds the protocol of each inbound connection
        (wrapped in TLS with an C{identity}).
    @param onLocalAddress: C{(address)}: an address of this node (the one
        listened on; loopback when listening on every interface).
    @param repeated: where TLS refuses a connection that is not TLS (the
        node's L{RepeatedEvents}).
    """

    def __init__(
        self,
        config: NodeConfig,
        reactor,
        serverFactory,
        identity: Identity | None,
        onLocalAddress: Callable[[Address], None],
        repeated: RepeatedEvents = UNSUMMARISED,
    ) -> None:
        self._config = config
        self._repeated = repeated
        self._reactor = reactor
        self._serverFactory = serverFactory
        self._identity = identity
        self._onLocalAddress = onLocalAddress
        self._ports: list[IListeningPort] = []
        self._pendingListens: list[Deferred] = []  # endpoints that listen later
        # The address this node listens on (the real port when 0 was
        # asked), worked out once, in listen; a plain attribute: read on
        # every handshake.
        self.listeningAddress: Address | None = None

    def listen(self) -> None:
        """
        Listen now, synchronously, so that a busy port fails the start (an
        endpoint that listens later, such as an onion service, is waited for
        in the background).

        @raise twisted.internet.error.CannotListenError: if it cannot listen.
        @raise ValueError: for an endpoint string Twisted cannot parse.
        """
        if self._ports or not self._config.listen:
            return
        descriptions = self._config.listen_endpoints
        if not descriptions:
            interface = self._config.interface.replace(":", "\\:")
            descriptions = (
                f"tcp:{self._config.port}:interface={interface}:backlog={LISTEN_BACKLOG}",
            )
        try:
            for description in descriptions:
                port, later = listenNow(
                    serverEndpoint(self._reactor, description),
                    self._factory(),
                    description,
                    functools.partial(self._listening, description=description),
                )
                if later is not None:
                    self._pendingListens.append(later)
                else:
                    self._listening(port, description)
        except BaseException:
            for port in self._ports:
                port.stopListening()
            self._ports = []
            self.listeningAddress = None
            raise

    def _listening(self, port: IListeningPort, description: str) -> None:
        self._ports.append(port)
        bound = port.getHost()
        if self._config.listen_endpoints:
            log.info("Listening on {description}", description=description)
        if not isinstance(bound, (IPv4Address, IPv6Address)) or self.listeningAddress is not None:
            return
        host = bound.host
        if not self._config.listen_endpoints and self._config.interface not in ("0.0.0.0", "::"):
            host = self._config.interface  # as asked (what a test reactor reports may differ)
        address = Address.of(host, bound.port)
        if address.is_unspecified:
            # Listening on every interface includes loopback.
            self._onLocalAddress(Address.of("::1" if address.is_ipv6 else "127.0.0.1", 0))
        else:
            self._onLocalAddress(address)
        self.listeningAddress = address

    def _factory(self):
        if self._identity is not None:
            return self._identity.wrapServerFactory(self._serverFactory, self._repeated)
        return self._serverFactory

    def stopListening(self) -> list[Deferred]:
        """
        Stop listening (and waiting for endpoints that listen later).

        @return: one Deferred per port, firing once it is closed.
        """
        pending, self._pendingListens = self._pendingListens, []
        for d in pending:
            d.cancel()  # (a listen already done is not touched)
        ports, self._ports = self._ports, []
        self.listeningAddress = None
        return [maybeDeferred(port.stopListening) for port in ports]

    @property
    def ports(self) -> list[IListeningPort]:
        """
        The ports listened on (a copy).
        """
        return list(self._ports)

    @property
    def pendingListens(self) -> int:
        """
        Endpoints still on their way to listening (an onion service, ...).
        """
        return len(self._pendingListens)


__all__ = ["Listener"]
