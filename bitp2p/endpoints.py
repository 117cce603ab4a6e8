"""
Where a node listens and what it dials, as Twisted endpoint strings.

Listening takes server endpoint descriptions (C{tcp:5000},
C{tcp6:5000:interface=\\:\\:1}, C{unix:/run/bitp2p.sock}, C{onion:5000}
with txtorcon installed, ...) and dialing takes client ones (C{tcp:HOST:PORT},
C{unix:path=/run/bitp2p.sock}, C{tor:example.onion:5000} with txtorcon), as
well as the plain C{HOST:PORT} and C{[IPV6]:PORT} of the wire protocol. The
kinds known are Twisted's own and those its plugins add; nothing here
depends on any one of them.
"""

from __future__ import annotations

import attrs
from twisted.internet.interfaces import (
    IStreamClientEndpointStringParserWithReactor,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import getPlugins

from bitp2p.address import Address, AddressError, split_host_port

__all__ = ["Target", "check_listen", "client_kinds", "parse_target", "server_kinds"]

# Twisted's built-in kinds (plugins add the rest).
_SERVER_KINDS = frozenset({"tcp", "unix", "ssl"})
_CLIENT_KINDS = frozenset({"tcp", "unix", "ssl"})


def server_kinds() -> frozenset[str]:
    """
    The server endpoint kinds available: Twisted's and its plugins'.
    """
    return _SERVER_KINDS | {p.prefix for p in getPlugins(IStreamServerEndpointStringParser)}


def client_kinds() -> frozenset[str]:
    """
    The client endpoint kinds available: Twisted's and its plugins'.
    """
    return _CLIENT_KINDS | {
        p.prefix for p in getPlugins(IStreamClientEndpointStringParserWithReactor)
    }


def _kind(description: str) -> str:
    return description.split(":", 1)[0]


def check_listen(description: str) -> str:
    """
    Check a server endpoint description's kind.

    @return: C{description}
    @raise ValueError: with a one-line message, for an unknown kind.
    """
    if not isinstance(description, str) or ":" not in description:
        raise ValueError(f"expected an endpoint such as tcp:5000, got {description!r}")
    kinds = server_kinds()
    if _kind(description) not in kinds:
        raise ValueError(
            f"unknown endpoint kind in {description!r}: one of {', '.join(sorted(kinds))}"
            " (onion needs txtorcon)"
        )
    return description


@attrs.frozen
class Target:
    """
    Something to dial: a C{host} and C{port}, or an C{endpoint} description.

    @ivar address: the address dialed, when it is an IP literal and port
        (connections to it are then counted in the address manager).
    """

    host: str
    port: int
    endpoint: str | None = None

    @property
    def address(self) -> Address | None:
        if self.endpoint is not None:
            return None
        try:
            return Address.of(self.host, self.port)
        except AddressError:
            return None

    def __str__(self) -> str:
        if self.endpoint is not None:
            return self.endpoint
        address = self.address
        return str(address) if address is not None else f"{self.host}:{self.port}"


def parse_target(text: str) -> Target:
    """
    Parse C{HOST:PORT}, C{[IPV6]:PORT}, or a client endpoint description.
    C{tcp:HOST:PORT} is taken as C{HOST:PORT}.

    @raise ValueError: with a one-line message when it is none of those.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected HOST:PORT or an endpoint, got {text!r}")
    original = text
    kind, _, rest = text.partition(":")
    if kind == "tcp" and "=" not in rest:
        text = rest
    elif rest and kind in client_kinds():
        return Target(text, 0, text)
    try:
        return Target(*split_host_port(text))
    except AddressError:
        pass
    raise ValueError(f"expected HOST:PORT or an endpoint such as unix:/path.sock, got {original!r}")
