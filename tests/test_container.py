"""
The container image's entry point (L{bitp2p.ops.container}): BITP2P_*
variables into twistd bitp2p's options, checked by the plugin's own parser;
and the Containerfile's promises (non-root, the volume, the ports, the
health check, the base image as a build argument). The image itself is
built and run in tests/test_fleet.py.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from bitp2p.ops import cli, container
from bitp2p.ops.container import VariableError, commandLine, optionArguments
from bitp2p.ops.tap import Options, UsageFailure

from .helpers import firstLine, stopProcess, tempDir
from .test_twistd import freePort

CONTAINERFILE = Path(__file__).resolve().parent.parent / "Containerfile"


def parsed(environ: dict, argv=()) -> Options:
    line = commandLine(environ, list(argv))
    options = Options()
    options.parseOptions(line[4:])
    return options


class VariableTests(SynchronousTestCase):
    def test_eachOptionHasItsVariable(self):
        """
        BITP2P_ and the option's name in capitals, - as _; other variables
        are not read.
        """
        self.assertEqual(
            optionArguments({"BITP2P_MAX_OUTBOUND": "4", "BITP2P_LOG_LEVEL": "debug",
                             "PATH": "/bin", "HOME": "/data", "BITP2P": "x"}),
            ["--log-level", "debug", "--max-outbound", "4"],
        )

    def test_theSameVariablesGiveTheSameLine(self):
        one = {"BITP2P_PORT": "5000", "BITP2P_SEED": "a:1", "BITP2P_TLS": "1", "BITP2P_DATADIR": "/d"}
        other = dict(reversed(list(one.items())))
        self.assertEqual(optionArguments(one), optionArguments(other))
        self.assertEqual(
            optionArguments(one), ["--tls", "--datadir", "/d", "--port", "5000", "--seed", "a:1"]
        )

    def test_repeatedOptionsTakeSeveralValues(self):
        self.assertEqual(
            optionArguments({"BITP2P_SEED": " seed.example.org:5000, 10.0.0.5:5000  [::1]:5001 ",
                             "BITP2P_ADDNODE": "10.0.0.6:5000"}),
            ["--addnode", "10.0.0.6:5000", "--seed", "seed.example.org:5000",
             "--seed", "10.0.0.5:5000", "--seed", "[::1]:5001"],
        )
        self.assertEqual(optionArguments({"BITP2P_SEED": " , "}), [])

    def test_flags(self):
        for value in ("1", "true", "YES", " yes "):
            self.assertEqual(optionArguments({"BITP2P_NO_SEEDS": value}), ["--no-seeds"], value)
        for value in ("0", "false", "No", ""):
            self.assertEqual(optionArguments({"BITP2P_NO_SEEDS": value}), [], value)
        with self.assertRaises(VariableError) as caught:
            optionArguments({"BITP2P_NO_SEEDS": "maybe"})
        self.assertEqual(
            str(caught.exception),
            "BITP2P_NO_SEEDS='maybe': --no-seeds is a flag, give 1, true or yes (or 0, false, no)",
        )

    def test_aVariableThatNamesNoOptionIsRefused(self):
        """
        A misspelt option is not dropped silently; nor are the console and
        help, which mean nothing in a container.
        """
        for name in ("BITP2P_MAX_OUTBOUNDS", "BITP2P_CONSOLE", "BITP2P_HELP", "BITP2P_"):
            with self.assertRaises(VariableError) as caught:
                optionArguments({name: "1"})
            self.assertTrue(str(caught.exception).startswith(f"{name} names no option"), name)
            self.assertNotIn("\n", str(caught.exception))

    def test_everyOptionHasAVariable(self):
        """
        Every long option of the plugin but the console and help can be
        given by a variable (so that a new option is not forgotten here).
        """
        flags, valued, repeated = container._declared()
        declared = {name for name, *_ in Options.optFlags + Options.optParameters}
        methods = {name[4:].replace("_", "-") for name in dir(Options) if name.startswith("opt_")}
        # usage.Options makes opt_ methods of its own for flags and parameters.
        self.assertEqual(flags | valued | repeated, (declared | methods) - {"console", "help", "version"})

    def test_argumentsComeAfterTheVariables(self):
        """
        An argument wins over a variable for an option given once, and adds
        to it for one given several times.
        """
        home = tempDir(self)
        options = parsed(
            {"BITP2P_PORT": "5000", "BITP2P_SEED": "10.0.0.5:5000", "BITP2P_DATADIR": home},
            ["--port", "6000", "--seed", "10.0.0.6:5000"],
        )
        self.assertEqual(options.config.port, 6000)
        self.assertEqual(list(options.config.seeds), ["10.0.0.5:5000", "10.0.0.6:5000"])
        self.assertEqual(
            commandLine({}, ["--port", "1"]),
            ["twistd", "--nodaemon", "--pidfile=", "bitp2p", "--port", "1"],
        )

    def test_badValuesAreThePluginsOneLine(self):
        """
        A variable's value is checked by the plugin as an argument would be.
        """
        with self.assertRaises(UsageFailure) as caught:
            parsed({"BITP2P_MAX_OUTBOUND": "many", "BITP2P_NO_DATADIR": "1"})
        self.assertIn("--max-outbound", str(caught.exception))

    def test_mainRefusesWithOneLine(self):
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        with self.assertRaises(SystemExit) as caught:
            container.main([], {"BITP2P_PROT": "5000"})
        self.assertEqual(caught.exception.code, 1)
        self.assertEqual(err.getvalue().count("\n"), 1)
        self.assertTrue(err.getvalue().startswith("bitp2p: BITP2P_PROT names no option"))


class ProcessTests(SynchronousTestCase):
    def test_theEntryPointRunsTheNodeAndStopsOnSIGTERM(self):
        """
        C{python -m bitp2p.ops.container}, as the image runs it: the node
        listens where the variables say and SIGTERM shuts it down in order.
        twistd then ends itself by the same signal, Twisted's convention
        (status 143 in a shell, a success for systemd); as a container's
        process 1, which that signal cannot kill, it exits with 0 (seen in
        tests/test_fleet.py).
        """
        port, rpcPort = freePort(), freePort()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BITP2P_")}
        env.update(BITP2P_PORT=str(port), BITP2P_INTERFACE="127.0.0.1", BITP2P_NO_SEEDS="yes",
                   BITP2P_NO_DATADIR="1", BITP2P_LOG_FORMAT="json",
                   BITP2P_RPC_PORT=str(rpcPort), BITP2P_RPC_PASSWORD="secret")
        process = subprocess.Popen(
            [sys.executable, "-m", "bitp2p.ops.container", "--log-level", "info"],
            env=env, cwd=tempDir(self), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.addCleanup(stopProcess, process)
        lines = []
        while not any(b"Running on" in line for line in lines):
            lines.append(firstLine(process, "the entry point's node"))
            self.assertLess(len(lines), 50, lines)
        self.assertTrue(all(line.startswith(b"{") for line in lines), lines)
        self.assertTrue(any(f"listening on 127.0.0.1:{port}".encode() in line for line in lines), lines)
        # The control API answering means the reactor runs, and with it
        # twistd's signal handlers (installed after the services start).
        self.patch(cli.sys, "stderr", io.StringIO())  # "cannot connect" until it listens
        deadline = time.monotonic() + 15
        while cli.main(["--rpc-port", str(rpcPort), "-health"], out=io.StringIO()) != 0:
            self.assertLess(time.monotonic(), deadline, "the control API did not answer")
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(30), -signal.SIGTERM)
        self.assertIn(b'"message":"Server Shut Down."', process.stdout.read())


class ContainerfileTests(SynchronousTestCase):
    text = CONTAINERFILE.read_text()

    def instruction(self, name: str) -> list[str]:
        return re.findall(rf"(?m)^{name} (.*)$", self.text)

    def test_baseImageIsABuildArgument(self):
        self.assertEqual(self.instruction("ARG")[0], "BASE_IMAGE=docker.io/library/python:3.11-slim")
        self.assertEqual(self.instruction("FROM"), ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"])

    def test_nonRootWithItsDataOnAVolume(self):
        [user] = self.instruction("USER")
        self.assertNotIn(user.split(":")[0], ("0", "root"))
        self.assertEqual(self.instruction("VOLUME"), ['["/data"]'])
        self.assertIn("BITP2P_DATADIR=/data", self.text)
        self.assertIn("chown bitp2p:bitp2p /data", self.text)

    def test_portsHealthAndEntryPoint(self):
        self.assertEqual(self.instruction("EXPOSE"), ["5000/tcp 5332/tcp"])
        self.assertIn("BITP2P_PORT=5000", self.text)
        self.assertIn("BITP2P_RPC_PORT=tcp:5332:interface=0.0.0.0", self.text)
        self.assertRegex(self.text, r"HEALTHCHECK .*\n +CMD bitp2p-cli .*-health")
        self.assertEqual(self.instruction("ENTRYPOINT"), ['["python", "-m", "bitp2p.ops.container"]'])
        self.assertEqual(self.instruction("STOPSIGNAL"), ["SIGTERM"])
