"""
The benchmark scripts run, end to end, at a tiny size: each exits 0 and
prints its summary line with the figures the docs quote. Nothing here
judges speed (the figures of a shared machine prove nothing); it keeps the
README's benchmark commands working.

Every script is run as a subprocess with a deadline; the scripts kill the
processes they start themselves.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
DEADLINE_S = 120


def runBench(testCase, script: str, *args: str) -> str:
    path = os.path.join(BENCH, script)
    if not os.path.exists(path):
        testCase.fail(f"{path} is missing")
    result = subprocess.run(
        [sys.executable, path, *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        stdin=subprocess.DEVNULL,
    )
    testCase.assertEqual(result.returncode, 0, result.stderr[-3000:])
    return result.stdout


RATIO = r"ratio (\d+\.\d\d) \((meets|misses) the target (\d\.\d+)\)"

NO_UVLOOP = (
    None
    if importlib.util.find_spec("uvloop")
    else "uvloop is not installed (pip install 'bitp2p[uvloop]')"
)

ON_UVLOOP = "reactor in every process: uvloop (AsyncioSelectorReactor on uvloop.Loop)"


class BenchmarkScriptTests(SynchronousTestCase):
    def test_throughput(self):
        out = runBench(self, "throughput.py", "--messages", "20000", "--runs", "1")
        self.assertRegex(out, r"throughput: bitp2p [\d,]+ msg/s, bare Twisted [\d,]+ msg/s, " + RATIO)

    def test_bitcoinframing(self):
        out = runBench(self, "bitcoinframing.py", "--messages", "5000", "--runs", "1")
        for kind in ("blast", "ping"):
            self.assertRegex(
                out,
                rf"bitcoin framing, {kind}: bitp2p [\d,]+ msg/s, bare Twisted [\d,]+ msg/s, " + RATIO,
            )
        self.assertEqual(out.count("per receiver CPU second (informational): bitp2p "), 2, out)

    def test_crawl(self):
        out = runBench(
            self, "crawl.py", "--nodes", "20", "--servers", "2", "--runs", "1", "--settle", "2"
        )
        self.assertRegex(
            out,
            r"crawl: 20 of 20 local nodes reachable \(20 tried\), [\d,]+ handshakes/s, "
            r"[\d,]+ per crawler CPU second",
        )

    def test_pingpong(self):
        out = runBench(self, "pingpong.py", "--trips", "300", "--runs", "1")
        self.assertRegex(out, r"ping-pong: bitp2p [\d,]+ round trips/s, .*" + RATIO)

    def test_handshakes(self):
        out = runBench(self, "handshakes.py", "--seconds", "0.5", "--runs", "1", "--inflight", "5")
        self.assertRegex(out, r"handshakes per server CPU second \(judged\): .*" + RATIO)
        [line] = [l for l in out.splitlines() if l.startswith("run 1 bitp2p")]
        self.assertRegex(line, r", 0 failed$")

    def test_peers(self):
        out = runBench(self, "peers.py", "--peers", "50")
        match = re.search(r"peers: bitp2p ([\d.]+) KiB RSS per established peer \((\d+) established\)", out)
        self.assertIsNotNone(match, out)
        self.assertEqual(match.group(2), "50")

    def test_hotpath(self):
        out = runBench(self, "hotpath.py", "--runs", "1")
        self.assertRegex(out, r"receive: bitp2p [\d,]+ ns per message, bare Twisted [\d,]+ ns")
        self.assertRegex(out, r"handshake: bitp2p [\d.]+ us of CPU per inbound handshake")

    def test_codec(self):
        out = runBench(self, "codec.py", "--number", "200", "--repeat", "1")
        self.assertRegex(out, r"conclusion: on the \d+-byte message the standard library makes")

    def test_realnet(self):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        out = runBench(self, "realnet.py", "--nodes", "5", "--port", str(port), "--limit", "60")
        self.assertRegex(
            out, r"realnet: N=5 processes .*: full knowledge \(>= 95%, connected\) [\d.]+ s after"
        )

    def test_convergence(self):
        out = runBench(self, "convergence.py", "--sizes", "12", "24", "--steady", "120")
        for n in (12, 24):
            self.assertRegex(out, rf"N={n}: converged in [\d.]+ simulated min; peers per node")
        self.assertIn("growth N=12 -> N=24", out)

    def test_scale(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        large, smallJson = os.path.join(folder, "n40.json"), os.path.join(folder, "small.json")
        out = runBench(
            self, "scale.py", "--nodes", "40", "--seeds", "2", "--warmup", "1", "--hours", "0.1",
            "--churn", "2", "--profile", "30", "--profile-at", "1", "--quiet", "--json", large,
        )
        self.assertRegex(out, r"N=40: outbound slots full after joining: warm-up nodes median ")
        self.assertRegex(
            out, r"N=40: churn 8 left and 8 joined; components at most \d+ .*; among the nodes up 10 s or more, at most \d+"
        )
        self.assertRegex(out, r"a reachable newcomer's address known .*: 1 min ")
        self.assertRegex(out, r"N=40: per node per minute, measured hour: \d+ messages, [\d,]+ bytes")
        self.assertRegex(out, r"N=40: wall \d+ s .* peak RSS [\d,]+ MiB")
        self.assertRegex(out, r"N=40: profile of 30 simulated s .*: simulator [\d.]+ %, node [\d.]+ %")
        small = runBench(
            self, "scale.py", "--small", "--nodes", "8", "--limit", "10", "--json", smallJson
        )
        self.assertRegex(small, r"small N=8: every node knows every other \(100 %\) and the graph")
        core = os.path.join(folder, "core.json")
        runBench(
            self, "scale.py", "--nodes", "40", "--seeds", "2", "--warmup", "1", "--hours", "0.1",
            "--churn", "2", "--profile", "0", "--quiet", "--relay", "core", "--json", core,
        )
        table = runBench(self, "scale.py", "--compare", smallJson, large, core)
        self.assertRegex(table, r"small N=8: every node knows every other after \d+ s")
        # Runs of less than an hour say how much they measured.
        self.assertRegex(table, r"\n40 \(6 min\) +8 +")
        self.assertRegex(table, r"\n40 \(Core's relay\) \(6 min\) +8 +")
        # Several runs shorter than an hour also compare over the window
        # all of them measured, minute by minute.
        twice = runBench(self, "scale.py", "--compare", large, large)
        self.assertRegex(twice, r"growth N=40 -> N=40: per node messages x1\.00, bytes x1\.00")
        window = re.search(
            r"same window, minutes 1 to 6 of the hour \(msgs / bytes / CPU ms per node-min\): "
            r"N=40 (\d+) / ([\d,]+) / [\d.]+, N=40 \1 / \2 / ",
            twice,
        )
        self.assertIsNotNone(window, twice)
        self.assertGreater(int(window.group(1)), 0)
        self.assertRegex(twice, r"same window, minutes 2 to 6 of the hour")

    def test_gossip(self):
        out = runBench(self, "gossip.py", "--nodes", "20", "--degree", "3", "--large", "6000")
        self.assertRegex(out, r"small \(pushed\): reached 19 of 19, handled at most 1x")
        self.assertRegex(out, r"large \(inv/getdata\): reached 19 of 19, .* 19 requested, 19 served")

    def test_addrplace(self):
        out = runBench(
            self, "addrplace.py", "--groups", "4", "--kinds", "own", "--minutes", "1", "--before"
        )
        rows = re.findall(
            r"K=4 +own +tokens (\d+): attacker entries after 1 min ([\d,]+); outbound selection "
            r"picks one [\d.]+ %; getaddr answer [\d.]+ % the attacker's \(table [\d,]+, "
            r"[\d,]+ honest; 2,400 connections, 56 held\)",
            out,
        )
        self.assertEqual([tokens for tokens, _ in rows], ["1", "10"], out)
        # One address per connection (and per held connection's 10 s),
        # against ten: fewer placed in the first minute.
        placed = [int(count.replace(",", "")) for _, count in rows]
        self.assertLessEqual(placed[0], 2400 + 56 * 7)
        self.assertLess(placed[0], placed[1])

    def test_churn(self):
        out = runBench(self, "churn.py", "--nodes", "6", "--seconds", "8", "--stable", "2")
        self.assertRegex(out, r"churn: 6 nodes \(2 stable\), 8 s, \d+ kills")
        self.assertIn("network connected at the end: yes", out)
        self.assertIn("churn: passed", out)

    def test_attacks(self):
        out = runBench(self, "attacks.py", "--quick")
        match = re.search(
            r"attacks: (\d+) cases, node up after all: (\w+), honest peer kept in (\d+) of (\d+)", out
        )
        self.assertIsNotNone(match, out)
        cases, up, kept, of = match.groups()
        self.assertEqual(up, "yes", out)
        self.assertGreaterEqual(int(cases), 20)
        self.assertEqual(kept, cases, out)
        self.assertEqual(of, cases, out)


class ReactorOptionTests(SynchronousTestCase):
    """
    C{--reactor} of the four benchmarks of bitp2p against bare Twisted, at
    a tiny size: each runs to its summary on the reactor asked for.
    """

    def test_throughputOnUvloop(self):
        out = runBench(self, "throughput.py", "--messages", "20000", "--runs", "1",
                       "--reactor", "uvloop")
        self.assertIn(ON_UVLOOP, out)
        self.assertRegex(out, r"throughput: bitp2p [\d,]+ msg/s, bare Twisted [\d,]+ msg/s, " + RATIO)

    def test_pingpongOnUvloop(self):
        out = runBench(self, "pingpong.py", "--trips", "300", "--runs", "1", "--reactor", "uvloop")
        self.assertIn(ON_UVLOOP, out)
        self.assertRegex(out, r"ping-pong: bitp2p [\d,]+ round trips/s, .*" + RATIO)

    def test_handshakesOnUvloop(self):
        out = runBench(self, "handshakes.py", "--seconds", "0.5", "--runs", "1", "--inflight", "5",
                       "--reactor", "uvloop")
        self.assertIn(ON_UVLOOP, out)
        self.assertRegex(out, r"handshakes per server CPU second \(judged\): .*" + RATIO)

    def test_peersOnTheAsyncioReactor(self):
        out = runBench(self, "peers.py", "--peers", "50", "--reactor", "asyncio")
        self.assertIn(
            "reactor in every process: asyncio (AsyncioSelectorReactor on "
            "asyncio.unix_events._UnixSelectorEventLoop)",
            out,
        )
        self.assertRegex(out, r"peers: bitp2p [\d.]+ KiB RSS per established peer \(50 established\)")

    test_throughputOnUvloop.skip = NO_UVLOOP  # type: ignore[attr-defined]
    test_pingpongOnUvloop.skip = NO_UVLOOP  # type: ignore[attr-defined]
    test_handshakesOnUvloop.skip = NO_UVLOOP  # type: ignore[attr-defined]

    def test_hog(self):
        # --hog runs the benchmark beside a busy loop pinned to one core,
        # and kills it at the end.
        out = runBench(self, "pingpong.py", "--trips", "100", "--runs", "1", "--hog")
        match = re.search(r"CPU hog: pid (\d+) pinned to core (\d+)", out)
        self.assertIsNotNone(match, out)
        self.assertRegex(out, r"ping-pong: bitp2p [\d,]+ round trips/s, .*" + RATIO)
        self.assertFalse(os.path.exists(f"/proc/{match.group(1)}"))
