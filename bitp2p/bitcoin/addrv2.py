"""
BIP 155 addresses (stub: IPv4 and IPv6 only; the full module replaces it).
"""

from __future__ import annotations

import ipaddress

from bitp2p.address import Address, AddressError

IPV4, IPV6, TORV2, TORV3, I2P, CJDNS = 1, 2, 3, 4, 5, 6
_SIZES = {IPV4: 4, IPV6: 16, TORV2: 10, TORV3: 32, I2P: 32, CJDNS: 16}
_MAPPED = b"\0" * 10 + b"\xff\xff"


def fromBip155(network_id: int, raw: bytes, port: int) -> Address | None:
    size = _SIZES.get(network_id)
    if size is None:
        return None
    if len(raw) != size:
        raise ValueError(f"BIP 155 network {network_id}: {len(raw)} bytes, not {size}")
    if network_id == IPV4:
        return Address.of(str(ipaddress.IPv4Address(raw)), port)
    if network_id == IPV6:
        if raw.startswith(_MAPPED):
            return None
        return Address.of(str(ipaddress.IPv6Address(raw)), port)
    return None


def toBip155(address: Address) -> tuple[int, bytes]:
    ip = address.ip
    return (IPV6 if ip.version == 6 else IPV4), ip.packed


def toV1(address: Address) -> bytes | None:
    try:
        ip = address.ip
    except (AddressError, ValueError):
        return None
    return ip.packed if ip.version == 6 else _MAPPED + ip.packed


def fromV1(raw: bytes, port: int) -> Address | None:
    try:
        return Address.of(str(ipaddress.IPv6Address(raw)), port)
    except (AddressError, ValueError):
        return None
