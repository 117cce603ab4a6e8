"""
Real C{twistd -n bitp2p} processes, checked from outside over the wire by a
plain-socket client that speaks the protocol by hand.

Every process is killed in cleanup; every wait is bounded.
"""

from __future__ import annotations

import json
import importlib.util
import os
import socket
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from cryptography.hazmat.primitives import serialization

from bitp2p.ops.tap import Options
from bitp2p.tls import node_id_of_public_key

from .helpers import stopProcess, tempDir

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
DEADLINE_S = 30


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WireClient:
    """
    A minimal protocol client written from PROTOCOL.md, sharing no code
    with bitp2p.
    """

    def __init__(self, port: int, node_id: str = "outside-checker") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""
        self.send({"type": "version", "node_id": node_id, "port": 0, "protocol": 1})

    def send(self, message: dict) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self) -> dict:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the node")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def receiveType(self, kind: str) -> dict:
        for _ in range(100):
            message = self.receive()
            if message["type"] == kind:
                return message
        raise AssertionError(f"no {kind} in 100 messages")

    def close(self) -> None:
        self.sock.close()


class TwistdProcesses:
    """
    Start C{twistd -n bitp2p} processes, each in a folder of its own; every
    one is ended in cleanup. (A mixin for SynchronousTestCases.)
    """

    def spawn(self, *args: str, twistdArgs=(), workdir: str | None = None) -> subprocess.Popen:
        """
        C{twistd -n --pidfile= TWISTDARGS bitp2p ARGS}, in C{workdir} (a
        new folder by default).
        """
        if workdir is None:
            workdir = os.path.join(tempDir(self), "d")
            os.makedirs(workdir)
        process = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", *twistdArgs, "bitp2p", *args],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.addCleanup(self.reap, process)
        return process

    def reap(self, process: subprocess.Popen) -> None:
        stopProcess(process)


