"""
The coverage-guided fuzz target (fuzz/fuzz_wire.py, atheris) runs for a few
seconds from its seed corpus without finding anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from .helpers import tempDir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = 3


class FuzzTargetTests(SynchronousTestCase):
    def test_aShortRunFindsNothing(self):
        corpus = os.path.join(tempDir(self), "corpus")
        shutil.copytree(os.path.join(ROOT, "fuzz", "corpus"), corpus)
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "fuzz", "fuzz_wire.py"),
             f"-max_total_time={SECONDS}", "-rss_limit_mb=1024", corpus],
            capture_output=True,
            text=True,
            timeout=SECONDS + 60,
            stdin=subprocess.DEVNULL,
            cwd=tempDir(self),
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertRegex(result.stderr, r"Done \d+ runs in \d+ second")
        # It ran: many inputs, and it grew the corpus past the seeds.
        runs = int(result.stderr.rsplit("Done ", 1)[1].split()[0])
        self.assertGreater(runs, 1000)
        self.assertGreater(len(os.listdir(corpus)), 4)
