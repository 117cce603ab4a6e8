"""
Tests of examples/twonodes/twonodes.py: two nodes in one Application, on
loopback, started and stopped by the real reactor (a trial TestCase, under
trial and pytest). Every wait is bounded.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from twisted.application import service
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

sys.path.insert(0, str(Path(__file__).resolve().parent))  # twonodes.py, under any import mode
import twonodes  # noqa: E402


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TwoNodesTests(TestCase):
    timeout = 60

    def test_moduleDefinesAnApplicationOfTwoNodes(self):
        nodes = twonodes.nodesOf(twonodes.application)
        self.assertEqual([n.config.port for n in nodes], [5000, 5001])
        self.assertEqual(len({n.name for n in nodes}), 2)

    @defer.inlineCallbacks
    def test_bothNodesRunInOneApplicationAndConnect(self):
        application = twonodes.twoNodes(freePort(), freePort())
        a, b = twonodes.nodesOf(application)
        collection = service.IServiceCollection(application)
        self.assertIs(collection.getServiceNamed(a.name), a)
        self.assertIs(collection.getServiceNamed(b.name), b)
        top = service.IService(application)
        top.startService()
        self.addCleanup(lambda: top.stopService() if top.running else None)
        for _ in range(600):
            if {p.node_id for p in b.peers()} == {a.node_id}:
                break
            yield task.deferLater(reactor, 0.05)
        self.assertEqual([p.node_id for p in b.peers()], [a.node_id])
        self.assertEqual([p.node_id for p in a.peers()], [b.node_id])
        yield top.stopService()
        self.assertEqual((a.running, b.running, a.peers(), b.peers()), (False, False, [], []))
