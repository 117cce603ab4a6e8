"""
The Prometheus metrics (L{bitp2p.ops.metrics}): their names and labels, the
process and platform collectors beside the node's, and the connection
manager's counters of dials, accepts, refusals and evictions.
"""

from __future__ import annotations

import platform
import re
import sys

from prometheus_client import generate_latest
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bitp2p import __version__
from bitp2p.ops.metrics import registryFor
from bitp2p.testing import TestNetwork
from bitp2p.views import nodeView

from .helpers import Inbound, makeNode


def scrape(node) -> str:
    return generate_latest(registryFor(node)).decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """
    The value of the sample C{name{labels}} in C{text}, or L{None}.
    """
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    line = f"{name}{{{inner}}} " if labels else f"{name} "
    for row in text.splitlines():
        if row.startswith(line):
            return float(row[len(line):])
    return None


class NamesTests(SynchronousTestCase):
    def test_oneVocabulary(self):
        """
        Peers are counted by connection type (no direction repeated);
        direction is inbound/outbound on every metric; there is a build
        info, no uptime gauge, and the process' metrics are there (on
        Linux, where prometheus_client reads /proc).
        """
        with TestNetwork(seed=3) as net:
            a, b = net.addNodes(2)
            net.start()
            net.connect(a, b)
            text = scrape(b)
            self.assertEqual(sample(text, "bitp2p_peers", connection_type="inbound"), 1.0)
            self.assertEqual(sample(scrape(a), "bitp2p_peers", connection_type="manual"), 1.0)
            self.assertNotRegex(text, r'bitp2p_peers\{[^}]*direction=')
            directions = set(re.findall(r'direction="([^"]*)"', text))
            self.assertEqual(directions, {"inbound", "outbound"})
            self.assertEqual(
                sample(text, "bitp2p_messages_total", direction="inbound", type="version"), 1.0
            )
            self.assertGreater(
                sample(text, "bitp2p_bytes_total", direction="outbound", type="verack"), 0
            )
            self.assertEqual(
                sample(
                    text, "bitp2p_build_info",
                    version=__version__, python=platform.python_version(),
                ),
                1.0,
            )
            self.assertNotIn("bitp2p_uptime_seconds", text)
            self.assertIn("python_info{", text)
            if sys.platform.startswith("linux"):
                for name in (
                    "process_start_time_seconds",
                    "process_cpu_seconds_total",
                    "process_resident_memory_bytes",
                    "process_open_fds",
                ):
                    self.assertIsNotNone(sample(text, name), name)
            # Every counter ends in _total.
            counters = re.findall(r"^# TYPE (\S+) counter$", text, re.M)
            self.assertIn("bitp2p_evictions_total", counters)
            self.assertEqual([c for c in counters if not c.endswith("_total")], [])


class CounterTests(SynchronousTestCase):
    def test_dials(self):
        """
        Dials are counted by outcome: connected, failed.
        """
        with TestNetwork(seed=4) as net:
            a, b = net.addNodes(2)
            net.start()
            net.connect(a, b)
            failures = []
            a.connect("10.77.0.1", 5000).addErrback(failures.append)
            self.assertTrue(net.runUntil(lambda: failures, 60))
            counters = nodeView(a).counters
            self.assertEqual(
                (counters["dials_connected"], counters["dials_failed"]), (1, 1)
            )
            text = scrape(a)
            self.assertEqual(sample(text, "bitp2p_dials_total", result="connected"), 1.0)
            self.assertEqual(sample(text, "bitp2p_dials_total", result="failed"), 1.0)
            self.assertEqual(sample(text, "bitp2p_dials_total", result="cancelled"), 0.0)
            self.assertEqual(sample(scrape(b), "bitp2p_accepts_total"), 1.0)

    def test_acceptsRefusalsAndEvictions(self):
        """
        Inbound connections accepted, refused (banned, group cap, full) and
        peers evicted to make room are each counted.
        """
        node = makeNode(6001, MemoryReactorClock(), max_connections=24, max_outbound=0)
        for i in range(24):  # every slot, one from each of 24 groups
            self.assertFalse(Inbound(node, f"20.{i}.0.1", 40000 + i).refused)
            node.reactor.advance(1)
        self.assertFalse(Inbound(node, "30.1.0.1").refused)  # evicts one
        self.assertTrue(Inbound(node, "30.2.0.1").refused)  # one eviction at a time
        node.ban("40.1.2.3")
        self.assertTrue(Inbound(node, "40.1.2.3").refused)
        counters = nodeView(node).counters
        self.assertEqual(
            {k: counters[k] for k in ("accepted", "refused_banned", "refused_full", "evictions")},
            {"accepted": 25, "refused_banned": 1, "refused_full": 1, "evictions": 1},
        )
        text = scrape(node)
        self.assertEqual(sample(text, "bitp2p_accepts_total"), 25.0)
        self.assertEqual(sample(text, "bitp2p_evictions_total"), 1.0)
        self.assertEqual(sample(text, "bitp2p_inbound_rejected_total", reason="banned"), 1.0)
        self.assertEqual(sample(text, "bitp2p_inbound_rejected_total", reason="full"), 1.0)
        self.assertEqual(sample(text, "bitp2p_inbound_rejected_total", reason="group_cap"), 0.0)

    def test_groupCap(self):
        node = makeNode(6001, MemoryReactorClock(), max_connections=48, max_outbound=8)
        cap = node.config.inbound_group_cap
        refused = [Inbound(node, "20.1.0.1", 40000 + i).refused for i in range(cap + 2)]
        self.assertEqual(refused, [False] * cap + [True] * 2)
        self.assertEqual(nodeView(node).counters["refused_group"], 2)
        self.assertEqual(
            sample(scrape(node), "bitp2p_inbound_rejected_total", reason="group_cap"), 2.0
        )
