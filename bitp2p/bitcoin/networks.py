"""
The Bitcoin networks (stub: replaced by the full table).
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Network:
    name: str
    magic: bytes
    default_port: int
    dns_seeds: tuple[str, ...] = ()


NETWORKS = {
    n.name: n
    for n in (
        Network("mainnet", bytes.fromhex("f9beb4d9"), 8333, ("seed.bitcoin.sipa.be",)),
        Network("testnet3", bytes.fromhex("0b110907"), 18333, ()),
        Network("testnet4", bytes.fromhex("1c163f28"), 48333, ()),
        Network("signet", bytes.fromhex("0a03cf40"), 38333, ()),
        Network("regtest", bytes.fromhex("fabfb5da"), 18444, ()),
    )
}


def network(name: str) -> Network:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}: one of {', '.join(NETWORKS)}") from None