class TwistdTests(TwistdProcesses, SynchronousTestCase):
    def connectWhenUp(self, port: int) -> WireClient:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                return WireClient(port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def test_twoTwistdNodesFindEachOther(self):
        portA, portB = freePort(), freePort()
        self.spawn("--port", str(portA), "--interface", "127.0.0.1", "--no-seeds")
        self.spawn(
            "--port", str(portB), "--interface", "127.0.0.1",
            "--seed", f"127.0.0.1:{portA}", "--ping-interval", "1",
        )
        deadline = time.monotonic() + DEADLINE_S
        while True:
            client = self.connectWhenUp(portA)
            try:
                theirs = client.receiveType("version")
                client.receiveType("verack")
                client.send({"type": "verack"})
                client.send({"type": "getaddr"})
                client.send({"type": "ping", "nonce": 12345})
                addr = client.receiveType("addr")
                while "pong" not in (m := client.receive())["type"]:
                    if m["type"] == "addr":
                        addr["peers"] += m["peers"]
                self.assertEqual(m["nonce"], 12345)
            finally:
                client.close()
            self.assertEqual(theirs["port"], portA)
            known = {e["addr"] if isinstance(e, dict) else e for e in addr["peers"]}
            if f"127.0.0.1:{portB}" in known or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertIn(f"127.0.0.1:{portB}", known)

    def test_busyPortEndsWithOneLine(self):
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            process = self.spawn("--port", str(port), "--interface", "127.0.0.1", "--no-seeds")
            process.wait(DEADLINE_S)
            err = process.stderr.read().decode()
        self.assertEqual(process.returncode, 1)
        self.assertEqual(
            err.strip().splitlines(),
            [f"bitp2p: cannot listen on 127.0.0.1:{port}: address already in use"],
        )

    def test_tlsNodesOverAUnixSocket(self):
        """
        The README's endpoint example, with --tls: a node listening on TCP
        and a UNIX socket, a second one told to keep it connected through
        the socket; both TLS, so each logs the other's key-hash id.
        """
        directory = tempDir(self)
        path = os.path.join(directory, "a.sock")
        a = self.spawn(
            "--listen", f"tcp:{freePort()}:interface=127.0.0.1", "--listen", f"unix:{path}",
            "--no-seeds", "--tls", "--datadir", os.path.join(directory, "a"),
        )
        b = self.spawn(
            "--port", str(freePort()), "--interface", "127.0.0.1", "--no-seeds", "--tls",
            "--addnode", f"unix:{path}", "--datadir", os.path.join(directory, "b"),
        )
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline and not (
            os.path.exists(os.path.join(directory, "a", "node.key"))
            and os.path.exists(os.path.join(directory, "b", "node.key"))
        ):
            time.sleep(0.1)
        ids = {}
        for name in ("a", "b"):
            key = os.path.join(directory, name, "node.key")
            self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
            with open(key, "rb") as f:
                private = serialization.load_pem_private_key(f.read(), None)
            ids[name] = node_id_of_public_key(private.public_key())
        lines = {a: b"", b: b""}
        while time.monotonic() < deadline:
            for process in (a, b):
                os.set_blocking(process.stdout.fileno(), False)
                lines[process] += process.stdout.read() or b""
            if (
                f"Connected to {ids['a']}".encode() in lines[b]
                and f"Connected to {ids['b']}".encode() in lines[a]
            ):
                break
            time.sleep(0.1)
        self.assertIn(f"Connected to {ids['a']} at unix:{path}".encode(), lines[b])
        self.assertIn(f"Connected to {ids['b']}".encode(), lines[a])

    def test_theLogFileKeepsOnlyTheNewestRotatedFiles(self):
        """
        C{twistd -l node.log bitp2p}: the log is rotated at
        C{--log-rotate-bytes} and only C{--log-max-files} rotated files are
        kept; twistd alone keeps every one (issue 16, item 7: about 1 GB an
        hour under a connection flood). Files of an older run past the
        limit go at the first rotation.
        """
        workdir = tempDir(self)
        for n in range(1, 6):
            with open(os.path.join(workdir, f"node.log.{n}"), "w") as f:
                f.write("from an older run\n")
        process = self.spawn(
            "--port", str(freePort()), "--interface", "127.0.0.1", "--no-seeds",
            "--log-rotate-bytes", "200", "--log-max-files", "2",
            twistdArgs=("-l", "node.log"), workdir=workdir,
        )

        def logged() -> str:
            text = ""
            for name in sorted(os.listdir(workdir)):
                try:
                    with open(os.path.join(workdir, name)) as f:
                        text += f.read()
                except FileNotFoundError:
                    continue  # rotated away between the listing and the read
            return text

        deadline = time.monotonic() + DEADLINE_S
        while "listening on" not in logged() and process.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        process.terminate()
        process.wait(DEADLINE_S)
        self.assertIn("listening on", logged(), process.stderr.read())
        self.assertEqual(sorted(os.listdir(workdir)), ["node.log", "node.log.1", "node.log.2"])
        self.assertNotIn("from an older run", logged())
        self.assertIn("Server Shut Down.", logged())

    def test_badOptionValueEndsWithOneLine(self):
        notADirectory = os.path.join(tempDir(self), "file")
        open(notADirectory, "w").close()
        for args, expected in (
            (["--port", "abc"], "--port must be a whole number in 0..65535, not 'abc'"),
            (["--seed", "nowhere"], "--seed"),
            (["--max-outbound", "-2"], "--max-outbound"),
            (["--ping-interval", "0"], "--ping-interval"),
            (["--ping-timeout", "-1"], "--ping-timeout must be a number of seconds > 0"),
            (["--interface", "localhost"], "--interface must be an IP address"),
            (["--datadir", os.path.join(notADirectory, "d")], "--datadir"),
            (["--no-such-option"], "no-such-option"),
            (["--listen", "bogus:1"], "--listen: unknown endpoint kind in 'bogus:1'"),
            (["--listen", "tcp:abc"], "cannot listen on tcp:abc"),
            (["--listen", "tcp:0", "--port", "0"], "give it or --port, not both"),
            (["--addnode", "unix:"], "--addnode: expected HOST:PORT or an endpoint"),
            (["--log-level", "loud"], "--log-level must be one of debug, info, warn, error"),
            (["--log-max-files", "0"], "--log-max-files must be a whole number >= 1"),
        ):
            process = self.spawn(*args)
            process.wait(DEADLINE_S)
            err = process.stderr.read().decode().strip().splitlines()
            self.assertEqual(process.returncode, 1, args)
            self.assertEqual(len(err), 1, err)
            self.assertTrue(err[0].startswith("bitp2p: "), err)
            self.assertIn(expected, err[0])


class PeerOptionTests(SynchronousTestCase):
    """
    --addnode, --connect and --seednode, parsed without starting anything.
    """

    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(list(argv))
        return options

    def test_helpWrapsEachOptionsTextCleanly(self):
        text = " ".join(str(Options()).split())
        self.assertIn("not counted against --max-outbound); repeat for several.", text)
        self.assertIn("--seed= Bootstrap address HOST:PORT, used when the address", text)
        self.assertNotIn("counted         against", str(Options()))

    def test_repeatedPeerOptionsReachTheConfig(self):
        config = self.parse(
            "--addnode", "10.0.0.1:7000", "--addnode", "node.example:7001",
            "--seednode", "10.0.0.2:7002", "--port", "0",
        ).config
        self.assertEqual(config.addnodes, ("10.0.0.1:7000", "node.example:7001"))
        self.assertEqual(config.seednodes, ("10.0.0.2:7002",))
        self.assertEqual(config.connect, ())
        config = self.parse("--connect", "[2001:db8::1]:7000").config
        self.assertEqual(config.connect, ("[2001:db8::1]:7000",))

    def test_pingTimersReachTheConfig(self):
        config = self.parse("--ping-interval", "2.5", "--ping-timeout", "7").config
        self.assertEqual((config.ping_interval_s, config.ping_timeout_s), (2.5, 7.0))
        self.assertEqual(self.parse().config.ping_timeout_s, 90)

    def test_badPeerOptionsEndWithOneLine(self):
        for argv, expected in (
            (["--addnode", "10.0.0.1"], "--addnode: expected HOST:PORT"),
            (["--seednode", "10.0.0.1:99999"], "--seednode: expected HOST:PORT"),
            (["--connect", "10.0.0.1:7000", "--seed", "10.0.0.2:7000"], "--seed cannot be used"),
        ):
            with self.assertRaises(SystemExit) as caught:
                self.parse(*argv)
            message = str(caught.exception.code)
            self.assertIn(expected, message)
            self.assertEqual(len(message.splitlines()), 1)


class TwistdBitcoinTests(TwistdProcesses, SynchronousTestCase):
    """
    C{twistd -n bitp2p --network regtest}: nodes speak Bitcoin's protocol,
    checked by a client written with python-bitcoinlib (an implementation
    independent of bitp2p's codec), as a Bitcoin node at protocol 70015.
    """

    def exchange(self, port: int) -> tuple[object, list]:
        """
        Handshake with the node on C{port} as a 70015 peer, ask getaddr,
        ping, and read until the pong: C{(its version, addr entries)}.
        """
        import bitcoin
        from bitcoin.messages import (
            MsgSerializable,
            msg_getaddr,
            msg_ping,
            msg_verack,
            msg_version,
        )

        bitcoin.SelectParams("regtest")
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        try:
            version = msg_version(70015)
            version.nVersion = 70015
            version.addrTo.ip, version.addrTo.port = "127.0.0.1", port
            version.nNonce = 0x1234
            version.strSubVer = b"/python-bitcoinlib-checker/"
            sock.sendall(version.to_bytes())
            stream = sock.makefile("rb")
            theirs, entries, commands = None, [], []
            while True:
                message = MsgSerializable.stream_deserialize(stream)
                commands.append(message.command)
                if message.command == b"version":
                    theirs = message
                    sock.sendall(msg_verack().to_bytes())
                    sock.sendall(msg_getaddr().to_bytes())
                    sock.sendall(msg_ping(70015, nonce=987654321).to_bytes())
                elif message.command == b"addr":
                    entries += message.addrs
                elif message.command == b"pong":
                    self.assertEqual(message.nonce, 987654321)
                    break
            # A 70015 peer is sent neither wtxidrelay nor sendaddrv2.
            self.assertEqual(commands[:2], [b"version", b"verack"])
            stream.close()
            return theirs, entries
        finally:
            sock.close()

    def test_regtestNodesSpeakBitcoin(self):
        portA, portB = freePort(), freePort()
        a = self.spawn("--network", "regtest", "--port", str(portA), "--interface", "127.0.0.1", "--no-seeds")
        self.spawn(
            "--network", "regtest", "--port", str(portB), "--interface", "127.0.0.1",
            "--seed", f"127.0.0.1:{portA}",
        )
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                theirs, entries = self.exchange(portA)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            known = {(e.ip, e.port) for e in entries}
            if ("127.0.0.1", portB) in known or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(theirs.nVersion, 70016)
        self.assertEqual(theirs.nServices, 0)
        self.assertEqual(theirs.nStartingHeight, 0)
        self.assertFalse(theirs.fRelay)
        self.assertTrue(theirs.strSubVer.startswith(b"/bitp2p:"))
        self.assertEqual(theirs.addrFrom.port, portA)
        self.assertIn(("127.0.0.1", portB), known)
        self.assertIsNone(a.poll())


NO_UVLOOP = (
    None
    if importlib.util.find_spec("uvloop")
    else "uvloop is not installed (pip install 'bitp2p[uvloop]')"
)


class ReactorTests(TwistdProcesses, SynchronousTestCase):
    """
    A node on Twisted's asyncio reactor and on the C{uvloop} reactor (the
    one C{twisted/plugins/bitp2p_plugin.py} registers), run by C{twistd},
    C{twist} and C{python -m bitp2p}: each listens, answers a handshake and
    a ping on loopback, and logs the reactor and event loop it runs on.
    """

    def startProcess(self, command: list[str], env: dict | None = None) -> subprocess.Popen:
        process = subprocess.Popen(
            command,
            cwd=tempDir(self),
            # Open, not empty: python -m bitp2p stops at the end of its input.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.addCleanup(self.reap, process)
        self.addCleanup(process.stdin.close)
        return process

    def handshakeAndLog(self, process: subprocess.Popen, port: int) -> str:
        """
        Do a version handshake and a ping with the node on C{port}, stop
        it, and return all it wrote (standard output and error).
        """
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                client = WireClient(port)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    self.fail(process.stderr.read().decode()[-3000:])
                time.sleep(0.1)
        try:
            theirs = client.receiveType("version")
            client.receiveType("verack")
            client.send({"type": "verack"})
            client.send({"type": "ping", "nonce": 4242})
            pong = client.receiveType("pong")
        finally:
            client.close()
        self.assertEqual(theirs["port"], port)
        self.assertEqual(pong["nonce"], 4242)
        process.terminate()
        process.wait(DEADLINE_S)
        return (process.stdout.read() + process.stderr.read()).decode()

    def nodeArgs(self, port: int) -> list[str]:
        return ["--port", str(port), "--interface", "127.0.0.1", "--no-seeds"]

    def test_twistdOnTheAsyncioReactor(self):
        port = freePort()
        process = self.startProcess(
            [TWISTD, "--reactor", "asyncio", "-n", "--pidfile=", "bitp2p", *self.nodeArgs(port)]
        )
        out = self.handshakeAndLog(process, port)
        self.assertIn("reactor class: twisted.internet.asyncioreactor.AsyncioSelectorReactor", out)
        self.assertIn(
            "Running on AsyncioSelectorReactor on asyncio.unix_events._UnixSelectorEventLoop", out
        )

    def test_twistdOnUvloop(self):
        port = freePort()
        process = self.startProcess(
            [TWISTD, "--reactor", "uvloop", "-n", "--pidfile=", "bitp2p", *self.nodeArgs(port)]
        )
        out = self.handshakeAndLog(process, port)
        self.assertIn("reactor class: twisted.internet.asyncioreactor.AsyncioSelectorReactor", out)
        self.assertEqual(out.count("Running on AsyncioSelectorReactor on uvloop.Loop"), 1, out)

    test_twistdOnUvloop.skip = NO_UVLOOP  # type: ignore[attr-defined]

    def test_twistOnUvloop(self):
        port = freePort()
        twist = os.path.join(os.path.dirname(sys.executable), "twist")
        process = self.startProcess([twist, "--reactor", "uvloop", "bitp2p", *self.nodeArgs(port)])
        out = self.handshakeAndLog(process, port)
        self.assertRegex(out, r"\"reactor\": ?\"AsyncioSelectorReactor on uvloop.Loop\"")

    test_twistOnUvloop.skip = NO_UVLOOP  # type: ignore[attr-defined]

    def test_pythonMinusMOnUvloop(self):
        port = freePort()
        process = self.startProcess(
            [sys.executable, "-m", "bitp2p", "--reactor", "uvloop", *self.nodeArgs(port)]
        )
        out = self.handshakeAndLog(process, port)
        self.assertIn("Running on AsyncioSelectorReactor on uvloop.Loop", out)

    test_pythonMinusMOnUvloop.skip = NO_UVLOOP  # type: ignore[attr-defined]

    def test_withoutUvloopTheReactorCannotBeUsed(self):
        """
        Where uvloop cannot be imported, C{twistd --reactor uvloop} and
        C{python -m bitp2p --reactor uvloop} end at once and say how to
        install it. (A C{uvloop} module that fails to import, first on the
        path, stands in for a missing one.)
        """
        shadow = tempDir(self)
        with open(os.path.join(shadow, "uvloop.py"), "w") as f:
            f.write("raise ImportError('no uvloop here')\n")
        env = {**os.environ, "PYTHONPATH": shadow}
        port = freePort()
        for command, expected in (
            (
                [TWISTD, "--reactor", "uvloop", "-n", "--pidfile=", "bitp2p"],
                "The specified reactor cannot be used, failed with error: uvloop is not"
                " installed (pip install 'bitp2p[uvloop]')",
            ),
            (
                [sys.executable, "-m", "bitp2p", "--reactor", "uvloop"],
                "bitp2p: --reactor uvloop: uvloop is not installed (pip install 'bitp2p[uvloop]')",
            ),
        ):
            process = self.startProcess([*command, *self.nodeArgs(port)], env=env)
            process.wait(DEADLINE_S)
            out = (process.stdout.read() + process.stderr.read()).decode()
            self.assertNotEqual(process.returncode, 0, out)
            self.assertIn(expected, out)
            self.assertNotIn("Traceback", out)
