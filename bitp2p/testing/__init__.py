"""
A test network for application authors: many bitp2p nodes connected in
memory, on one simulated clock, running the real protocol and node code.

No socket is opened and the global reactor is never touched: every timer of
every node, and every byte between them, goes through one simulated clock
that only moves when the test moves it. So a test is synchronous and
repeatable, and simulated hours take a fraction of a second. It works the
same from a trial C{TestCase} and from a plain pytest function::

    from bitp2p.testing import TestNetwork

    def test_discovery():
        net = TestNetwork(seed=1)
        first = net.addNode()
        net.addNodes(9, seeds=(net.addressOf(first),))
        net.start()
        try:
            assert net.runUntil(net.isConnected, timeout=600)
        finally:
            net.stop()

L{TestNetwork} is the high-level helper: it builds nodes (each on its own
address), starts and stops them, wires them up, and runs the clock.
Underneath, L{MemoryNetwork} is the clock and the network: a reactor for the
nodes (through one L{MemoryHost} per address) that provides time,
C{listenTCP}, C{connectTCP} and name resolution, delivers bytes written on
one end of a connection to the other after a latency, counts the bytes and
messages sent, and can cut links, partition hosts, and take hosts down.

The package has two modules: L{bitp2p.testing.memory} (the clock and the
network, which knows nothing of nodes) and L{bitp2p.testing.network}
(L{TestNetwork}); import the names from here.
"""

from __future__ import annotations

from bitp2p.testing.memory import (
    DEFAULT_LATENCY_S,
    EPOCH_2026,
    MemoryHost,
    MemoryNetwork,
    lognormalLatency,
)
from bitp2p.testing.network import LinkError, TestNetwork

__all__ = [
    "DEFAULT_LATENCY_S",
    "EPOCH_2026",
    "LinkError",
    "MemoryHost",
    "MemoryNetwork",
    "TestNetwork",
    "lognormalLatency",
]
