"""
Bans and discouragement: which remote hosts a node refuses, as Bitcoin Core's
BanMan does.

A I{ban} is an operator's decision: an IP address or a whole subnet
(C{"10.1.0.0/16"}, C{"2001:db8::/32"}) is refused until a given time. Bans
are kept across restarts (L{BanMan.to_json} / L{BanMan.from_json}; the node
stores them in C{banlist.json}). A ban target is normalised before it is
stored: a single address becomes a C{/32} or C{/128} subnet, an IPv4-mapped
IPv6 address (C{::ffff:10.1.2.3}) becomes its IPv4 form, host bits of a
subnet are cleared (C{"10.1.2.3/16"} bans C{"10.1.0.0/16"}), and a later ban
of the same subnet replaces the earlier one's expiry.

I{Discouragement} is the automatic, milder verdict on a host that violated
the protocol (Bitcoin Core discourages such a peer for about a day): it is
per address, kept in memory only, never persisted, and bounded
(L{MAX_DISCOURAGED} hosts, the longest-known forgotten first) so that an
attacker with many addresses cannot grow it without limit. What the node does
with a discouraged host (e.g. let it take a free inbound slot but never the
last one) is its business, not this module's.

A ban or discouragement counts while C{now < until}. Nothing here does I/O or
reads a clock: every query takes C{now} (unix seconds), and expired entries
are dropped by L{BanMan.sweep} (they never count in the meantime).

L{BanMan.is_banned} runs for every accepted connection and every address
considered for dialing, so it is cheap in the common cases: with no bans at
all it returns at once; otherwise the host is parsed once (the parse is
cached, as in L{bitp2p.address}), looked up in a dict of single-address bans,
and only then compared, as integers, with the few wider subnets.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from typing import Any, Union

from bitp2p.constants import HOST_CACHE_SIZE, MAX_DISCOURAGED, MAX_IP_CHARS

# Longest target shown in an error message.
_SHOW_CHARS = 80

_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
# A parsed host: (IP version, the address as an integer).
_HostKey = tuple[int, int]


class BanError(ValueError):
    """
    A ban target is neither an IP address nor a subnet, a ban expiry is not a
    finite number, or saved bans are structurally wrong.
    """


class BanMan:
    """
    The banned subnets and the discouraged addresses of one node.
    """

    def __init__(self) -> None:
        # Every ban, keyed by its normalised subnet.
        self._bans: dict[_Network, float] = {}
        # The same bans, split for is_banned: single addresses by host key,
        # and the wider subnets as (version, network int, mask, until).
        self._exact: dict[_HostKey, float] = {}
        self._wide: list[tuple[int, int, int, float]] = []
        # Discouraged addresses by host key, oldest discouragement first.
        self._discouraged: dict[_HostKey, float] = {}

    # -- bans --------------------------------------------------------------

    def ban(self, target: str, until: float) -> str:
        """
        Ban an address or a subnet until a given time, replacing the expiry of
        an earlier ban of the same subnet.

        @param target: an IP literal (C{"10.1.2.3"}, C{"2001:db8::1"},
            C{"[2001:db8::1]"}) or a CIDR subnet (C{"10.1.0.0/16"},
            C{"2001:db8::/32"}); host bits of a subnet are ignored.
        @param until: when the ban ends (unix seconds).
        @return: the normalised subnet banned (C{"10.1.2.3/32"} for a single
            address).
        @raise BanError: if C{target} is neither an IP literal nor a subnet,
            or C{until} is not a finite number.
        """
        network = _parseTarget(target)
        self._bans[network] = _checkUntil(until)
        self._reindex()
        return str(network)

    def unban(self, target: str) -> bool:
        """
        Lift the ban of exactly this subnet (after the normalisation of
        L{ban}); bans of wider or narrower subnets stay.

        @return: whether that subnet was banned (expired bans not yet swept
            included).
        @raise BanError: if C{target} is neither an IP literal nor a subnet.
        """
        network = _parseTarget(target)
        if self._bans.pop(network, None) is None:
            return False
        self._reindex()
        return True

    def is_banned(self, host: str, now: float) -> bool:
        """
        Whether an address lies in a subnet banned at C{now}.

        @param host: an IP literal, as a transport reports it; anything else
            (a UNIX socket path, a host name) is never banned.
        """
        if not self._bans:
            return False
        key = _hostKey(host)
        if key is None:
            return False
        until = self._exact.get(key)
        if until is not None and now < until:
            return True
        version, value = key
        for netVersion, netValue, mask, until in self._wide:
            if netVersion == version and value & mask == netValue and now < until:
                return True
        return False

    def bans(self, now: float) -> list[tuple[str, float]]:
        """
        The bans in force at C{now}: C{(subnet, until)} pairs, IPv4 before
        IPv6, each in address order (a wider subnet before the narrower ones
        it holds).
        """
        return [
            (str(network), until)
            for network, until in sorted(self._bans.items(), key=_networkOrder)
            if now < until
        ]

    def sweep(self, now: float) -> None:
        """
        Forget the bans and discouragements that ended by C{now}.
        """
        expired = [network for network, until in self._bans.items() if not now < until]
        for network in expired:
            del self._bans[network]
        if expired:
            self._reindex()
        for key in [k for k, until in self._discouraged.items() if not now < until]:
            del self._discouraged[key]

    def _reindex(self) -> None:
        self._exact = {}
        self._wide = []
        for network, until in self._bans.items():
            if network.prefixlen == network.max_prefixlen:
                self._exact[(network.version, int(network.network_address))] = until
            else:
                self._wide.append(
                    (network.version, int(network.network_address), int(network.netmask), until)
                )

    # -- discouragement ----------------------------------------------------

    def discourage(self, host: str, until: float) -> None:
        """
        Discourage an address until a given time (in memory only). A host
        already discouraged stays so until the later of the two times.

        @param host: an IP literal; anything else is ignored, as it could
            never be found discouraged.
        @raise BanError: if C{until} is not a finite number.
        """
        until = _checkUntil(until)
        key = _hostKey(host)
        if key is None:
            return
        previous = self._discouraged.pop(key, None)
        if previous is not None:
            until = max(until, previous)
        elif len(self._discouraged) >= MAX_DISCOURAGED:
            del self._discouraged[next(iter(self._discouraged))]
        self._discouraged[key] = until

    def is_discouraged(self, host: str, now: float) -> bool:
        """
        Whether an address is discouraged at C{now}. Bans do not count: a
        banned host is not necessarily discouraged, nor the other way round.
        """
        if not self._discouraged:
            return False
        key = _hostKey(host)
        if key is None:
            return False
        until = self._discouraged.get(key)
        return until is not None and now < until

    # -- persistence -------------------------------------------------------

    def to_json(self, now: float) -> dict[str, Any]:
        """
        The bans in force at C{now}, fit for JSON; discouragement is never
        saved::

            {"bans": [{"subnet": "10.0.0.0/8", "until": 1795000000.0}, ...]}
        """
        return {"bans": [{"subnet": subnet, "until": until} for subnet, until in self.bans(now)]}

    @classmethod
    def from_json(cls, data: object, now: float) -> BanMan:
        """
        Rebuild the bans from L{to_json} output. Entries that are not a valid
        subnet with a finite numeric C{until}, and bans that ended by C{now},
        are skipped.

        @raise BanError: if C{data} is not an object with a list of bans.
        """
        if not isinstance(data, dict):
            raise BanError(f"ban list is not an object but {type(data).__name__}")
        entries = data.get("bans")
        if not isinstance(entries, list):
            raise BanError("ban list has no list of bans")
        banman = cls()
        for item in entries:
            if not isinstance(item, dict):
                continue
            try:
                network = _parseTarget(item.get("subnet"))
                until = _checkUntil(item.get("until"))
            except BanError:
                continue
            if now < until:
                banman._bans[network] = until
        banman._reindex()
        return banman


def _networkOrder(item: tuple[_Network, float]) -> tuple[int, int, int]:
    network = item[0]
    return (network.version, int(network.network_address), network.prefixlen)


def _checkUntil(until: object) -> float:
    if isinstance(until, bool) or not isinstance(until, (int, float)) or not math.isfinite(until):
        raise BanError(f"ban expiry must be a finite number of seconds, not {_show(until)}")
    return float(until)


def _show(target: object) -> str:
    text = repr(target)
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def _parseTarget(target: object) -> _Network:
    """
    The normalised subnet a ban target names.

    @raise BanError: if it names none.
    """
    if not isinstance(target, str):
        raise BanError(f"cannot ban {_show(target)}: not an IP address or subnet")
    text = target.strip()
    host, slash, prefix = text.partition("/")
    if host.startswith("["):
        # "[v6]" or "[v6]/len", as in the wire form of addresses.
        if not host.endswith("]") or ":" not in host:
            raise BanError(f"cannot ban {_show(target)}: not an IP address or subnet")
        host = host[1:-1]
    host = host.split("%", 1)[0]  # an IPv6 zone names no other host
    try:
        if slash:
            if not (prefix.isascii() and prefix.isdigit()):
                raise ValueError(prefix)
            network = ipaddress.ip_network(f"{host}/{int(prefix)}", strict=False)
        else:
            ip = ipaddress.ip_address(host)
            network = ipaddress.ip_network((ip, ip.max_prefixlen))
    except ValueError:
        raise BanError(f"cannot ban {_show(target)}: not an IP address or subnet") from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            network = ipaddress.IPv4Network((int(mapped), network.prefixlen - 96))
    return network


def _hostKey(host: str) -> _HostKey | None:
    """
    An IP literal as (version, integer), IPv4-mapped IPv6 as IPv4; L{None}
    if C{host} is not an IP literal. (A string too long to be one is not
    looked up: the cache holds only what can be an IP literal.)
    """
    if not isinstance(host, str):
        return None
    ip = host.split("%", 1)[0]
    if len(ip) > MAX_IP_CHARS:
        return None
    return _ipKey(ip)


@functools.lru_cache(maxsize=HOST_CACHE_SIZE)
def _ipKey(host: str) -> _HostKey | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.version, int(ip))
