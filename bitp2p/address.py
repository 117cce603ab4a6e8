"""
Peer addresses: parsing, formatting, routability and network groups.

An address on the wire is C{host:port} with an IPv4 literal, or C{[ipv6]:port}.
L{Address} is the parsed, normalised form used everywhere inside bitp2p; its
C{str()} is the wire form.

It owns the L{Address} type and the rules about addresses (parsing,
routability, groups, which groups are the node's own: L{LocalNetworks}, and
the IP of a Twisted C{IAddress}: L{hostAddress}); it knows nothing of
connections or the reactor.
"""

from __future__ import annotations

import functools
import ipaddress

import attrs
from twisted.internet.address import IPv4Address, IPv6Address

from bitp2p.constants import HOST_CACHE_SIZE, MAX_IP_CHARS, MAX_ZONE_CHARS


class AddressError(ValueError):
    """
    A string is not a valid C{host:port} / C{[ipv6]:port} peer address.
    """


@attrs.frozen(order=True)
class Address:
    """
    A peer's listening address.

    @ivar host: the IP literal, normalised (IPv4 dotted quad, or compressed
        IPv6 without brackets; an IPv4-mapped IPv6 address becomes IPv4).
    @ivar port: the TCP port, 0..65535.
    """

    host: str
    port: int

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return _ip(self.host)

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        if self.is_ipv6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @classmethod
    def of(cls, host: str, port: int) -> Address:
        """
        Build a normalised address from an IP literal and a port.

        @raise AddressError: if C{host} is not an IP literal or C{port} is out
            of range.
        """
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise AddressError(f"bad port {port!r}")
        if type(host) is not str or len(host) > _MAX_HOST_CHARS:
            # Refused before the cache: it remembers only short strings.
            raise AddressError(f"not an IP address: {show(host) if isinstance(host, str) else repr(host)}")
        return cls(_normalHost(host), port)


# Parsing an IP literal with ipaddress costs ~10 us; the same few hosts come
# back again and again (every connection's remote end, every addr entry of a
# known node), so their normal forms and parsed IPs are remembered
# (HOST_CACHE_SIZE of each). Only what can be an IP literal is: a peer
# choosing the strings (addr entries, version's addr_recv) must not choose
# what the caches hold, so a longer string, or a zone on anything but IPv6,
# is refused before anything remembers it.


# The longest string that may be an IP literal with its zone: what
# Address.of lets reach the cache of _normalHost.
_MAX_HOST_CHARS = MAX_IP_CHARS + 1 + MAX_ZONE_CHARS


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _normalHost(host: str) -> str:
    """
    The normal form of an IP literal (raises L{AddressError} if not one). A
    zone (C{fe80::1%eth0}) is allowed on IPv6 only, and dropped. Only
    strings of at most C{_MAX_HOST_CHARS} reach it (L{Address.of}).
    """
    ip, sep, zone = host.partition("%")
    if len(ip) > MAX_IP_CHARS or (sep and not (0 < len(zone) <= MAX_ZONE_CHARS and ":" in ip)):
        raise AddressError(f"not an IP address: {show(host)}")
    return _normalIp(ip)


