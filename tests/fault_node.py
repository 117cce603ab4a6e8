"""
A node for tests/test_faults.py, run as its own process: it loads its data
directory, learns 100 new addresses (round C{ROUND}; the address manager keeps
those its buckets have room for), saves every 20 ms, says "ready N" (N: the
addresses it holds) once it has saved once, and runs until killed.

    python tests/fault_node.py DATADIR ROUND
"""

from __future__ import annotations

import sys

from twisted.internet import reactor

from bitp2p.address import Address
from bitp2p.node import Node, NodeConfig


def main() -> None:
    datadir, round_ = sys.argv[1], int(sys.argv[2])
    node = Node(
        NodeConfig(port=0, interface="127.0.0.1", seeds=(), datadir=datadir, save_interval_s=0.02)
    )
    node.startService()
    now = reactor.seconds()
    source = Address.of("10.250.0.1", 5000)
    node.book.add(
        [(Address.of(f"10.{round_}.{i}.1", 5000), now) for i in range(100)], source, now
    )
    node.save()
    sys.stdout.write(f"ready {len(node.book)}\n")
    sys.stdout.flush()
    reactor.run()


if __name__ == "__main__":
    main()
