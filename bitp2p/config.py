"""
A node's configuration: L{NodeConfig}, every setting of a L{Node
<bitp2p.node.Node>} in one immutable record, checked when it is made.

It owns the settings' validation (a bad value is a C{ValueError} with a
one-line message naming the option) and the few values derived from them
(slots, the inbound group cap, the seed list). It knows nothing of
connections, peers or the reactor.
"""

from __future__ import annotations

import attrs

from bitp2p.address import split_host_port
from bitp2p.constants import (
    ADDR_BUCKET_TOKENS,
    ADDR_RATE_PER_S,
    ADVERTISE_INTERVAL_S,
    CONNECT_TIMEOUT_S,
    DEFAULT_INTERFACE,
    DEFAULT_PORT,
    DEFAULT_SEED_HOST,
    DEFAULT_SEED_PORTS,
    DISCOURAGE_THRESHOLD,
    FEELER_INTERVAL_S,
    GOSSIP_HOPS,
    GOSSIP_PUSH_MAX_BYTES,
    GOSSIP_RATE_PER_S,
    GOSSIP_SEEN_S,
    GROWTH_SAVE_DELAY_S,
    HANDSHAKE_TIMEOUT_S,
    INACTIVITY_TIMEOUT_S,
    INBOUND_GROUP_MIN,
    INBOUND_GROUP_SHARE,
    LEARNING_WINDOW_S,
    MAINTENANCE_INTERVAL_S,
    MAX_CONNECTIONS,
    MAX_MESSAGE_BYTES,
    MAX_OUTBOUND,
    MAX_SEND_BUFFER_BYTES,
    PING_INTERVAL_S,
    PING_TIMEOUT_S,
    SAVE_INTERVAL_S,
    SEED_FALLBACK_S,
    SEED_RETRY_MAX_S,
    STALE_HANDSHAKE_S,
    USER_AGENT,
    BITCOIN_INACTIVITY_TIMEOUT_S,
    BITCOIN_PING_INTERVAL_S,
    BITCOIN_PING_TIMEOUT_S,
    NETWORK,
)
from bitp2p.bitcoin.networks import NETWORKS as BITCOIN_NETWORKS, network as bitcoinNetwork
from bitp2p.endpoints import check_listen, parse_target
from bitp2p.gossip import MAX_HOPS

__all__ = ["NodeConfig"]


def _positive(instance, attribute, value) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name.replace('_', '-')} must be positive, not {value}")


def _non_negative_int(instance, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{attribute.name.replace('_', '-')} must be a whole number >= 0, not {value!r}"
        )


def _optional_positive_int(instance, attribute, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"{attribute.name.replace('_', '-')} must be a whole number >= 1, not {value!r}"
        )


def _port(instance, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"port must be in 0..65535, not {value!r}")


def _hostPorts(instance, attribute, value) -> None:
    if value is None:
        return
    for entry in value:
        split_host_port(entry)


def _targets(instance, attribute, value) -> None:
    for entry in value:
        parse_target(entry)


def _listenEndpoints(instance, attribute, value) -> None:
    for entry in value:
        check_listen(entry)


def _tupleOrNone(value):
    return None if value is None else tuple(value)


