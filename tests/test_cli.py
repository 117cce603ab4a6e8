"""
bitp2p-cli's printing and errors, and the JSON log lines. (The CLI against a
running node is in tests/test_operate.py.)
"""

from __future__ import annotations

import io
import json
import os
import socket

from twisted.logger import LogLevel, Logger
from twisted.trial.unittest import SynchronousTestCase

from bitp2p.ops import cli
from bitp2p.logs import JSONLogObserver, jsonLine

from .helpers import tempDir

PEER = {
    "id": 3, "node_id": "3f9c0a12deadbeef", "inbound": False, "connection_type": "outbound",
    "pingtime": 0.0012, "minping": 0.0009, "lastsend": 990.0, "lastrecv": 995.0,
    "conntime": 700.0, "bytesrecv": 2048, "bytessent": 300, "subver": "/bitp2p:0.1.0/",
    "addr": "127.0.0.1:5001",
}


class PrintingTests(SynchronousTestCase):
    def test_peersTable(self):
        out = io.StringIO()
        cli.printPeers([PEER, {**PEER, "id": 4, "inbound": True, "pingtime": None}], out, now=1000.0)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0].split()[:4], ["id", "node", "dir", "type"])
        self.assertEqual(
            lines[1].split(),
            ["3", "3f9c0a12", "out", "outbound", "1.2", "0.9", "10s", "5s", "5m", "2.0K", "300",
             "/bitp2p:0.1.0/", "127.0.0.1:5001"],
        )
        self.assertEqual(lines[2].split()[2], "in")
        self.assertEqual(lines[2].split()[4], "-")

    def test_netinfoSummary(self):
        """
        -netinfo: the node and its local addresses, the peers' table, then
        the totals by direction in the table's own columns and units
        (bytes as K/M, pings in ms, no unit mixed into the cells).
        """
        out = io.StringIO()
        network = {
            "subversion": "/bitp2p:0.1.0/", "node_id": "abc", "listening": "0.0.0.0:5000",
            "localaddresses": [{"address": "192.0.2.7", "port": 5000, "score": 1}],
        }
        slow = {**PEER, "inbound": True, "pingtime": 0.25, "bytesrecv": 3 << 20}
        cli.printNetinfo(network, [PEER, slow], out, now=1000.0)
        lines = out.getvalue().splitlines()
        self.assertIn("node abc", lines[0])
        self.assertEqual(lines[2], "local addresses 192.0.2.7:5000")
        footer = lines[-4:]
        self.assertEqual(footer[0].split(), ["peers", "bytes", "in", "bytes", "out", "median", "ping", "ms"])
        self.assertEqual(footer[1].split(), ["in", "1", "3.0M", "300", "250.0"])
        self.assertEqual(footer[2].split(), ["out", "1", "2.0K", "300", "1.2"])
        self.assertEqual(footer[3].split(), ["total", "2", "3.0M", "600", "250.0"])
        self.assertNotRegex(out.getvalue(), r"\d ms")  # the unit is in the header
        out = io.StringIO()
        cli.printNetinfo({"listening": None, "localaddresses": []}, [], out, now=1000.0)
        self.assertIn("local addresses none", out.getvalue())
        self.assertEqual(out.getvalue().splitlines()[-1].split(), ["total", "0", "0", "0", "-"])

    def test_resultsForPeople(self):
        out = io.StringIO()
        cli.printResult("getnetworkinfo", {"version": "0.1.0", "connections": 2}, out)
        self.assertEqual(out.getvalue().splitlines(), ["version      0.1.0", "connections  2"])
        out = io.StringIO()
        cli.printResult("ping", None, out)
        self.assertEqual(out.getvalue(), "")
        out = io.StringIO()
        cli.printResult("listbanned", [], out)
        self.assertEqual(out.getvalue(), "no bans\n")

    def test_nestedResultsAreNotJSON(self):
        """
        getnetworkinfo's lists and objects print as indented rows, never as
        raw JSON inside the key/value lines.
        """
        out = io.StringIO()
        cli.printResult(
            "getnetworkinfo",
            {
                "version": "0.1.0",
                "listening": None,
                "localaddresses": [
                    {"address": "192.0.2.7", "port": 5000, "score": 1},
                    {"address": "2001:db8::1", "port": 5000, "score": 1},
                ],
                "gossip": {"published": 3, "duplicates": 0},
                "empty": [],
                "tls": False,
                "warnings": "",
            },
            out,
        )
        text = out.getvalue()
        self.assertNotIn("{", text)
        self.assertNotIn("[", text)
        self.assertEqual(
            text.splitlines(),
            [
                "version         0.1.0",
                "listening       -",
                "localaddresses",
                "  address      port  score",
                "  192.0.2.7    5000  1",
                "  2001:db8::1  5000  1",
                "gossip",
                "  published   3",
                "  duplicates  0",
                "empty           none",
                "tls             false",
                "warnings",
            ],
        )

    def test_bitcoinCliSpellingOfJSON(self):
        for flag in ("--json", "-json"):
            args = cli._parser().parse_args([flag, "getnetworkinfo"])
            self.assertTrue(args.json, flag)
            self.assertEqual(args.method, "getnetworkinfo")
        self.assertFalse(cli._parser().parse_args(["getnetworkinfo"]).json)

    def test_argumentsAreJSONWhenTheyParse(self):
        self.assertEqual([cli._param(p) for p in ("10", "true", "null", "127.0.0.1:5")],
                         [10, True, None, "127.0.0.1:5"])


