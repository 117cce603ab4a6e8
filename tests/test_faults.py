"""
Faults: a node killed with SIGKILL while it saves, again and again, loses
nothing it had saved before, and its data directory always loads.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address
from bitp2p.node import Node, NodeConfig

from .helpers import tempDir

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_node.py")
ROUNDS = 12
DEADLINE_S = 30


class KillWhileSavingTests(SynchronousTestCase):
    def load(self, datadir: str) -> set[Address]:
        node = Node(NodeConfig(port=0, seeds=(), datadir=datadir), reactor=MemoryReactorClock())
        node.startService()
        addresses = {info.address for info in node.book}
        node.stopService()
        return addresses

    def test_killedWhileSavingLosesNothingSaved(self):
        datadir = tempDir(self)
        rng = random.Random(7)
        saved: set[Address] = set()
        for round_ in range(1, ROUNDS + 1):
            process = subprocess.Popen(
                [sys.executable, SCRIPT, datadir, str(round_)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            try:
                ready = process.stdout.readline().split()
                self.assertEqual(ready[:1], [b"ready"])
                held = int(ready[1])
                # It saves every 20 ms: kill it somewhere in that cycle.
                time.sleep(rng.uniform(0.0, 0.1))
                process.send_signal(signal.SIGKILL)
                process.wait(DEADLINE_S)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(DEADLINE_S)
                process.stdout.close()
            loaded = self.load(datadir)
            # Everything saved before this round is there, and at least what
            # the node held at "ready", which came after a complete save.
            self.assertLessEqual(saved, loaded, f"round {round_}")
            self.assertGreaterEqual(len(loaded), held, f"round {round_}")
            self.assertGreater(len(loaded), len(saved), f"round {round_}: nothing new saved")
            saved = loaded
            # Nothing was found damaged and set aside, and the temporary file
            # of a save cut short is removed at the next start.
            self.assertEqual(
                [name for name in os.listdir(datadir) if "damaged" in name or ".tmp-" in name],
                [],
                f"round {round_}: a file was damaged, or a temporary one left",
            )

    def test_aStaleTemporaryFileIsRemovedAtStart(self):
        from bitp2p.storage import DataDir

        datadir = tempDir(self)
        stale = os.path.join(datadir, ".peers.json.tmp-123-abcd")
        kept = os.path.join(datadir, "peers.json")
        for path in (stale, kept):
            with open(path, "w") as f:
                f.write("x")
        DataDir(datadir)
        self.assertFalse(os.path.exists(stale))
        self.assertTrue(os.path.exists(kept))
