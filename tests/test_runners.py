"""
The programs an operator runs, as real processes: C{bitp2p}, C{bitp2p-cli},
C{twistd bitp2p} and C{twist bitp2p}. Each names itself and bitp2p's
version, ends quietly when its reader goes away, and logs what a person
needs (issue 19, items 1, 3, 4, 10 and 11).

Every process is ended in cleanup, every wait is bounded, every port is on
loopback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from bitp2p._version import __version__

from .helpers import stopProcess, tempDir

BIN = os.path.dirname(sys.executable)
BITP2P = os.path.join(BIN, "bitp2p")
CLI = os.path.join(BIN, "bitp2p-cli")
TWISTD = os.path.join(BIN, "twistd")
TWIST = os.path.join(BIN, "twist")
DEADLINE_S = 30
VERSION = b'{"type": "version", "node_id": "checker", "port": 0, "protocol": 1}\n'


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """
    Run programs, each in a folder of its own; every one still running is
    killed in cleanup. (A mixin for SynchronousTestCases.)
    """

    def runToEnd(self, *command: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
        """
        Run C{command} to its end (bounded), its input empty.
        """
        return subprocess.run(
            command,
            cwd=tempDir(self),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=DEADLINE_S,
        )

    def toAClosedPipe(self, *command: str) -> subprocess.CompletedProcess:
        """
        Run C{command} with its standard output a pipe nobody reads, its
        reading end closed before the program writes (C{... | head -0}).
        """
        reading, writing = os.pipe()
        os.close(reading)
        try:
            return self.runToEnd(*command, stdout=writing)
        finally:
            os.close(writing)

    def start(self, *command: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
        process = subprocess.Popen(
            command,
            cwd=tempDir(self),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.addCleanup(self.reap, process)
        return process

    def reap(self, process: subprocess.Popen) -> None:
        stopProcess(process, gently=False)

    def stop(self, process: subprocess.Popen) -> tuple[str, str]:
        """
        End C{process} with SIGTERM, as an operator would: its standard
        output and error.
        """
        process.terminate()
        out, err = process.communicate(timeout=DEADLINE_S)
        return out.decode(), err.decode()


class NamesAndVersionsTests(Processes, SynchronousTestCase):
    """
    Issue 19, item 1: each program names itself and bitp2p's version.
    """

    def test_bitp2pHelpNamesTheProgramAndItsCommands(self):
        done = self.runToEnd(BITP2P, "--help")
        self.assertEqual(done.returncode, 0)
        lines = done.stdout.decode().splitlines()
        self.assertEqual(lines[0], "Usage: bitp2p [options] PORT")
        self.assertIn("bitp2p crawl", lines[1])
        self.assertEqual(done.stderr, b"")

    def test_bitp2pVersion(self):
        done = self.runToEnd(BITP2P, "--version")
        self.assertEqual((done.returncode, done.stdout.decode()), (0, f"bitp2p {__version__}\n"))

    def test_cliVersionInBothSpellings(self):
        for flag in ("--version", "-version"):
            done = self.runToEnd(CLI, flag)
            self.assertEqual(
                (done.returncode, done.stdout.decode()), (0, f"bitp2p-cli {__version__}\n"), flag
            )

    def test_crawlAndPluginHelpNameThemselves(self):
        done = self.runToEnd(BITP2P, "crawl", "--help")
        self.assertTrue(
            done.stdout.decode().startswith("Usage: bitp2p crawl --network NETWORK"), done.stdout
        )
        done = self.runToEnd(TWISTD, "bitp2p", "--help")
        self.assertTrue(
            done.stdout.decode().startswith("Usage: twistd [options] bitp2p [options] [PORT]"),
            done.stdout,
        )

    def test_helpAndVersionToAClosedPipeEndQuietly(self):
        """
        C{bitp2p --help | head -3} and the like: no BrokenPipeError
        traceback, exit status 0.
        """
        for command in (
            (BITP2P, "--help"),
            (BITP2P, "--version"),
            (BITP2P, "crawl", "--help"),
            (CLI, "--help"),
            (CLI, "--version"),
            (TWISTD, "bitp2p", "--help"),
        ):
            done = self.toAClosedPipe(*command)
            self.assertEqual((done.returncode, done.stderr.decode()), (0, ""), command)


class RunnerLogTests(Processes, SynchronousTestCase):
    """
    What each runner logs of a node started and stopped with SIGTERM:
    bitp2p's JSON lines under C{twist} (item 4), and none of Twisted's
    chatter at info under any runner (item 10).
    """

    CHATTER = ("starting on", "Port", "Closed)", "Main loop terminated")

    def runNode(self, *command: str, port: int) -> tuple[str, str]:
        """
        Start C{command}, wait until it answers on C{port} (bounded: its
        C{version} shows the reactor runs, and so handles SIGTERM), stop it
        with SIGTERM: its standard output and error.
        """
        process = self.start(*command, stdin=subprocess.PIPE)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(VERSION)
                    if s.recv(1):
                        break
                raise OSError("closed")
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    self.fail(process.stderr.read().decode()[-3000:])
                time.sleep(0.1)
        return self.stop(process)

    def nodeArgs(self, port: int, *more: str) -> list[str]:
        return ["--port", str(port), "--interface", "127.0.0.1", "--no-seeds", *more]

    def assertBitp2pJSON(self, out: str, port: int) -> None:
        records = [json.loads(line) for line in out.splitlines() if line]
        self.assertTrue(all({"time", "level", "namespace", "message"} <= set(r) for r in records))
        listening = [r for r in records if "listening on" in r["message"]]
        self.assertEqual(len(listening), 1, records)
        self.assertEqual(listening[0]["address"], f"127.0.0.1:{port}")
        self.assertNotIn("unpersistable", out)

    def test_twistWritesBitp2psJSONWithEitherOption(self):
        for before, after in ((), ("--log-format", "json")), (("--log-format", "json"), ()):
            port = freePort()
            out, err = self.runNode(
                TWIST, *before, "bitp2p", *self.nodeArgs(port, *after), port=port
            )
            self.assertBitp2pJSON(out, port)
            self.assertEqual(err, "")

    def test_twistWritesTextWhenTold(self):
        port = freePort()
        out, _ = self.runNode(
            TWIST, "--log-format", "text", "bitp2p", *self.nodeArgs(port), port=port
        )
        self.assertRegex(out, rf"\[bitp2p.node#info\] Node \w+ listening on 127.0.0.1:{port}")

    def test_twistsLogLevelAndThePluginsAreHonoured(self):
        port = freePort()
        out, _ = self.runNode(
            TWIST, "--log-level", "debug", "bitp2p", *self.nodeArgs(port, "--log-format", "json"),
            port=port,
        )
        records = [json.loads(line) for line in out.splitlines()]
        levels = {record["message"]: record["level"] for record in records}
        self.assertEqual(levels.get(f"(TCP Port {port} Closed)"), "debug", levels)
        port = freePort()
        out, _ = self.runNode(
            TWIST, "bitp2p", *self.nodeArgs(port, "--log-format", "json", "--log-level", "warn"),
            port=port,
        )
        self.assertEqual(out, "")

    def test_noTwistedChatterAtInfo(self):
        """
        twistd, twist and python -m bitp2p, each with the control API on:
        no "X starting on PORT", "(TCP Port PORT Closed)", "Main loop
        terminated." at info; twistd's own start and stop lines stay.
        """
        for runner in ("twistd", "twist", "bitp2p"):
            port, webPort = freePort(), freePort()
            args = self.nodeArgs(port, "--web-port", str(webPort), "--rpc-password", "x")
            if runner == "twistd":
                command = [TWISTD, "-n", "--pidfile=", "bitp2p", *args]
            elif runner == "twist":
                command = [TWIST, "--log-format", "text", "bitp2p", *args]
            else:
                command = [BITP2P, *args]
            out, err = self.runNode(*command, port=port)
            text = out + err
            self.assertIn(f"listening on 127.0.0.1:{port}", text)
            for chatter in self.CHATTER:
                self.assertNotIn(chatter, text, runner)
            if runner == "twistd":
                self.assertIn("Received SIGTERM, shutting down.", text)
                self.assertIn("Server Shut Down.", text)


class BusyPortTests(Processes, SynchronousTestCase):
    """
    Issue 19, item 11: a busy port is said once, in one line, whatever
    runs the node (twistd -n wrote it to its log on standard output and to
    standard error both).
    """

    def test_aBusyPortIsSaidOnceByEveryRunner(self):
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            args = ["--port", str(port), "--interface", "127.0.0.1", "--no-seeds"]
            expected = f"bitp2p: cannot listen on 127.0.0.1:{port}: address already in use"
            for command in (
                (TWISTD, "-n", "--pidfile=", "bitp2p", *args),
                (TWIST, "bitp2p", *args),
                (BITP2P, *args),
            ):
                done = self.runToEnd(*command)
                err = done.stderr.decode()
                self.assertEqual((done.returncode, err), (1, expected + "\n"), command)
                self.assertNotIn("cannot listen", done.stdout.decode(), command)

    def test_aDaemonsLogFileStillSaysIt(self):
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            workdir = tempDir(self)
            done = subprocess.run(
                [TWISTD, "-n", "--pidfile=", "-l", "node.log", "bitp2p", "--port", str(port),
                 "--interface", "127.0.0.1", "--no-seeds"],
                cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True, timeout=DEADLINE_S,
            )
        expected = f"bitp2p: cannot listen on 127.0.0.1:{port}: address already in use"
        self.assertEqual(done.stderr.decode(), expected + "\n")
        with open(os.path.join(workdir, "node.log")) as f:
            self.assertEqual(f.read().count(expected), 1)
