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

import functools
from typing import Callable

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IStreamClientEndpointStringParserWithReactor,
    IStreamServerEndpointStringParser,
)
from twisted.logger import Logger
from twisted.plugin import getPlugins
from twisted.python.failure import Failure

from bitp2p.address import Address, AddressError, split_host_port, unreachable_reason

__all__ = [
    "Target",
    "check_listen",
    "client_kinds",
    "listenNow",
    "parse_target",
    "server_kinds",
    "serverEndpoint",
]

log = Logger()

# Twisted's built-in kinds (plugins add the rest).
_SERVER_KINDS = frozenset({"tcp", "unix", "ssl"})
_CLIENT_KINDS = frozenset({"tcp", "unix", "ssl"})


@functools.cache
def server_kinds() -> frozenset[str]:
    """
    The server endpoint kinds available: Twisted's and its plugins' (looked
    up once: scanning the plugins costs half a millisecond).
    """
    return _SERVER_KINDS | {p.prefix for p in getPlugins(IStreamServerEndpointStringParser)}


@functools.cache
def client_kinds() -> frozenset[str]:
    """
    The client endpoint kinds available: Twisted's and its plugins' (looked
    up once).
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

    @ivar address: the address dialed, when it is an address and port (an
        IP literal, or an overlay network's host: see
        L{Address<bitp2p.address.Address>}); connections to it are then
        counted in the address manager.
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

    @raise ValueError: with a one-line message when it is none of those, or
        when HOST is of a network bitp2p cannot reach (C{cannot reach onion
        addresses: bitp2p has no proxy}; a client endpoint such as
        C{tor:example.onion:5000} is another matter).
    """
    if not isinstance(text, str):
        raise ValueError(f"expected HOST:PORT or an endpoint, got {text!r}")
    original = text
    kind, _, rest = text.partition(":")
    if kind == "tcp" and "=" not in rest:
        text = rest
    elif rest and kind in client_kinds():
        return Target(text, 0, text)
    host = text.rpartition(":")[0]
    unreachable = unreachable_reason(host[1:-1] if host.startswith("[") else host)
    if unreachable is not None:
        raise ValueError(unreachable)
    try:
        return Target(*split_host_port(text))
    except AddressError:
        pass
    raise ValueError(f"expected HOST:PORT or an endpoint such as unix:/path.sock, got {original!r}")


def serverEndpoint(reactor, description: str):
    """
    C{serverFromString}, with a one-line error.

    @raise ValueError: C{cannot listen on DESCRIPTION: why}, for a string
        Twisted cannot parse.
    """
    try:
        return serverFromString(reactor, description)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"cannot listen on {description}: {e}") from None


def listenNow(endpoint, factory, description: str, listened: Callable[[object], None]):
    """
    Listen on C{endpoint}, synchronously when it can, so that a busy port
    fails the start. An endpoint that listens later (an onion service) is
    left to listen in the background: C{listened(port)} is called when it
    does, and a failure then is logged (a cancelled listen, silently).

    @return: C{(port, None)} when it listened at once, C{(None, deferred)}
        when it listens later (cancel the Deferred to give it up).
    @raise Exception: what the endpoint failed with at once (such as
        C{CannotListenError}).
    """
    now: list = []
    later: list = []

    def arrived(outcome) -> None:
        if not later:
            now.append(outcome)
        elif not isinstance(outcome, Failure):
            listened(outcome)
        elif not outcome.check(CancelledError):
            log.error(
                "Cannot listen on {description}: {error}",
                description=description,
                error=outcome.getErrorMessage(),
            )

    d: Deferred = endpoint.listen(factory)
    d.addBoth(arrived)
    later.append(True)
    if not now:
        return None, d
    if isinstance(now[0], Failure):
        now[0].raiseException()
    return now[0], None
