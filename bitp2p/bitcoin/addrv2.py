"""
Addresses as the Bitcoin wire carries them: BIP 155's C{(network id,
bytes)} of C{addrv2}, and the 16 bytes of the pre-BIP155 C{addr}.

It owns the BIP 155 network ids and sizes and the conversions between them
and L{Address<bitp2p.address.Address>}; it knows nothing of messages (the
codec reads the network id, the length and the port, and hands them here)
or of the node.

The rules are Bitcoin Core's (C{src/netaddress.h}, C{netaddress.cpp}):

  - C{CNetAddr::SetNetFromBIP155Network}: a known network id with the wrong
    length is an error (Core throws, failing the whole message); an
    unknown id (from the future) is skipped silently; Tor v2 (id 3) is no
    longer known and so is skipped, whatever its length;
  - C{UnserializeV2Stream}: an address longer than 512 bytes is an error
    whatever its network; an IPv6 id carrying an IPv4-mapped address, a
    Tor v2 OnionCat address (fd87:d87e:eb43::/48) or an internal one
    (fd6b:88c0:8724::/48) is left invalid, i.e. skipped;
  - C{CNetAddr::IsValid}: a CJDNS address not starting with 0xfc is
    invalid, i.e. skipped;
  - C{SerializeV1Array}: onion, I2P and CJDNS addresses cannot be sent in
    an C{addr} (Core writes them as 16 zero bytes, an invalid address, so
    here they have no v1 form at all); C{SetLegacyIPv6}: the v1 bytes of
    an IPv4-mapped address are IPv4, those of OnionCat or internal
    addresses are invalid.

Skipping and validity are kept apart from routability: an address that is
valid here but not routable (C{0.0.0.0}, C{::1} from afar) is returned, and
the address manager's L{is_routable<bitp2p.address.is_routable>} drops it.
"""

from __future__ import annotations

import ipaddress

from bitp2p.address import (
    Address,
    address_network,
    cjdns_host,
    host_bytes,
    i2p_host,
    onion_host,
)

__all__ = [
    "ADDRV2_SIZES",
    "CJDNS",
    "I2P",
    "IPV4",
    "IPV6",
    "MAX_ADDRV2_SIZE",
    "TORV2",
    "TORV3",
    "fromBip155",
    "fromV1",
    "toBip155",
    "toV1",
]

# BIP 155 network ids.
IPV4 = 1
IPV6 = 2
TORV2 = 3
TORV3 = 4
I2P = 5
CJDNS = 6

# The length of each network's address, in bytes.
ADDRV2_SIZES: dict[int, int] = {IPV4: 4, IPV6: 16, TORV2: 10, TORV3: 32, I2P: 32, CJDNS: 16}

# BIP 155: "addr has a variable length, with a maximum of 512 bytes".
MAX_ADDRV2_SIZE = 512

# Prefixes of 16-byte IPv6 addresses that embed something else (Core's
# IPV4_IN_IPV6_PREFIX, TORV2_IN_IPV6_PREFIX, INTERNAL_IN_IPV6_PREFIX).
_IPV4_IN_IPV6 = bytes(10) + b"\xff\xff"
_TORV2_IN_IPV6 = bytes.fromhex("fd87d87eeb43")
_INTERNAL_IN_IPV6 = bytes.fromhex("fd6b88c08724")

_ID_OF = {"ipv4": IPV4, "ipv6": IPV6, "onion": TORV3, "i2p": I2P, "cjdns": CJDNS}
_NAMES = {IPV4: "IPv4", IPV6: "IPv6", TORV2: "TORv2", TORV3: "TORv3", I2P: "I2P", CJDNS: "CJDNS"}


def fromBip155(network_id: int, raw: bytes, port: int) -> Address | None:
    """
    The address of one C{addrv2} entry.

    @param network_id: the BIP 155 network id.
    @param raw: the address bytes.
    @param port: the port.
    @return: the address, or L{None} for one to skip: an unknown network
        (Tor v2 included), an IPv6 id carrying an IPv4-mapped, OnionCat or
        internal address, a CJDNS address outside fc00::/8.
    @raise ValueError: with a one-line message, for an address longer than
        C{MAX_ADDRV2_SIZE} or a known network's address of the wrong length
        (a violation: Bitcoin Core fails the message).
    """
    raw = bytes(raw)
    if len(raw) > MAX_ADDRV2_SIZE:
        raise ValueError(f"Address too long: {len(raw)} > {MAX_ADDRV2_SIZE}")
    if network_id == TORV2 or network_id not in ADDRV2_SIZES:
        return None
    size = ADDRV2_SIZES[network_id]
    if len(raw) != size:
        raise ValueError(
            f"BIP155 {_NAMES[network_id]} address with length {len(raw)} (should be {size})"
        )
    if network_id == IPV4:
        return Address(str(ipaddress.IPv4Address(raw)), port)
    if network_id == IPV6:
        if raw.startswith((_IPV4_IN_IPV6, _TORV2_IN_IPV6, _INTERNAL_IN_IPV6)):
            return None
        return Address(str(ipaddress.IPv6Address(raw)), port)
    if network_id == TORV3:
        return Address(onion_host(raw), port)
    if network_id == I2P:
        return Address(i2p_host(raw), port)
    if raw[0] != 0xFC:  # CJDNS
        return None
    return Address(cjdns_host(raw), port)


def toBip155(address: Address) -> tuple[int, bytes]:
    """
    The BIP 155 network id and address bytes of C{address} (its port is
    written apart).
    """
    return _ID_OF[address_network(address)], host_bytes(address)


def toV1(address: Address) -> bytes | None:
    """
    The 16 bytes of C{address} in a pre-BIP155 C{addr} entry (IPv4 as
    C{::ffff:a.b.c.d}, IPv6 as it is), or L{None} for an address that
    format cannot carry (onion, I2P, CJDNS: send those in C{addrv2} only).
    """
    kind = address_network(address)
    if kind == "ipv4":
        return _IPV4_IN_IPV6 + host_bytes(address)
    if kind == "ipv6":
        return host_bytes(address)
    return None


def fromV1(raw16: bytes, port: int) -> Address | None:
    """
    The address of the 16 bytes of a pre-BIP155 C{addr} entry: IPv4 for an
    IPv4-mapped address, else IPv6; L{None} for a Tor v2 OnionCat
    (fd87:d87e:eb43::/48) or internal (fd6b:88c0:8724::/48) address, which
    Core reads as invalid. (An fc00::/8 address stays IPv6: nothing says
    it is CJDNS.)

    @raise ValueError: if C{raw16} is not 16 bytes.
    """
    raw16 = bytes(raw16)
    if len(raw16) != 16:
        raise ValueError(f"an addr entry's address is 16 bytes, not {len(raw16)}")
    if raw16.startswith(_IPV4_IN_IPV6):
        return Address(str(ipaddress.IPv4Address(raw16[12:])), port)
    if raw16.startswith((_TORV2_IN_IPV6, _INTERNAL_IN_IPV6)):
        return None
    return Address(str(ipaddress.IPv6Address(raw16)), port)