def show(text: str, limit: int = 64) -> str:
    """
    C{text} for an error message: its C{repr}, cut after C{limit}
    characters (what a peer sent may be a megabyte long).
    """
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _normalIp(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise AddressError(f"not an IP address: {host!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(host)


def parse_address(text: str) -> Address:
    """
    Parse the wire form C{host:port} or C{[ipv6]:port}.

    @raise AddressError: if C{text} is not of that form.
    """
    if not isinstance(text, str):
        raise AddressError(f"address must be a string, not {type(text).__name__}")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]:")
        if not sep or ":" not in host:  # brackets are for IPv6 only
            raise AddressError(f"bad address {show(text)}")
    else:
        host, sep, rest = text.rpartition(":")
        if not sep or ":" in host:
            raise AddressError(f"bad address {show(text)}")
    # ASCII digits only: str.isdigit() also accepts "²" and "٨", which
    # int() refuses or reads as another number.
    if not (rest.isascii() and rest.isdigit()) or len(rest) > 5:
        raise AddressError(f"bad port in {show(text)}")
    return Address.of(host, int(rest))


def split_host_port(text: str) -> tuple[str, int]:
    """
    Split C{HOST:PORT} where HOST may also be a host name (for C{--seed}).

    @raise AddressError: if there is no valid port.
    """
    if text.startswith("["):
        address = parse_address(text)
        return address.host, address.port
    host, sep, port = text.rpartition(":")
    if not sep or not host or ":" in host or not (port.isascii() and port.isdigit()) or not 0 < int(port) <= 65535:
        raise AddressError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def is_routable(address: Address) -> bool:
    """
    Whether an address could be a peer at all: not unspecified (0.0.0.0, ::)
    nor in 0.0.0.0/8 ("this network"), not multicast, not broadcast, not
    reserved, not link-local (169.254.0.0/16, fe80::/10: valid only on one
    link, and the zone that would say which is not part of an address), and
    not port 0.

    Loopback and private ranges count as routable: bitp2p networks are often
    run on one machine or one LAN.
    """
    if address.port == 0:
        return False
    return _routableHost(address.host)


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _routableHost(host: str) -> bool:
    ip = _ip(host)
    if ip.is_loopback:
        return True
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved or ip.is_link_local:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and (
        ip == ipaddress.IPv4Address("255.255.255.255") or int(ip) >> 24 == 0
    ):
        return False
    return True


def network_group(address: Address) -> str:
    """
    The network group used to spread connections and address buckets: the
    IPv4 /16 or the IPv6 /32 the address lies in, as a network string
    (C{"10.1.0.0/16"}). Loopback and private ranges are grouped the same
    way as public ones.
    """
    return _groupOf(address.host)


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _groupOf(host: str) -> str:
    ip = _ip(host)
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Network((int(ip) & 0xFFFF0000, 16)))
    return str(ipaddress.IPv6Network((int(ip) >> 96 << 96, 32)))


def is_local_range(address: Address) -> bool:
    """
    Whether an address is loopback or private (RFC 1918, RFC 4193, link
    local): on this machine or its local network.
    """
    return _localHost(address.host)


_LOCAL_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
        "::1/128", "fc00::/7", "fe80::/10",
    )
)


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _localHost(host: str) -> bool:
    # Not ipaddress's is_private, which also counts documentation and
    # benchmarking ranges (192.0.2.0/24, 2001:db8::/32) that tests use as
    # public addresses.
    ip = _ip(host)
    return any(ip.version == n.version and ip in n for n in _LOCAL_RANGES)


class LocalNetworks:
    """
    The network groups that are this node's own (that of its listening
    address, of the local end of its connections, and 127.0.0.0/16 when it
    listens on all interfaces), and what follows from them for diversity.

    Loopback and private addresses are grouped by /16 like public ones, so
    nodes on 127.1.0.1 and 127.2.0.1 are in different groups. But a loopback
    or private address in one of the node's own groups is on the same
    machine or network as the node: L{diversityKey} exempts it from the
    one-outbound-per-group rule and the inbound group cap, so that many nodes
    on one address (C{127.0.0.1}, ports 5000, 5001, ...) still form a
    network; and L{bucketGroup} buckets it by itself in the address manager.
    An attacker cannot use this from outside: loopback addresses are only
    accepted from loopback peers, and public addresses never get the
    exemption.
    """

    def __init__(self) -> None:
        self._groups: set[str] = set()

    def __contains__(self, group: object) -> bool:
        return group in self._groups

    def add(self, address: Address) -> str | None:
        """
        C{address} is one of ours.

        @return: its network group if that is newly local, else L{None}.
        """
        group = network_group(address)
        if group in self._groups:
            return None
        self._groups.add(group)
        return group

    def diversityKey(self, address: Address) -> str | None:
        """
        The network group that counts for the one-outbound-per-group rule
        and the inbound group cap, or L{None} for an address exempt from
        both: a loopback or private address in one of our own groups.
        """
        group = network_group(address)
        if group in self._groups and is_local_range(address):
            return None
        return group

    def bucketGroup(self, address: Address) -> str:
        """
        The group the address manager buckets C{address} by: its network
        group, but for a local address (see L{diversityKey}) the address
        itself, or every node on 127.0.0.1 would share one bucket of 64
        slots.
        """
        key = self.diversityKey(address)
        return key if key is not None else f"local {address}"


def hostAddress(address) -> Address | None:
    """
    The IP address (port 0) of a Twisted C{IAddress}, or L{None} (a UNIX
    socket, a test transport without one, no address).
    """
    host = getattr(address, "host", None)
    if not isinstance(address, (IPv4Address, IPv6Address)) or host is None:
        return None
    try:
        return Address.of(host, 0)
    except AddressError:
        return None


def address_network(address: Address) -> str:
    """
    (stub) The network of C{address}.
    """
    return "ipv6" if address.is_ipv6 else "ipv4"