class ErrorTests(SynchronousTestCase):
    def invoke(self, *argv):
        err = io.StringIO()
        self.patch(cli.sys, "stderr", err)
        code = cli.main(list(argv), out=io.StringIO())
        return code, err.getvalue()

    def test_noMethod(self):
        code, err = self.invoke()
        self.assertEqual(code, 2)
        self.assertIn("give a method", err)

    def test_noCredentials(self):
        home = tempDir(self)
        self.patch(os, "environ", {**os.environ, "XDG_DATA_HOME": home})
        code, err = self.invoke("getpeerinfo")
        self.assertEqual((code, err.strip().count("\n")), (1, 0))
        self.assertIn(
            f"no credentials: no running node has a cookie in {home}/bitp2p; give --datadir", err
        )

    def test_withoutDatadirTheRunningNodesDefaultFolderIsUsed(self):
        home = tempDir(self)
        self.patch(os, "environ", {**os.environ, "XDG_DATA_HOME": home})
        datadir = os.path.join(home, "bitp2p", "bitp2p-5000")
        os.makedirs(datadir)
        for name, text in ((".cookie", "__cookie__:abc\n"), (".rpcport", "6123\n")):
            with open(os.path.join(datadir, name), "w") as f:
                f.write(text)

        class Args:
            rpc_port = None
            rpc_password = None
            datadir = None

        self.assertEqual(cli._credentials(Args), "__cookie__:abc")
        self.assertEqual((Args.datadir, cli._port(Args)), (datadir, 6123))
        Args.rpc_port, Args.datadir = 6124, None
        self.assertRaises(cli.CLIError, cli._credentials, Args)

    def test_noCookie(self):
        code, err = self.invoke("--datadir", tempDir(self), "getpeerinfo")
        self.assertEqual(code, 1)
        self.assertIn("cannot read the cookie", err)
        self.assertIn("is the node running with --rpc-port", err)

    def test_nothingListening(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code, err = self.invoke("--rpc-port", str(port), "--rpc-password", "x", "getpeerinfo")
        self.assertEqual(code, 1)
        self.assertIn(f"cannot connect to the node at 127.0.0.1:{port}", err)
        self.assertEqual(err.count("\n"), 1)

    def healthAnswers(self, status: int, body: bytes):
        """
        -health against a stand-in for C{urlopen} answering C{status} and
        C{body}; what it printed, wrote to stderr and exited with.
        """
        import email.message
        import urllib.error

        asked = []

        class Response(io.BytesIO):
            def __init__(self):
                super().__init__(body)
                self.status = status

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        def urlopen(url, timeout):
            asked.append(url)
            if status != 200:
                raise urllib.error.HTTPError(url, status, "", email.message.Message(), io.BytesIO(body))
            return Response()

        self.patch(cli.urllib.request, "urlopen", urlopen)
        out, err = io.StringIO(), io.StringIO()
        self.patch(cli.sys, "stderr", err)
        code = cli.main(["--rpc-port", "5332", "-health"], out=out)
        self.assertEqual(asked, ["http://127.0.0.1:5332/health"])
        return code, out.getvalue(), err.getvalue()

    def test_healthUpDownOrNeither(self):
        """
        -health exits 0 on C{up} (200), 1 on C{down} (503), and 1 with one
        line on anything else (a server that is not a bitp2p node).
        """
        self.assertEqual(self.healthAnswers(200, b"up\n"), (0, "up\n", ""))
        self.assertEqual(self.healthAnswers(503, b"down\n"), (1, "down\n", ""))
        self.assertEqual(
            self.healthAnswers(404, b"<html>not found</html>"),
            (1, "", "bitp2p-cli: the node at 127.0.0.1:5332 answered HTTP 404 to /health\n"),
        )
        self.assertEqual(self.healthAnswers(200, b"hello")[:2], (1, ""))

    def test_thePortComesFromTheDataDirectory(self):
        directory = tempDir(self)
        with open(f"{directory}/.rpcport", "w") as f:
            f.write("6123\n")

        class Args:
            rpc_port = None
            datadir = directory

        self.assertEqual(cli._port(Args), 6123)
        Args.datadir = tempDir(self)
        self.assertEqual(cli._port(Args), cli.DEFAULT_RPC_PORT)


class JSONLogTests(SynchronousTestCase):
    def test_eachEventIsOneLineOfJSON(self):
        stream = io.StringIO()
        log = Logger(namespace="bitp2p.node", observer=JSONLogObserver(stream))
        log.info("Connected to {node_id} at {address}", node_id="abc", address=("127.0.0.1", 5))
        try:
            1 / 0
        except ZeroDivisionError:
            log.failure("Handler for {kind!r} failed", kind="chat")
        first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
        self.assertEqual(first["level"], "info")
        self.assertEqual(first["namespace"], "bitp2p.node")
        self.assertEqual(first["message"], "Connected to abc at ('127.0.0.1', 5)")
        self.assertEqual(first["node_id"], "abc")
        self.assertEqual(first["address"], ["127.0.0.1", 5])
        self.assertTrue(first["time"].endswith("+00:00"))
        self.assertEqual(second["level"], "critical")
        self.assertIn("ZeroDivisionError", second["traceback"])

    def test_unserialisableFieldsBecomeText(self):
        line = jsonLine({"log_level": LogLevel.warn, "log_format": "x {thing}", "thing": object,
                         "log_time": 0.0, "log_namespace": "n"})
        record = json.loads(line)
        self.assertEqual(record["thing"], "<class 'object'>")
        self.assertEqual(record["time"], "1970-01-01T00:00:00+00:00")