def _hops(instance, attribute, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_HOPS:
        raise ValueError(f"{attribute.name} must be an integer from 1 to {MAX_HOPS}, not {value!r}")


def _portOrNone(instance, attribute, value) -> None:
    if value is not None:
        _port(instance, attribute, value)


def _positiveOrNone(instance, attribute, value) -> None:
    if value is not None:
        _positive(instance, attribute, value)


def _network(instance, attribute, value) -> None:
    if value != NETWORK and value not in BITCOIN_NETWORKS:
        raise ValueError(
            f"network must be {NETWORK} or one of {', '.join(BITCOIN_NETWORKS)}, not {value!r}"
        )


def _services(instance, attribute, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
        raise ValueError(f"services must be a 64-bit unsigned integer, not {value!r}")


def _addressManager(instance, attribute, value) -> None:
    if value not in ("addrman", "simple"):
        raise ValueError(f"address-manager must be 'addrman' or 'simple', not {value!r}")


@attrs.frozen
class NodeConfig:
    """
    Everything that configures a L{Node}. Invalid values raise L{ValueError}
    with a one-line message at construction.

    @ivar network: C{"bitp2p"} (the protocol's own JSON lines, the default)
        or a Bitcoin network: C{"mainnet"}, C{"testnet4"}, C{"testnet3"},
        C{"signet"} or C{"regtest"} (L{bitp2p.bitcoin}). It sets the
        defaults of C{port}, C{seeds} and the ping and inactivity timers.
    @ivar port: the TCP port to listen on; 0 picks a free one. By default
        5000, or the Bitcoin network's port.
    @ivar interface: the address to listen on (C{0.0.0.0}: all IPv4, C{::}: all).
    @ivar seeds: C{HOST:PORT} bootstrap addresses (host names resolve to all
        their addresses), used when the address manager is empty, and
        again (names resolved again) while the node is short of outbound
        peers: C{seed_fallback_s} after start, then backing off up to
        C{seed_retry_max_s} apart; L{None} for the built-in list, C{()} for
        none.
    @ivar addnodes: peers always kept connected (C{--addnode}): C{HOST:PORT}
        or client endpoint strings (L{bitp2p.endpoints.parse_target}).
    @ivar connect: peers to connect to, and only those: no automatic
        outbound connections, no seeds, no feelers (C{--connect}); as
        C{addnodes}.
    @ivar seednodes: C{HOST:PORT} nodes dialed once at start to fetch
        addresses (C{--seednode}).
    @ivar datadir: where the node id, peers, bans and anchors are kept, or
        L{None}.
    @ivar node_id: a fixed node id; by default it comes from C{datadir} or is
        new and random.
    @ivar listen: whether to listen at all.
    @ivar listen_endpoints: server endpoint strings to listen on (C{tcp:5000},
        C{unix:/run/bitp2p.sock}, ...); when empty, C{port} and C{interface}
        say where. The first TCP one is the address the node advertises.
    @ivar max_inbound_per_group: most inbound connections from one network
        group; L{None}: 1/8 of the inbound slots, and at least 4.
    @ivar address_manager: C{"addrman"} (Bitcoin Core's bucketed tables, the
        default) or C{"simple"} (bitp2p 0.1's flat book, for comparison).
    @ivar tls: speak TLS to peers, with a key pair kept in C{datadir}; the
        node id is then the hash of the public key (L{bitp2p.tls}).
    @ivar learning_window_s: while the address manager learned within this
        long (grew from a C{getaddr} answer, not from relayed gossip), the
        test of an address every C{feeler_interval_s} is an address fetch
        (it asks C{getaddr}); after, a plain feeler, which asks nothing
        (protocol 1.1).
    @ivar gossip_hops: links a broadcast may travel (L{bitp2p.gossip}).
    @ivar gossip_seen_s: how long a gossiped message's id is remembered.
    @ivar gossip_push_max_bytes: gossiped messages longer than this are
        announced (C{inv}/C{getdata}) rather than pushed.
    @ivar services: on a Bitcoin network, the service bits announced (0:
        none, the default: bitp2p serves no blocks).
    @ivar gossip_rate_per_s: gossiped messages (and announced ids) taken
        from one peer per second on average, 10 seconds' worth at once; more
        are dropped.
    """

    port: int = attrs.field(default=None, validator=_portOrNone)
    interface: str = DEFAULT_INTERFACE
    seeds: tuple[str, ...] | None = attrs.field(
        default=None, converter=_tupleOrNone, validator=_hostPorts
    )
    addnodes: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_targets)
    connect: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_targets)
    seednodes: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_hostPorts)
    datadir: str | None = None
    node_id: str | None = None
    listen: bool = True
    listen_endpoints: tuple[str, ...] = attrs.field(
        default=(), converter=tuple, validator=_listenEndpoints
    )
    max_outbound: int = attrs.field(default=MAX_OUTBOUND, validator=_non_negative_int)
    max_connections: int = attrs.field(default=MAX_CONNECTIONS, validator=_non_negative_int)
    max_inbound_per_group: int | None = attrs.field(
        default=None, validator=_optional_positive_int
    )
    ping_interval_s: float = attrs.field(default=None, validator=_positiveOrNone)
    ping_timeout_s: float = attrs.field(default=None, validator=_positiveOrNone)
    handshake_timeout_s: float = attrs.field(default=HANDSHAKE_TIMEOUT_S, validator=_positive)
    stale_handshake_s: float = attrs.field(default=STALE_HANDSHAKE_S, validator=_positive)
    inactivity_timeout_s: float = attrs.field(default=None, validator=_positiveOrNone)
    maintenance_interval_s: float = attrs.field(
        default=MAINTENANCE_INTERVAL_S, validator=_positive
    )
    advertise_interval_s: float = attrs.field(default=ADVERTISE_INTERVAL_S, validator=_positive)
    save_interval_s: float = attrs.field(default=SAVE_INTERVAL_S, validator=_positive)
    growth_save_delay_s: float = attrs.field(default=GROWTH_SAVE_DELAY_S, validator=_positive)
    seed_fallback_s: float = attrs.field(default=SEED_FALLBACK_S, validator=_positive)
    seed_retry_max_s: float = attrs.field(default=SEED_RETRY_MAX_S, validator=_positive)
    feeler_interval_s: float = attrs.field(default=FEELER_INTERVAL_S, validator=_positive)
    learning_window_s: float = attrs.field(default=LEARNING_WINDOW_S, validator=_positive)
    connect_timeout_s: float = attrs.field(default=CONNECT_TIMEOUT_S, validator=_positive)
    max_message_bytes: int = attrs.field(default=MAX_MESSAGE_BYTES, validator=_positive)
    max_send_buffer_bytes: int = attrs.field(default=MAX_SEND_BUFFER_BYTES, validator=_positive)
    addr_rate_per_s: float = attrs.field(default=ADDR_RATE_PER_S, validator=_positive)
    addr_bucket_tokens: float = attrs.field(default=ADDR_BUCKET_TOKENS, validator=_positive)
    discourage_threshold: int = attrs.field(default=DISCOURAGE_THRESHOLD, validator=_positive)
    address_manager: str = attrs.field(default="addrman", validator=_addressManager)
    gossip_hops: int = attrs.field(default=GOSSIP_HOPS, validator=_hops)
    gossip_seen_s: float = attrs.field(default=GOSSIP_SEEN_S, validator=_positive)
    gossip_push_max_bytes: int = attrs.field(
        default=GOSSIP_PUSH_MAX_BYTES, validator=_non_negative_int
    )
    gossip_rate_per_s: float = attrs.field(default=GOSSIP_RATE_PER_S, validator=_positive)
    user_agent: str = USER_AGENT
    tls: bool = False
    network: str = attrs.field(default=NETWORK, validator=_network)
    services: int = attrs.field(default=0, validator=_services)

    def __attrs_post_init__(self) -> None:
        if self.tls and self.node_id is not None:
            raise ValueError("with tls the node id is the hash of the node's key: give no node_id")
        bitcoin = self.bitcoin
        if bitcoin is not None and self.tls:
            raise ValueError(f"tls is bitp2p's own: a node on {self.network} cannot use it")
        # Defaults that depend on the network (set once, here: the record
        # stays immutable for everyone else).
        for name, ours, theirs in (
            ("port", DEFAULT_PORT, bitcoin.default_port if bitcoin else None),
            ("ping_interval_s", PING_INTERVAL_S, BITCOIN_PING_INTERVAL_S),
            ("ping_timeout_s", PING_TIMEOUT_S, BITCOIN_PING_TIMEOUT_S),
            ("inactivity_timeout_s", INACTIVITY_TIMEOUT_S, BITCOIN_INACTIVITY_TIMEOUT_S),
        ):
            if getattr(self, name) is None:
                object.__setattr__(self, name, ours if bitcoin is None else theirs)

    @property
    def bitcoin(self):
        """
        The L{Network<bitp2p.bitcoin.networks.Network>} of a node on a
        Bitcoin network, or L{None} on bitp2p's own.
        """
        return None if self.network == NETWORK else bitcoinNetwork(self.network)

    @property
    def outbound_slots(self) -> int:
        """
        Automatic outbound connections kept: C{max_outbound}, within
        C{max_connections}.
        """
        return min(self.max_outbound, self.max_connections)

    @property
    def inbound_slots(self) -> int:
        """
        Inbound connections accepted: what the total leaves after the
        outbound slots are reserved.
        """
        return self.max_connections - self.outbound_slots

    @property
    def inbound_group_cap(self) -> int:
        """
        Most inbound connections from one network group.
        """
        if self.max_inbound_per_group is not None:
            return self.max_inbound_per_group
        return max(INBOUND_GROUP_MIN, self.inbound_slots // INBOUND_GROUP_SHARE)

    def seed_list(self) -> list[tuple[str, int]]:
        """
        The bootstrap list as C{(host, port)} pairs.
        """
        if self.seeds is None:
            bitcoin = self.bitcoin
            if bitcoin is not None:
                return [(host, bitcoin.default_port) for host in bitcoin.dns_seeds]
            return [(DEFAULT_SEED_HOST, p) for p in DEFAULT_SEED_PORTS if p != self.port]
        return [split_host_port(seed) for seed in self.seeds]
