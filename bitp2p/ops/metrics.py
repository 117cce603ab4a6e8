"""
Prometheus metrics of a node (C{/metrics} on the control API).

Nothing is counted here: L{NodeCollector} reads the node's views
(L{bitp2p.views}) when Prometheus scrapes, so the hot paths pay nothing for
it; the address tables are counted by their sizes, never listed. The resource
renders in the reactor thread (prometheus_client's own Twisted resource
runs a WSGI app in a thread pool; bitp2p uses no threads).

Names follow Prometheus' naming guide (C{_total} for counters, base units:
C{_seconds}, C{_bytes}); C{direction} is always C{inbound} or C{outbound}
(Bitcoin Core's words), C{connection_type} the C{connection_type} of
C{getpeerinfo}. Metrics (all prefixed C{bitp2p_}):

  - C{peers{connection_type}}: established peers (C{inbound}, C{outbound},
    C{manual}, C{feeler}, C{addr-fetch});
  - C{peers_by_network{network}};
  - C{connections_handshaking}, C{dials_in_progress};
  - C{dials_total{result}}: dials since start, by outcome (C{connected},
    C{failed}, C{cancelled});
  - C{accepts_total}: inbound connections accepted;
    C{inbound_rejected_total{reason}}: refused (C{banned}, C{group_cap},
    C{full}); C{evictions_total}: inbound peers evicted to make room;
  - C{messages_total{direction, type}} and C{bytes_total{direction, type}}:
    messages and bytes received (C{inbound}) and sent (C{outbound}) per
    message type, since start, peers gone included;
  - C{handshake_failures_total}, C{protocol_violations_total};
  - C{known_addresses{table}}: the address manager's new and tried tables;
  - C{bans};
  - C{peer_ping_seconds{peer}} and C{peer_min_ping_seconds{peer}}: the last
    and lowest ping round trip of each peer (its node id's first 16
    characters);
  - C{gossip_total{event}}: the gossip counters (published, received,
    duplicates, ...);
  - C{build_info{version, python}}: always 1;
  - on a Bitcoin network, C{bitcoin_peer_info{...}} and
    C{bitcoin_peer_start_height{peer}}.

Beside them, prometheus_client's default collectors of the process
(C{process_start_time_seconds}, C{process_cpu_seconds_total},
C{process_resident_memory_bytes}, C{process_open_fds}, ...; read from
C{/proc}, so on Linux) and of the platform (C{python_info}). There is no
uptime gauge: C{time() - process_start_time_seconds} is the uptime.
(Renamed, a breaking change: C{peers{direction, type}} became C{peers{connection_type}},
the C{in}/C{out} of C{messages_total} and C{bytes_total} became
C{inbound}/C{outbound}, and C{uptime_seconds} went.)

This module owns the Prometheus names and the C{/metrics} resource. It
must not know a Peer's or Node's private state, nor credentials (the tree
it is mounted under checks them). (Moved from C{bitp2p.metrics}, which still
re-exports it.)
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twisted.web.resource import Resource

from bitp2p._version import __version__
from bitp2p.views import establishedViews, nodeView

__all__ = ["MetricsResource", "NodeCollector", "registryFor"]

# The traffic table's direction (bitp2p.accounting's C{in}/C{out}) in the
# one vocabulary of the metrics.
_DIRECTION = {"in": "inbound", "out": "outbound"}


class NodeCollector:
    """
    A prometheus_client collector of one node's figures.
    """

    def __init__(self, node) -> None:
        self.node = node

    def describe(self):
        return []  # the families are made when collected

    def collect(self):
        node = self.node
        view = nodeView(node)
        established = establishedViews(node)
        build = GaugeMetricFamily(
            "bitp2p_build_info",
            "The bitp2p and Python versions (always 1)",
            labels=["version", "python"],
        )
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        peers = GaugeMetricFamily(
            "bitp2p_peers", "Established peers by connection type", labels=["connection_type"]
        )
        counts: dict[str, int] = {}
        for peer in established:
            counts[peer.kind.value] = counts.get(peer.kind.value, 0) + 1
        for kind, count in sorted(counts.items()):
            peers.add_metric([kind], count)
        yield peers
        networks = GaugeMetricFamily(
            "bitp2p_peers_by_network",
            "Established peers by the network of their address",
            labels=["network"],
        )
        byNetwork: dict[str, int] = {}
        for peer in established:
            byNetwork[peer.network] = byNetwork.get(peer.network, 0) + 1
        for name, count in sorted(byNetwork.items()):
            networks.add_metric([name], count)
        yield networks
        if node.config.bitcoin is not None:
            yield from _bitcoinPeers(established)
        yield GaugeMetricFamily(
            "bitp2p_connections_handshaking",
            "Connections whose handshake is not done",
            value=view.handshaking,
        )
        yield GaugeMetricFamily(
            "bitp2p_dials_in_progress", "Outgoing connections being made", value=view.dialing
        )
        messages = CounterMetricFamily(
            "bitp2p_messages", "Messages by direction and type", labels=["direction", "type"]
        )
        sizes = CounterMetricFamily(
            "bitp2p_bytes", "Bytes by direction and message type", labels=["direction", "type"]
        )
        for (direction, kind), (count, size) in sorted(node.trafficTotals().items()):
            labels = [_DIRECTION.get(direction, direction), str(kind)]
            messages.add_metric(labels, count)
            sizes.add_metric(labels, size)
        yield messages
        yield sizes
        counters = view.counters
        dials = CounterMetricFamily(
            "bitp2p_dials", "Outgoing connections tried, by outcome", labels=["result"]
        )
        for result in ("connected", "failed", "cancelled"):
            dials.add_metric([result], counters["dials_" + result])
        yield dials
        yield CounterMetricFamily(
            "bitp2p_accepts", "Inbound connections accepted", value=counters["accepted"]
        )
        rejected = CounterMetricFamily(
            "bitp2p_inbound_rejected",
            "Inbound connections refused, by reason",
            labels=["reason"],
        )
        for reason, key in (
            ("banned", "refused_banned"),
            ("group_cap", "refused_group"),
            ("full", "refused_full"),
        ):
            rejected.add_metric([reason], counters[key])
        yield rejected
        yield CounterMetricFamily(
            "bitp2p_evictions",
            "Inbound peers evicted to make room for a newcomer",
            value=counters["evictions"],
        )
        yield CounterMetricFamily(
            "bitp2p_handshake_failures",
            "Connections closed before their handshake was done",
            value=view.counters["handshake_failures"],
        )
        yield CounterMetricFamily(
            "bitp2p_protocol_violations",
            "Protocol violations by peers",
            value=view.counters["violations"],
        )
        known = GaugeMetricFamily(
            "bitp2p_known_addresses", "Addresses in the address manager", labels=["table"]
        )
        known.add_metric(["new"], view.known_new)
        known.add_metric(["tried"], view.known_tried)
        yield known
        yield GaugeMetricFamily("bitp2p_bans", "Banned addresses and subnets", value=len(view.bans))
        ping = GaugeMetricFamily(
            "bitp2p_peer_ping_seconds", "Last ping round trip of each peer", labels=["peer"]
        )
        minimum = GaugeMetricFamily(
            "bitp2p_peer_min_ping_seconds", "Lowest ping round trip of each peer", labels=["peer"]
        )
        for peer in established:
            label = (peer.node_id or "?")[:16]
            if peer.rtt_s is not None:
                ping.add_metric([label], peer.rtt_s)
            if peer.min_rtt_s is not None:
                minimum.add_metric([label], peer.min_rtt_s)
        yield ping
        yield minimum
        gossip = CounterMetricFamily("bitp2p_gossip", "Gossip events", labels=["event"])
        for event, count in sorted(view.gossip.items()):
            if event != "seen":
                gossip.add_metric([event], count)
        yield gossip


def _bitcoinPeers(established):
    """
    What each Bitcoin peer's C{version} said: one sample of 1 per peer with
    its protocol version, user agent, services and network as labels, and
    its start height.
    """
    info = GaugeMetricFamily(
        "bitp2p_bitcoin_peer_info",
        "What each Bitcoin peer's version said (always 1)",
        labels=["peer", "network", "version", "subver", "services", "relay"],
    )
    heights = GaugeMetricFamily(
        "bitp2p_bitcoin_peer_start_height",
        "The best block height each Bitcoin peer announced",
        labels=["peer"],
    )
    for peer in established:
        if peer.services is None:
            continue
        label = (peer.node_id or "?")[:16]
        info.add_metric(
            [
                label,
                peer.network,
                str(peer.protocol),
                peer.user_agent[:64],
                ",".join(peer.service_names) or "NONE",
                "true" if peer.relay else "false",
            ],
            1,
        )
        heights.add_metric([label], peer.start_height or 0)
    yield info
    yield heights


def registryFor(node) -> CollectorRegistry:
    """
    A registry holding one node's collector and prometheus_client's
    default collectors of the process and the platform (not the global
    registry: a process may run several nodes).
    """
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(NodeCollector(node))
    return registry


class MetricsResource(Resource):
    """
    C{GET} renders the registry in Prometheus' text format.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)
