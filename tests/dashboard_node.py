"""
A node with its control API and dashboard, in a process of its own, for the
browser test (Playwright's sync API cannot share a process with a running
reactor)::

    python tests/dashboard_node.py PASSWORD [--connect HOST:PORT]

It listens on loopback (ports chosen by the system), prints one JSON line,
C{{"node_id", "p2p", "http"}}, and runs until stdin closes or it is
terminated.
"""

from __future__ import annotations

import json
import sys

from twisted.internet import reactor, stdio
from twisted.internet.protocol import Protocol

from bitp2p.ops.control import ControlService
from bitp2p.node import Node, NodeConfig
from bitp2p.ops.web import dashboardResource


class _StopOnEOF(Protocol):
    def connectionLost(self, reason) -> None:
        if reactor.running:
            reactor.stop()


def main(argv: list[str]) -> None:
    password = argv[0]
    connect = argv[argv.index("--connect") + 1] if "--connect" in argv else None
    node = Node(NodeConfig(port=0, seeds=(), interface="127.0.0.1", max_outbound=0))
    node.startService()
    control = ControlService(node, "tcp:0:interface=127.0.0.1", password=password)
    control.root.putHome(b"dashboard", dashboardResource(node))
    control.startService()
    reactor.addSystemEventTrigger("before", "shutdown", control.stopService)
    reactor.addSystemEventTrigger("before", "shutdown", node.stopService)
    print(
        json.dumps(
            {"node_id": node.node_id, "p2p": node.listeningPort, "http": control.address.port}
        ),
        flush=True,
    )
    if connect:
        node.connect(connect).addErrback(lambda f: print(f.getErrorMessage(), file=sys.stderr))
    stdio.StandardIO(_StopOnEOF())
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
