"""
Peer addresses: parsing, formatting, routability and network groups.

An address on the wire is C{host:port} with an IPv4 literal, or C{[ipv6]:port}.
L{Address} is the parsed, normalised form used everywhere inside bitp2p; its
C{str()} is the wire form.

On a Bitcoin network, peers also tell of addresses of the overlay networks
BIP 155 names, which an L{Address} holds too (L{address_network} says which
network an address is of):

  - a Tor v3 onion service, C{<56 base32 characters>.onion:port}, valid
    only if its checksum and version check out (Tor's rend-spec-v3);
  - an I2P destination, C{<52 base32 characters>.b32.i2p:port};
  - a CJDNS address, an IPv6 address in fc00::/8 known to be CJDNS, written
    C{[cjdns:fc00::1]:port} (a plain C{[fc00::1]:port} is an IPv6 address).

They are routable and have network groups of their own, as in Bitcoin
Core, but bitp2p has no proxy: they are never reachable
(L{is_reachable}), and so never dialed.

It owns the L{Address} type and the rules about addresses (parsing,
routability, groups, which groups are the node's own: L{LocalNetworks}, and
the IP of a Twisted C{IAddress}: L{hostAddress}); it knows nothing of
connections or the reactor.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import ipaddress

import attrs
from twisted.internet.address import IPv4Address, IPv6Address

from bitp2p.constants import ADDRESS_CACHE_SIZE, HOST_CACHE_SIZE, MAX_IP_CHARS, MAX_ZONE_CHARS


class AddressError(ValueError):
    """
    A string is not a valid C{host:port} / C{[ipv6]:port} peer address.
    """


@attrs.frozen(order=True, cache_hash=True)
class Address:
    """
    A peer's listening address.

    @ivar host: the IP literal, normalised (IPv4 dotted quad, or compressed
        IPv6 without brackets; an IPv4-mapped IPv6 address becomes IPv4);
        or an overlay network's host, normalised (lower case):
        C{<56 base32>.onion}, C{<52 base32>.b32.i2p}, C{cjdns:<fc00::/8
        IPv6>}.
    @ivar port: the TCP port, 0..65535.
    """

    host: str
    port: int

    # Its hash is computed once (cache_hash): addresses are dictionary keys
    # everywhere (the address manager's tables, the peers' known addresses),
    # and the same one is looked up again and again.

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """
        The IP address, or L{None} for an address of an overlay network
        (onion, I2P, CJDNS), which no IP socket reaches.
        """
        host = self.host
        # (_networkOf's tests inlined: this is read on every address's path.)
        if host.endswith(_OVERLAY_SUFFIXES) or host.startswith(_CJDNS_PREFIX):
            return None
        return _ip(host)

    @property
    def is_ipv6(self) -> bool:
        """
        Whether this is an IPv6 address (not a CJDNS one).
        """
        host = self.host
        return ":" in host and not host.startswith(_CJDNS_PREFIX)

    @property
    def is_loopback(self) -> bool:
        """
        Whether this is a loopback IP address (never an overlay address).
        """
        return _loopbackHost(self.host)

    @property
    def is_unspecified(self) -> bool:
        """
        Whether this is the unspecified IP address (C{0.0.0.0}, C{::}).
        """
        ip = self.ip
        return ip is not None and ip.is_unspecified

    def __str__(self) -> str:
        if ":" in self.host:  # IPv6, CJDNS
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @classmethod
    def of(cls, host: str, port: int, *, remember: bool = True) -> Address:
        """
        Build a normalised address from a host (an IP literal or an overlay
        network's host, see L{Address}) and a port.

        @param remember: whether the address may be remembered, and shared
            with whoever asks for it again (an address that comes back, as
            a known node's). L{False} for one seen once, as a connection's
            remote end with its ephemeral port: remembered, every inbound
            peer held one in the cache (about 210 bytes a peer).

        @raise AddressError: if C{host} is neither or C{port} is out of
            range.
        """
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise AddressError(f"bad port {port!r}")
        if type(host) is not str or len(host) > _MAX_HOST_CHARS:
            # Refused before the cache: it remembers only short strings.
            raise AddressError(f"not an IP address: {show(host) if isinstance(host, str) else repr(host)}")
        if remember and cls is Address and type(port) is int:
            return _addressOf(host, port)
        return cls(_normalHost(host), port)


@functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def _addressOf(host: str, port: int) -> Address:
    """
    L{Address.of} for a checked C{host} (a C{str} of at most
    C{_MAX_HOST_CHARS}) and C{port} (an C{int} in range): one shared
    address for each (host, port) asked for again (an invalid host raises,
    and is not remembered).
    """
    return Address(_normalHost(host), port)


# Parsing an IP literal with ipaddress costs ~10 us; the same few hosts come
# back again and again (every connection's remote end, every addr entry of a
# known node), so their normal forms and parsed IPs are remembered
# (HOST_CACHE_SIZE of each). Only what can be an address is: a peer
# choosing the strings (addr entries, version's addr_recv) must not choose
# what the caches hold, so a longer string, or a zone on anything but IPv6,
# is refused before anything remembers it.

# The overlay networks: bitp2p has no proxy to reach them.
_OVERLAYS = frozenset({"onion", "i2p", "cjdns"})
_ONION_SUFFIX = ".onion"
_I2P_SUFFIX = ".b32.i2p"
_CJDNS_PREFIX = "cjdns:"
_OVERLAY_SUFFIXES = (_ONION_SUFFIX, _I2P_SUFFIX)
# Tor rend-spec-v3: base32(PUBKEY(32) | CHECKSUM(2) | VERSION(1)) + ".onion".
_ONION_CHARS = 56
_ONION_VERSION = 3
# I2P: base32 of a 32-byte SHA-256 hash, without its padding.
_I2P_CHARS = 52

# The longest string that may be an address: an IP literal with its zone,
# or an onion host. What Address.of lets reach the cache of _normalHost.
_MAX_HOST_CHARS = max(MAX_IP_CHARS + 1 + MAX_ZONE_CHARS, _ONION_CHARS + len(_ONION_SUFFIX))


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _normalHost(host: str) -> str:
    """
    The normal form of an IP literal or an overlay network's host (raises
    L{AddressError} if neither). A zone (C{fe80::1%eth0}) is allowed on IPv6
    only, and dropped. Only strings of at most C{_MAX_HOST_CHARS} reach it
    (L{Address.of}).
    """
    lower = host.lower()
    if lower.endswith(_ONION_SUFFIX):
        return _normalOnion(lower[: -len(_ONION_SUFFIX)], host)
    if lower.endswith(_I2P_SUFFIX):
        return _normalI2p(lower[: -len(_I2P_SUFFIX)], host)
    if lower.startswith(_CJDNS_PREFIX):
        return _normalCjdns(lower[len(_CJDNS_PREFIX) :], host)
    ip, sep, zone = host.partition("%")
    if len(ip) > MAX_IP_CHARS or (sep and not (0 < len(zone) <= MAX_ZONE_CHARS and ":" in ip)):
        raise AddressError(f"not an IP address: {show(host)}")
    return _normalIp(ip)


def _b32decode(text: str) -> bytes | None:
    """
    The bytes of lower case base32 without padding, or L{None} if it is not
    that or not canonical (unused trailing bits not zero), as Bitcoin Core's
    C{DecodeBase32} refuses.
    """
    if not text.isascii():
        return None
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    return raw if _b32encode(raw) == text else None


def _b32encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def _onionChecksum(pubkey: bytes) -> bytes:
    return hashlib.sha3_256(b".onion checksum" + pubkey + bytes([_ONION_VERSION])).digest()[:2]


def _normalOnion(label: str, host: str) -> str:
    raw = _b32decode(label) if len(label) == _ONION_CHARS else None
    if raw is None or raw[34] != _ONION_VERSION or raw[32:34] != _onionChecksum(raw[:32]):
        raise AddressError(f"not a Tor v3 onion address: {show(host)}")
    return label + _ONION_SUFFIX


def _normalI2p(label: str, host: str) -> str:
    raw = _b32decode(label) if len(label) == _I2P_CHARS else None
    if raw is None:
        raise AddressError(f"not an I2P address: {show(host)}")
    return label + _I2P_SUFFIX


def _normalCjdns(text: str, host: str) -> str:
    try:
        ip = ipaddress.IPv6Address(text) if "%" not in text else None
    except ValueError:
        ip = None
    if ip is None or ip.packed[0] != 0xFC:
        raise AddressError(f"not a CJDNS address: {show(host)}")
    return _CJDNS_PREFIX + str(ip)


def onion_host(pubkey: bytes) -> str:
    """
    The host of the Tor v3 onion service of the 32-byte ed25519 public key
    C{pubkey} (C{<56 base32>.onion}).

    @raise ValueError: if C{pubkey} is not 32 bytes.
    """
    if len(pubkey) != 32:
        raise ValueError(f"a Tor v3 public key is 32 bytes, not {len(pubkey)}")
    raw = bytes(pubkey) + _onionChecksum(bytes(pubkey)) + bytes([_ONION_VERSION])
    return _b32encode(raw) + _ONION_SUFFIX


def i2p_host(digest: bytes) -> str:
    """
    The host of the I2P destination of the 32-byte hash C{digest}
    (C{<52 base32>.b32.i2p}).

    @raise ValueError: if C{digest} is not 32 bytes.
    """
    if len(digest) != 32:
        raise ValueError(f"an I2P address is 32 bytes, not {len(digest)}")
    return _b32encode(bytes(digest)) + _I2P_SUFFIX


def cjdns_host(raw: bytes) -> str:
    """
    The host of the CJDNS address of the 16 bytes C{raw}
    (C{cjdns:fc..}).

    @raise ValueError: if C{raw} is not 16 bytes starting with 0xfc.
    """
    if len(raw) != 16 or raw[0] != 0xFC:
        raise ValueError("a CJDNS address is 16 bytes starting with 0xfc")
    return _CJDNS_PREFIX + str(ipaddress.IPv6Address(bytes(raw)))


def host_bytes(address: Address) -> bytes:
    """
    The bytes of an address's host, as BIP 155 carries them: 4 for IPv4, 16
    for IPv6 and CJDNS, the 32-byte public key of an onion, the 32-byte hash
    of an I2P destination.
    """
    return _bytesOf(address.host)


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _bytesOf(host: str) -> bytes:
    kind = _networkOf(host)
    if kind == "onion":
        return base64.b32decode(host[:_ONION_CHARS].upper())[:32]
    if kind == "i2p":
        return base64.b32decode(host[:_I2P_CHARS].upper() + "====")
    if kind == "cjdns":
        return ipaddress.IPv6Address(host[len(_CJDNS_PREFIX) :]).packed
    return _ip(host).packed


def _networkOf(host: str) -> str:
    if host.endswith(_ONION_SUFFIX):
        return "onion"
    if host.endswith(_I2P_SUFFIX):
        return "i2p"
    if host.startswith(_CJDNS_PREFIX):
        return "cjdns"
    return "ipv6" if ":" in host else "ipv4"


def address_network(address: Address) -> str:
    """
    The network an address is of: C{"ipv4"}, C{"ipv6"}, C{"onion"} (Tor
    v3), C{"i2p"} or C{"cjdns"}. (An IPv4-mapped IPv6 address is IPv4: it
    was normalised so.)
    """
    return _networkOf(address.host)


def is_reachable(address: Address) -> bool:
    """
    Whether this node can dial C{address} at all: only IPv4 and IPv6
    addresses, since bitp2p has no proxy to reach the overlay networks
    (Bitcoin Core's C{IsReachable} without C{-proxy}, C{-onion},
    C{-i2psam} or C{-cjdnsreachable}).
    """
    host = address.host
    return not (host.endswith(_OVERLAY_SUFFIXES) or host.startswith(_CJDNS_PREFIX))


def unreachable_reason(host: str) -> str | None:
    """
    Why bitp2p cannot dial C{host}, in one line, if it names a host of an
    overlay network (a valid address or not: resolving a C{.onion} name
    would leak it to the DNS); L{None} for any other host.
    """
    if not isinstance(host, str):
        return None
    lower = host.lower()
    if lower.endswith(_ONION_SUFFIX) or lower.endswith(".onion."):
        kind = "onion"
    elif lower.endswith(".i2p") or lower.endswith(".i2p."):
        kind = "I2P"
    elif lower.startswith(_CJDNS_PREFIX):
        kind = "CJDNS"
    else:
        return None
    return f"cannot reach {kind} addresses: bitp2p has no proxy"


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
def _loopbackHost(host: str) -> bool:
    if host.endswith(_OVERLAY_SUFFIXES) or host.startswith(_CJDNS_PREFIX):
        return False
    return _ip(host).is_loopback


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(host)


def parse_address(text: str) -> Address:
    """
    Parse the wire form C{host:port} or C{[ipv6]:port}.

    @raise AddressError: if C{text} is not of that form.
    """
    if type(text) is str and len(text) <= _MAX_ADDRESS_CHARS:
        return _parsed(text)
    if not isinstance(text, str):
        raise AddressError(f"address must be a string, not {type(text).__name__}")
    return _parse(text)


# The longest wire form of an address: "[" host "]:" and 5 digits.
_MAX_ADDRESS_CHARS = _MAX_HOST_CHARS + 8


def _parse(text: str) -> Address:
    """
    L{parse_address} of a C{str}.
    """
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


# The same texts come back in every addr message that tells of a known
# node: their addresses are remembered (only valid ones, at most
# _MAX_ADDRESS_CHARS long: an error is raised, not remembered).
_parsed = functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)(_parse)


def parse_dialable(text: str) -> Address | None:
    """
    L{parse_address}, for an address that could be a peer of this node:
    L{None} if it is not routable (L{is_routable}) or not reachable
    (L{is_reachable}). What an C{addr} entry's text goes through.

    @raise AddressError: if C{text} is not of the form.
    """
    if type(text) is str and len(text) <= _MAX_ADDRESS_CHARS:
        return _dialable(text)
    address = parse_address(text)
    return address if is_routable(address) and is_reachable(address) else None


@functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def _dialable(text: str) -> Address | None:
    """
    L{parse_dialable} of a short C{str}: the same texts come back in every
    C{addr} message that tells of a known node, and the three steps cost
    ~2 us where one look-up here costs a tenth of that (only valid texts
    are remembered: an error is raised, not remembered).
    """
    address = _parsed(text)
    return address if is_routable(address) and is_reachable(address) else None


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
    run on one machine or one LAN. So do valid onion, I2P and CJDNS
    addresses, as in Bitcoin Core (even though this node cannot reach them:
    L{is_reachable}). An I2P address may have port 0: I2P has no ports
    (BIP 155: "if not relevant for the network this MUST be 0"), and
    Bitcoin Core's I2P addresses all have port 0.
    """
    if address.port == 0 and not address.host.endswith(_I2P_SUFFIX):
        return False
    return _routableHost(address.host)


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _routableHost(host: str) -> bool:
    if _networkOf(host) in _OVERLAYS:
        # Valid if normal (an Address built without Address.of may not be).
        try:
            return len(host) <= _MAX_HOST_CHARS and _normalHost(host) == host
        except AddressError:
            return False
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

    An overlay address is grouped as Bitcoin Core's
    C{NetGroupManager::GetGroup} does, by its network and the first 4 bits
    of its (random) bytes: C{"onion:7/4"}, C{"i2p:a/4"}; for CJDNS, whose
    first byte is always 0xfc, the first 12 bits: C{"cjdns:fc30::/12"}. No
    such group is ever an IP group.
    """
    return _groupOf(address.host)


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _groupOf(host: str) -> str:
    kind = _networkOf(host)
    if kind in _OVERLAYS:
        try:
            raw = _bytesOf(host)
        except ValueError:  # not normal (built without Address.of)
            return f"{kind}:?"
        if kind == "cjdns":
            return f"cjdns:{raw[0]:02x}{raw[1] >> 4:x}0::/12"
        return f"{kind}:{raw[0] >> 4:x}/4"
    ip = _ip(host)
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Network((int(ip) & 0xFFFF0000, 16)))
    return str(ipaddress.IPv6Network((int(ip) >> 96 << 96, 32)))


def is_local_range(address: Address) -> bool:
    """
    Whether an address is loopback or private (RFC 1918, RFC 4193, link
    local): on this machine or its local network. Never an overlay address.
    """
    if _networkOf(address.host) in _OVERLAYS:
        return False
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
    socket, a test transport without one, no address, anything but an IP).
    """
    host = getattr(address, "host", None)
    if not isinstance(address, (IPv4Address, IPv6Address)) or host is None:
        return None
    try:
        found = Address.of(host, 0)
    except AddressError:
        return None
    return found if is_reachable(found) else None
