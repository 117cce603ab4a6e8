"""
The Bitcoin networks: each one's message start (magic), default port and
DNS seeds.

It owns L{Network}, the table L{NETWORKS} and the look-up L{network}; it
knows nothing of connections, messages or the node.

The values are Bitcoin Core's chain parameters (C{pchMessageStart},
C{nDefaultPort} and C{vSeeds} of C{src/kernel/chainparams.cpp}), as of
Bitcoin Core master commit C{284c42a3ceb98587895935139984c52e9958005d}
(chain parameters of September 2025, the v30 release cycle). The seeds are
written as Core writes them, fully qualified (a trailing dot). Signet is
the default signet (no C{-signetchallenge}): its magic is the first 4 bytes
of the double SHA-256 of its challenge script, as Core computes it; a
custom signet has another. Regtest has no real seed: Core lists the
never-resolving C{dummySeed.invalid.} (to test its seed code), which bitp2p
leaves out: a regtest node would only log a failed lookup.
"""

from __future__ import annotations

import attrs

__all__ = ["NETWORKS", "Network", "network"]


@attrs.frozen
class Network:
    """
    One Bitcoin network.

    @ivar name: its name (C{mainnet}, C{testnet4}, ...).
    @ivar magic: the 4 bytes that start every message, as on the wire.
    @ivar default_port: the port its nodes listen on by default.
    @ivar dns_seeds: the host names whose DNS records list its nodes.
    """

    name: str
    magic: bytes
    default_port: int
    dns_seeds: tuple[str, ...]


NETWORKS: dict[str, Network] = {
    n.name: n
    for n in (
        Network(
            "mainnet",
            bytes.fromhex("f9beb4d9"),
            8333,
            (
                "seed.bitcoin.sipa.be.",
                "dnsseed.bluematt.me.",
                "seed.bitcoin.jonasschnelli.ch.",
                "seed.btc.petertodd.net.",
                "seed.bitcoin.sprovoost.nl.",
                "dnsseed.emzy.de.",
                "seed.bitcoin.wiz.biz.",
                "seed.mainnet.achownodes.xyz.",
            ),
        ),
        Network(
            "testnet4",
            bytes.fromhex("1c163f28"),
            48333,
            ("seed.testnet4.bitcoin.sprovoost.nl.", "seed.testnet4.wiz.biz."),
        ),
        Network(
            "testnet3",
            bytes.fromhex("0b110907"),
            18333,
            (
                "testnet-seed.bitcoin.jonasschnelli.ch.",
                "seed.tbtc.petertodd.net.",
                "seed.testnet.bitcoin.sprovoost.nl.",
                "testnet-seed.bluematt.me.",
                "seed.testnet.achownodes.xyz.",
            ),
        ),
        Network(
            "signet",
            bytes.fromhex("0a03cf40"),
            38333,
            ("seed.signet.bitcoin.sprovoost.nl.", "seed.signet.achownodes.xyz."),
        ),
        Network("regtest", bytes.fromhex("fabfb5da"), 18444, ()),
    )
}


def network(name: str) -> Network:
    """
    The network called C{name}.

    @raise ValueError: with a one-line message naming the valid names, if
        there is none of that name.
    """
    found = NETWORKS.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValueError(f"unknown Bitcoin network {name!r}: one of {', '.join(NETWORKS)}")
    return found
