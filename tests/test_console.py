"""
The console: its commands against a node in memory, the terminal front-end
redrawing the prompt around log lines, and real C{python -m bitp2p}
processes driven through pipes.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address
from bitp2p.formatting import duration
from bitp2p.ops.console import Commands, PipeConsole, TerminalConsole, age

from .helpers import linkNodes, makeNode, stopProcess, tempDir

DEADLINE_S = 30


class CommandTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.node = makeNode(6001, self.reactor)
        self.output: list[str] = []
        self.quits = []
        self.commands = Commands(self.node, self.output.append, lambda: self.quits.append(1))

    def type(self, line):  # noqa: A003 - reads as the console does
        self.output.clear()
        return self.commands.execute(line)

    def test_helpListsEveryCommand(self):
        self.type("help")
        text = "\n".join(self.output)
        for name in (
            "connect", "disconnect", "peers", "known", "ban", "unban", "bans", "pins", "unpin",
            "status", "help", "quit",
        ):
            self.assertIn(name, text)
        help = list(self.output)
        self.type("?")
        self.assertEqual(self.output, help)

    def test_emptyLineDoesNothing(self):
        self.assertIsNone(self.type("   "))
        self.assertEqual(self.output, [])

    def test_unknownCommand(self):
        self.type("frobnicate now")
        self.assertEqual(self.output, ["unknown command 'frobnicate'; type help"])

    def test_wrongArgumentCountGivesUsage(self):
        self.type("connect")
        self.assertEqual(
            self.output, ["usage: connect HOST PORT (or connect HOST:PORT, or connect ENDPOINT)"]
        )
        self.type("disconnect")
        self.assertEqual(self.output, ["usage: disconnect ID"])
        self.type("peers extra")
        self.assertEqual(self.output, ["usage: peers"])

    def test_badPort(self):
        self.type("connect 127.0.0.1 http")
        self.assertEqual(self.output, ["bad port 'http': expected 1..65535"])

    def test_connectTakesOneTarget(self):
        d = self.type("connect 127.0.0.1")
        self.assertIsNotNone(d)
        self.assertEqual(
            self.output,
            [
                "connecting to 127.0.0.1 ...",
                "connect failed: expected HOST:PORT or an endpoint such as unix:/path.sock,"
                " got '127.0.0.1'",
            ],
        )

    def test_pinsNeedTLS(self):
        self.type("pins")
        self.assertEqual(self.output, ["no pins: this node runs without --tls"])
        self.type("unpin 127.0.0.1:6002")
        self.assertEqual(self.output, ["127.0.0.1:6002 was not pinned"])

    def test_pinsListsAndUnpinForgets(self):
        node = makeNode(6003, self.reactor, tls=True)
        self.commands = Commands(node, self.output.append, lambda: None)
        self.type("pins")
        self.assertEqual(self.output, ["no pins"])
        node.pins.pin("127.0.0.1:6002", "ab" * 32)
        self.type("pins")
        self.assertEqual(self.output, [f"{'127.0.0.1:6002':43}  {'ab' * 32}"])
        self.type("unpin 127.0.0.1:6002")
        self.assertEqual(
            self.output, ["unpinned 127.0.0.1:6002: the next node met there is trusted and pinned"]
        )
        self.assertIsNone(node.pins.get("127.0.0.1:6002"))
        self.type("status")
        self.assertIn("tls        on (node id = hash of the key)", self.output)

    def test_statusSaysTLSAndGossip(self):
        self.type("status")
        self.assertIn("tls        off", self.output)
        self.assertIn("gossip     0 published, 0 delivered, 0 duplicates, 0 ids remembered", self.output)

    def test_noPeersAndNoKnownAddresses(self):
        self.type("peers")
        self.assertEqual(self.output, ["no peers"])
        self.type("known")
        self.assertEqual(self.output, ["no known addresses"])

    def test_peersShowsEachConnectedPeer(self):
        other = makeNode(6002, self.reactor)
        self.reactor.advance(1000)
        linkNodes(self.node, other, self.reactor)
        self.reactor.advance(65)
        self.type("peers")
        self.assertEqual(len(self.output), 2)
        row = self.output[1].split()
        self.assertEqual(row[:4], [other.node_id[:8], "127.0.0.1:6002", "inbound", "/bitp2p:0.1.0/"])
        self.assertEqual(row[4], "1m")

    def test_knownShowsTheAddressBook(self):
        self.reactor.advance(100)
        self.node.book.add([(Address.of("10.0.0.1", 5000), 40)], Address.of("10.0.0.1", 5000), 100)
        self.type("known")
        self.assertEqual(self.output[1].split(), ["10.0.0.1:5000", "new", "1m", "-", "-", "0"])

    def test_banUnbanAndBans(self):
        self.type("bans")
        self.assertEqual(self.output, ["no bans"])
        self.output.clear()
        self.type("ban 10.1.0.0/16 3600")
        self.assertEqual(self.output, ["banned 10.1.0.0/16 for 1h"])
        self.assertTrue(self.node.isBanned("10.1.2.3"))
        self.output.clear()
        self.type("bans")
        self.assertEqual(self.output[0].split(), ["10.1.0.0/16", "1h", "left"])
        self.output.clear()
        self.type("ban nonsense")
        self.assertIn("nonsense", self.output[0])
        self.output.clear()
        self.type("ban 10.2.0.0/16 soon")
        self.assertEqual(self.output, ["cannot ban: 'soon' is not a number of seconds"])
        self.output.clear()
        self.type("ban 10.2.0.0/16 0")
        self.assertEqual(self.output, ["ban duration must be positive, not 0.0"])
        self.assertFalse(self.node.isBanned("10.2.3.4"))
        self.output.clear()
        self.type("unban 10.1.0.0/16")
        self.assertEqual(self.output, ["unbanned 10.1.0.0/16"])
        self.type("unban 10.1.0.0/16")
        self.assertEqual(self.output, ["10.1.0.0/16 was not banned"])
        self.assertFalse(self.node.isBanned("10.1.2.3"))

    def test_statusShowsIdentityAndCounts(self):
        self.type("status")
        text = "\n".join(self.output)
        self.assertIn(self.node.node_id, text)
        self.assertIn("127.0.0.1:6001", text)
        self.assertIn("0 outbound, 0 inbound", text)

    def test_connectReportsSuccess(self):
        other = makeNode(6002, self.reactor)
        d = self.type("connect 127.0.0.1 6002")
        self.assertEqual(self.output, ["connecting to 127.0.0.1:6002 ..."])
        # Complete the dial in memory: hand the recorded factory a connection.
        factory = self.reactor.tcpClients[-1][2]
        from twisted.internet.address import IPv4Address
        from twisted.test import iosim

        clientWire = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6002))
        serverWire = other.connman.admit(IPv4Address("TCP", "127.0.0.1", 50000))
        iosim.connect(
            serverWire,
            iosim.FakeTransport(serverWire, True, IPv4Address("TCP", "127.0.0.1", 6002),
                                IPv4Address("TCP", "127.0.0.1", 50000)),
            clientWire,
            iosim.FakeTransport(clientWire, False, IPv4Address("TCP", "127.0.0.1", 50000),
                                IPv4Address("TCP", "127.0.0.1", 6002)),
            clock=self.reactor,
        )
        self.successResultOf(d)
        self.assertEqual(self.output[-1], f"connected to {other.node_id[:8]} at 127.0.0.1:6002")

    def test_connectReportsFailure(self):
        from twisted.internet.error import ConnectionRefusedError

        d = self.type("connect 127.0.0.1 6009")
        factory = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(self.reactor.connectors[-1], ConnectionRefusedError())
        self.successResultOf(d)
        self.assertTrue(self.output[-1].startswith("connect failed: cannot connect to 127.0.0.1:6009"))

    def test_disconnectUnknownPeer(self):
        self.type("disconnect abc")
        self.assertEqual(self.output, ["no connected peer 'abc'"])

    def test_disconnectByPrefix(self):
        other = makeNode(6002, self.reactor)
        pump = linkNodes(self.node, other, self.reactor)
        d = self.type(f"disconnect {other.node_id[:5]}")
        pump.flush()
        self.successResultOf(d)
        self.assertEqual(self.output, [f"disconnected {other.node_id[:8]}"])
        self.assertEqual(self.node.peers(), [])

    def test_quitAndExit(self):
        self.type("quit")
        self.type("exit")
        self.assertEqual(self.quits, [1, 1])

    def test_age(self):
        self.assertEqual(
            [age(1000, t) for t in (None, 0, 1000, 990, 900, 1000 - 7200, 1000 - 3 * 86400)],
            ["-", "-", "0s", "10s", "1m", "2h", "3d"],
        )

    def test_durationToTwoUnits(self):
        """
        Issue 19, item 11: a ban's length, in the console, the log and the
        dashboard alike, to two units (one unit would make 1h 30m "1h").
        """
        self.assertEqual(
            [duration(s) for s in (0, 2.5, 90, 3600, 5400, 86400, 90000, 3 * 86400 + 7200)],
            ["0s", "2s", "1m 30s", "1h", "1h 30m", "1d", "1d 1h", "3d 2h"],
        )

    def test_aBansLengthReadsTheSameInTheConsoleAndTheLog(self):
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.type("ban 10.3.0.0/16")
        self.assertEqual(self.output, ["banned 10.3.0.0/16 for 1d"])
        self.type("ban 10.4.0.0/16 5400")
        self.assertEqual(self.output, ["banned 10.4.0.0/16 for 1h 30m"])
        logged = [formatEvent(e) for e in events if formatEvent(e).startswith("Banned")]
        self.assertEqual(logged, ["Banned 10.3.0.0/16 for 1d", "Banned 10.4.0.0/16 for 1h 30m"])
        self.assertEqual([e["seconds"] for e in events if "seconds" in e], [86400, 5400])


class PipeQueueTests(SynchronousTestCase):
    """
    Issue 19, item 5: piped commands run in order, each once the one
    before has answered.
    """

    def setUp(self):
        self.ran: list[str] = []
        self.later: dict[str, Deferred] = {}
        self.quits: list[int] = []
        self.pipe = PipeConsole(makeNode(6011, MemoryReactorClock()), lambda: self.quits.append(1))
        self.pipe.commands = self  # the stand-in for Commands: execute()
        self.transport = StringTransport()
        self.pipe.makeConnection(self.transport)

    def execute(self, line: str) -> Deferred | None:
        self.ran.append(line)
        if line.startswith("slow"):
            self.later[line] = Deferred()
            return self.later[line]
        if line == "fails at once":
            return fail(ValueError("no such peer"))
        return None

    def test_aCommandWaitsForTheAnswerOfTheOneBefore(self):
        self.pipe.dataReceived(b"slow 1\npeers\nslow 2\nstatus\n")
        self.assertEqual(self.ran, ["slow 1"])
        self.later["slow 1"].callback(None)
        self.assertEqual(self.ran, ["slow 1", "peers", "slow 2"])
        self.pipe.readConnectionLost()
        self.assertEqual(self.quits, [])
        self.later["slow 2"].callback(None)
        self.assertEqual(self.ran, ["slow 1", "peers", "slow 2", "status"])
        self.assertEqual(self.quits, [1])

    def test_commandsAnsweredAtOnceRunOnAndAFailureIsSaid(self):
        self.pipe.dataReceived(b"fails at once\npeers\nstatus\n")
        self.assertEqual(self.ran, ["fails at once", "peers", "status"])
        self.assertEqual(self.transport.value(), b"failed: no such peer\n")
        self.pipe.readConnectionLost()
        self.assertEqual(self.quits, [1])

    def test_theEndOfInputWithNothingQueuedStops(self):
        self.pipe.readConnectionLost()
        self.assertEqual(self.quits, [1])


class TerminalTests(SynchronousTestCase):
    def setUp(self):
        node = makeNode(6001, MemoryReactorClock())
        node.node_id = "abcdef0123456789"
        self.quits = []
        self.console = TerminalConsole(node, lambda: self.quits.append(1))
        self.terminal = ServerProtocol(lambda: self.console)
        self.transport = StringTransport()
        self.terminal.makeConnection(self.transport)

    def screen(self) -> bytes:
        return self.transport.value()

    def test_promptIsShownAtStart(self):
        self.assertIn(b"node-abcdef01> ", self.screen())
        self.assertNotIn(b"\x1bc", self.screen())  # the screen is not reset

    def test_logLineKeepsPromptAndHalfTypedInput(self):
        self.terminal.dataReceived(b"conn")
        self.transport.clear()
        self.console.showText("12:00:00 peer connected")
        self.assertEqual(
            self.screen(),
            b"\r\x1b[2K12:00:00 peer connected\r\nnode-abcdef01> conn",
        )

    def test_cursorIsPutBackWhereItWas(self):
        self.terminal.dataReceived(b"connect")
        self.terminal.dataReceived(b"\x1b[D\x1b[D")  # two left arrows
        self.transport.clear()
        self.console.showText("log")
        self.assertTrue(self.screen().endswith(b"node-abcdef01> connect\x1b[2D"))

    def test_returnRunsTheCommand(self):
        self.terminal.dataReceived(b"peers\r")
        self.assertIn(b"no peers\r\nnode-abcdef01> ", self.screen())
        self.assertEqual(self.console.historyLines, [b"peers"])

    def test_ctrlDOnEmptyLineQuits(self):
        self.terminal.dataReceived(b"x\x04")
        self.assertEqual(self.quits, [])
        self.terminal.dataReceived(b"\x7f\x04")
        self.assertEqual(self.quits, [1])

    def test_ctrlCQuits(self):
        self.terminal.dataReceived(b"\x03")
        self.assertEqual(self.quits, [1])

    def test_historyIsKeptInTheDataDirectory(self):
        directory = tempDir(self)
        node = makeNode(6002, MemoryReactorClock(), datadir=directory)

        def session():
            console = TerminalConsole(node, lambda: None)
            terminal = ServerProtocol(lambda: console)
            transport = StringTransport()
            terminal.makeConnection(transport)
            return console, terminal, transport

        console, terminal, transport = session()
        self.assertEqual(console.historyLines, [])
        terminal.dataReceived(b"peers\rstatus\r")
        console.saveHistory()
        with open(os.path.join(directory, "console_history"), "rb") as f:
            self.assertEqual(f.read(), b"peers\nstatus\n")
        console, terminal, transport = session()
        self.assertEqual(console.historyLines, [b"peers", b"status"])
        transport.clear()
        terminal.dataReceived(b"\x1b[A")  # up arrow: the last command
        self.assertIn(b"status", transport.value())


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessTests(SynchronousTestCase):
    """
    C{python -m bitp2p} as a user runs it, through pipes.
    """

    def spawn(self, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "bitp2p", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.addCleanup(self.reap, process)
        return process

    def reap(self, process: subprocess.Popen) -> None:
        stopProcess(process, gently=False)

    def readUntil(self, process, pattern: str) -> str:
        """
        Read stdout lines until one matches C{pattern}; bounded in time.
        """
        deadline = time.monotonic() + DEADLINE_S
        seen = []
        while time.monotonic() < deadline:
            line = process.stdout.readline().decode()
            if not line:
                break
            seen.append(line)
            if re.search(pattern, line):
                return line
        self.fail(f"no line matching {pattern!r} in {seen!r}")

    def command(self, process, line: str) -> None:
        process.stdin.write(line.encode() + b"\n")
        process.stdin.flush()

    def test_terminalOneTerminalTwo(self):
        portA, portB = freePort(), freePort()
        a = self.spawn(str(portA), "--interface", "127.0.0.1", "--no-seeds")
        b = self.spawn(str(portB), "--interface", "127.0.0.1", "--no-seeds")
        self.command(a, "status")
        idA = self.readUntil(a, r"^node id").split()[2]
        self.command(b, "status")
        idB = self.readUntil(b, r"^node id").split()[2]
        self.command(b, f"connect 127.0.0.1 {portA}")
        self.readUntil(b, rf"^connected to {idA[:8]} at 127.0.0.1:{portA}")
        self.command(b, "peers")
        self.readUntil(b, rf"^{idA[:8]}\s+127.0.0.1:{portA}\s+outbound")
        self.command(a, "peers")
        self.readUntil(a, rf"^{idB[:8]}\s+127.0.0.1:{portB}\s+inbound")
        for process in (a, b):
            self.command(process, "quit")
            self.assertEqual(process.wait(DEADLINE_S), 0)

    def test_theNodeIdIsKeptInTheDefaultDataDirectory(self):
        """
        Without C{--datadir}, C{python -m bitp2p PORT} keeps its node id in
        the per-user folder (the test's own, from the environment) and says
        so on stderr; run again, it is the same node.
        """
        port = freePort()
        datadir = os.path.join(os.environ["XDG_DATA_HOME"], "bitp2p", f"bitp2p-{port}")
        ids = []
        for _ in range(2):
            process = self.spawn(str(port), "--interface", "127.0.0.1", "--no-seeds")
            self.command(process, "status")
            ids.append(self.readUntil(process, r"^node id").split()[2])
            process.stdin.close()
            self.assertEqual(process.wait(DEADLINE_S), 0)
            self.assertIn(f"Data directory {datadir}", process.stderr.read().decode())
        self.assertEqual(ids[0], ids[1])
        with open(os.path.join(datadir, "node_id")) as f:
            self.assertEqual(f.read().strip(), ids[0])

    def test_endOfInputWaitsForTheCommandsStillRunning(self):
        """
        C{printf 'connect ...' | python -m bitp2p}: the answer to the
        connect comes before the node stops.
        """
        portA = freePort()
        a = self.spawn(str(portA), "--interface", "127.0.0.1", "--no-seeds")
        self.command(a, "status")
        idA = self.readUntil(a, r"^node id").split()[2]
        b = self.spawn("0", "--interface", "127.0.0.1", "--no-seeds")
        self.command(b, f"connect 127.0.0.1 {portA}")
        b.stdin.close()
        self.readUntil(b, rf"^connected to {idA[:8]} at 127.0.0.1:{portA}")
        self.assertEqual(b.wait(DEADLINE_S), 0)

    def test_pipedCommandsRunInOrderEachAfterTheLastAnswered(self):
        """
        C{printf 'connect 127.0.0.1 PORT\\npeers\\n' | bitp2p 0}: the
        peers command lists the peer the connect made (it printed "no
        peers" before the handshake was over).
        """
        portA = freePort()
        a = self.spawn(str(portA), "--interface", "127.0.0.1", "--no-seeds")
        self.command(a, "status")
        idA = self.readUntil(a, r"^node id").split()[2]
        b = self.spawn("0", "--interface", "127.0.0.1", "--no-seeds")
        b.stdin.write(f"connect 127.0.0.1 {portA}\npeers\n".encode())
        b.stdin.close()
        self.assertEqual(b.wait(DEADLINE_S), 0)  # (its few lines fit in the pipe)
        lines = b.stdout.read().decode().splitlines()
        self.assertEqual(
            lines[:2],
            [
                f"connecting to 127.0.0.1:{portA} ...",
                f"connected to {idA[:8]} at 127.0.0.1:{portA}",
            ],
        )
        self.assertNotIn("no peers", lines)
        self.assertRegex(lines[-1], rf"^{idA[:8]}\s+127.0.0.1:{portA}\s+outbound")

    def test_endOfInputStopsTheNode(self):
        process = self.spawn("0", "--interface", "127.0.0.1", "--no-seeds")
        process.stdin.close()
        self.assertEqual(process.wait(DEADLINE_S), 0)

    def test_busyPortGivesOneLine(self):
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            process = self.spawn(str(port), "--interface", "127.0.0.1", "--no-seeds")
            self.assertEqual(process.wait(DEADLINE_S), 1)
        self.assertEqual(
            process.stderr.read().decode().splitlines(),
            [f"bitp2p: cannot listen on 127.0.0.1:{port}: address already in use"],
        )

    def test_badOptionGivesOneLine(self):
        process = self.spawn("--port", "abc")
        self.assertEqual(process.wait(DEADLINE_S), 1)
        self.assertEqual(
            process.stderr.read().decode().splitlines(),
            ["bitp2p: --port must be a whole number in 0..65535, not 'abc' (see --help)"],
        )
