"""
Operating a node as a new user would: C{twistd -n bitp2p} processes with
C{--rpc-port}, C{bitp2p-cli} run as a program against them, C{/metrics}
scraped over HTTP, and C{--log-format json}.

Every process is killed in cleanup; every wait is bounded.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from twisted.trial.unittest import SynchronousTestCase

from .helpers import tempDir
from .test_twistd import DEADLINE_S, TwistdProcesses, freePort


class OperatorTests(TwistdProcesses, SynchronousTestCase):
    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bitp2p.ops.cli", *args],
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
            stdin=subprocess.DEVNULL,
        )

    def waitFor(self, predicate, what: str):
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.1)
        self.fail(f"timed out waiting for {what}")

    def startPair(self):
        """
        Node A with the control API and a data directory; node B seeded
        with A. Both on loopback.
        """
        self.datadir = os.path.join(tempDir(self), "a")
        self.portA, self.portB, self.rpcPort = freePort(), freePort(), freePort()
        self.a = self.spawn(
            "--port", str(self.portA), "--interface", "127.0.0.1", "--no-seeds",
            "--datadir", self.datadir, "--rpc-port", str(self.rpcPort),
        )
        self.b = self.spawn(
            "--port", str(self.portB), "--interface", "127.0.0.2",
            "--seed", f"127.0.0.1:{self.portA}", "--log-format", "json",
        )
        self.waitFor(lambda: os.path.exists(os.path.join(self.datadir, ".cookie")), "the cookie")

    def peers(self) -> list[dict]:
        result = self.cli("--datadir", self.datadir, "--json", "getpeerinfo")
        return json.loads(result.stdout) if result.returncode == 0 else []

    def test_cliAgainstARunningNode(self):
        self.startPair()
        cookie = os.path.join(self.datadir, ".cookie")
        self.assertEqual(os.stat(cookie).st_mode & 0o777, 0o600)
        [peer] = self.waitFor(self.peers, "B to show in getpeerinfo")
        self.assertTrue(peer["inbound"])
        self.assertGreater(peer["bytesrecv"], 0)
        self.assertIn("version", peer["msgsrecv_per_msg"])

        table = self.cli("--datadir", self.datadir, "-netinfo")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertRegex(table.stdout, r"(?m)^in +1 ")
        self.assertRegex(table.stdout, r"(?m)^total +1 ")
        self.assertIn(f"local addresses 127.0.0.1:{self.portA}", table.stdout)
        self.assertIn(peer["node_id"][:8], table.stdout)

        info = self.cli("--datadir", self.datadir, "getnetworkinfo")
        self.assertIn(f"listening        127.0.0.1:{self.portA}", info.stdout)
        self.assertRegex(info.stdout, rf"(?m)^  127\.0\.0\.1 +{self.portA} +1$")
        self.assertNotIn("{", info.stdout)

        gone = self.cli("--datadir", self.datadir, "disconnectnode", "", peer["node_id"])
        self.assertEqual(gone.returncode, 0, gone.stderr)
        # B comes back by itself (A is its seed); banning its host ends that.
        self.waitFor(self.peers, "B to reconnect")
        ban = self.cli("--datadir", self.datadir, "setban", "127.0.0.2", "add", "60")
        self.assertEqual(ban.returncode, 0, ban.stderr)
        self.waitFor(lambda: not self.peers(), "B to be disconnected")
        banned = self.cli("--datadir", self.datadir, "--json", "listbanned")
        self.assertEqual([b["address"] for b in json.loads(banned.stdout)], ["127.0.0.2/32"])
        self.assertEqual(self.cli("--datadir", self.datadir, "clearbanned").returncode, 0)
        self.assertEqual(json.loads(self.cli("--datadir", self.datadir, "--json", "listbanned").stdout), [])

        missing = self.cli("--datadir", self.datadir, "disconnectnode", "127.0.0.1:1")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("error code: -29", missing.stderr)

        wrong = self.cli("--rpc-port", str(self.rpcPort), "--rpc-password", "nope", "getpeerinfo")
        self.assertEqual(wrong.returncode, 1)
        self.assertIn("refused the credentials (HTTP 401)", wrong.stderr)

        # -health needs no credentials (a container's health check); the
        # port comes from --rpc-port or the data directory.
        for where in (["--rpc-port", str(self.rpcPort)], ["--datadir", self.datadir]):
            health = self.cli(*where, "-health")
            self.assertEqual((health.returncode, health.stdout, health.stderr), (0, "up\n", ""))

        # Stopped, the node takes its cookie away.
        self.a.terminate()
        self.a.wait(DEADLINE_S)
        self.assertFalse(os.path.exists(cookie))
        health = self.cli("--rpc-port", str(self.rpcPort), "-health")
        self.assertEqual((health.returncode, health.stdout), (1, ""))
        self.assertIn(f"bitp2p-cli: cannot connect to the node at 127.0.0.1:{self.rpcPort}", health.stderr)

    def test_metricsAndJSONLogs(self):
        self.startPair()
        self.waitFor(self.peers, "B to connect")
        with open(os.path.join(self.datadir, ".cookie")) as f:
            auth = base64.b64encode(f.read().strip().encode()).decode()
        url = f"http://127.0.0.1:{self.rpcPort}/metrics"
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url, timeout=DEADLINE_S)
        self.assertEqual(caught.exception.code, 401)
        self.assertIn(b"Credentials needed", caught.exception.read())
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(request, timeout=DEADLINE_S) as response:
            text = response.read().decode()
        self.assertIn('bitp2p_peers{connection_type="inbound"} 1.0', text)
        self.assertRegex(text, r'bitp2p_messages_total\{direction="inbound",type="version"\} 1\.0')
        self.assertRegex(text, r'bitp2p_bytes_total\{direction="outbound",type="verack"\} [1-9]')
        self.assertIn("bitp2p_accepts_total 1.0", text)
        self.assertRegex(text, r"(?m)^process_start_time_seconds \d")
        self.assertIn("bitp2p_handshake_failures_total 0.0", text)
        self.assertIn('bitp2p_known_addresses{table="tried"}', text)

        self.b.terminate()
        self.b.wait(DEADLINE_S)
        records = [json.loads(line) for line in self.b.stdout.read().decode().splitlines() if line]
        connected = [r for r in records if r["message"].startswith("Connected to")]
        self.assertEqual(len(connected), 1)
        self.assertEqual(connected[0]["namespace"], "bitp2p.node")
        self.assertEqual(connected[0]["address"], f"127.0.0.1:{self.portA}")
        self.assertTrue(all({"time", "level", "message"} <= set(r) for r in records))

    def test_badControlOptionsEndWithOneLine(self):
        for args, expected in (
            (["--rpc-port", "5332", "--no-datadir"], "--rpc-port needs a data directory"),
            (
                ["--port", "0", "--web-port", "5380"],
                "--web-port needs a data directory for its cookie (none here: no default one on"
                " port 0) or --rpc-password",
            ),
            (["--datadir", ""], "--datadir '' names no directory: give one, or --no-datadir"),
            (["--datadir", "d", "--no-datadir"], "--datadir and --no-datadir exclude each other"),
            (["--rpc-port", "bogus:1", "--rpc-password", "x"], "--rpc-port: unknown endpoint kind"),
            (["--log-format", "xml"], "--log-format must be text or json"),
        ):
            process = self.spawn(*args)
            process.wait(DEADLINE_S)
            err = process.stderr.read().decode().strip().splitlines()
            self.assertEqual(process.returncode, 1, args)
            self.assertEqual(len(err), 1, err)
            self.assertIn(expected, err[0])
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            busy = holder.getsockname()[1]
            process = self.spawn(
                "--port", str(freePort()), "--interface", "127.0.0.1", "--no-seeds",
                "--rpc-port", str(busy), "--rpc-password", "x",
            )
            process.wait(DEADLINE_S)
            err = process.stderr.read().decode().strip().splitlines()
        self.assertEqual(err, [f"bitp2p: cannot listen on 127.0.0.1:{busy}: address already in use"])

    def test_theDefaultDataDirectoryServesThePlainCli(self):
        """
        C{twistd -n bitp2p --port P --web-port W} keeps its files in the
        per-user folder (the tests' own, from the environment), and a plain
        C{bitp2p-cli getpeerinfo} finds its cookie and port there; a second
        node on that folder is refused with one line.
        """
        port, webPort = freePort(), freePort()
        datadir = os.path.join(os.environ["XDG_DATA_HOME"], "bitp2p", f"bitp2p-{port}")
        node = self.spawn(
            "--port", str(port), "--interface", "127.0.0.1", "--no-seeds",
            "--web-port", str(webPort),
        )
        self.waitFor(lambda: os.path.exists(os.path.join(datadir, ".cookie")), "the cookie")
        info = self.cli("--json", "getnetworkinfo")
        self.assertEqual(info.returncode, 0, info.stderr)
        nodeId = json.loads(info.stdout)["node_id"]
        peers = self.cli("--rpc-port", str(webPort), "getpeerinfo")
        self.assertEqual((peers.returncode, peers.stdout), (0, "no peers\n"), peers.stderr)

        second = self.spawn("--port", str(freePort()), "--datadir", datadir)
        second.wait(DEADLINE_S)
        err = second.stderr.read().decode().strip().splitlines()
        self.assertEqual(err, [f"bitp2p: data directory {datadir} is in use by another node"])
        self.assertEqual(second.returncode, 1)

        node.terminate()
        node.wait(DEADLINE_S)
        self.assertIn(f"Data directory {datadir}", node.stdout.read().decode())
        with open(os.path.join(datadir, "node_id")) as f:
            self.assertEqual(f.read().strip(), nodeId)
        self.assertTrue(os.path.exists(os.path.join(datadir, "peers.json")))

    def test_noDataDirectoryOnPortZeroOrWhenAskedFor(self):
        base = os.path.join(os.environ["XDG_DATA_HOME"], "bitp2p")
        port = freePort()
        for args, line in (
            (["--port", str(port), "--no-datadir"], "No data directory (--no-datadir)"),
            (["--port", "0"], "No data directory (no default one on port 0)"),
        ):
            log = os.path.join(tempDir(self), "node.log")
            process = self.spawn(
                *args, "--interface", "127.0.0.1", "--no-seeds", twistdArgs=("-l", log)
            )

            def logged() -> str:
                try:
                    with open(log) as f:
                        return f.read()
                except FileNotFoundError:
                    return ""

            self.waitFor(lambda: "listening on" in logged(), "the node to listen")
            process.terminate()
            process.wait(DEADLINE_S)
            self.assertIn(line, logged())
        self.assertFalse(os.path.exists(os.path.join(base, f"bitp2p-{port}")))

    def test_dashboardOnTheWebPort(self):
        datadir = os.path.join(tempDir(self), "w")
        rpcPort, webPort = freePort(), freePort()
        self.spawn(
            "--port", str(freePort()), "--interface", "127.0.0.1", "--no-seeds",
            "--datadir", datadir, "--rpc-port", str(rpcPort), "--web-port", str(webPort),
        )
        cookie = os.path.join(datadir, ".cookie")
        self.waitFor(lambda: os.path.exists(cookie), "the cookie")
        with open(cookie) as f:
            auth = base64.b64encode(f.read().strip().encode()).decode()
        for port in (webPort, rpcPort):
            # The port's root is the dashboard (a redirect to /dashboard/).
            url = f"http://127.0.0.1:{port}/"
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(url, timeout=DEADLINE_S)
            self.assertEqual(caught.exception.code, 401)
            self.assertIn(b"Credentials needed", caught.exception.read())
            request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
            with urllib.request.urlopen(request, timeout=DEADLINE_S) as response:
                page = response.read().decode()
                self.assertEqual(response.url, url + "dashboard/")
            self.assertIn("bitp2p", page)
            self.assertIn("app.js", page)
        network = self.cli("--datadir", datadir, "-json", "getnetworkinfo")  # bitcoin-cli's
        self.assertIn(json.loads(network.stdout)["node_id"], page)
