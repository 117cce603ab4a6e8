"""
Logs as a disk-filling channel (issue 16, item 7): the summary of repeated
events (L{bitp2p.logs.RepeatedEvents}), what a node writes when outsiders
connect, refuse to behave and leave as fast as they like, and the log file
twistd writes through C{bitp2p}'s options (level, rotation, files kept).
"""

from __future__ import annotations

import os

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, LogLevel, formatEvent, globalLogPublisher
from twisted.scripts._twistd_unix import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from bitp2p.logs import UNSUMMARISED, QuietTwisted, RepeatedEvents
from bitp2p.ops.tap import Options, logObserver
from bitp2p.ops.tap import makeNode as makeNodeFromOptions

from .helpers import Inbound, linkNodes, lose, makeNode, receive, tempDir


class Events:
    """
    The events a L{Logger} emits, kept.
    """

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.log = Logger(namespace="test", observer=self.events.append)

    def at(self, level: LogLevel) -> list[str]:
        return [formatEvent(e) for e in self.events if e["log_level"] >= level]

    def debug(self) -> list[str]:
        return [formatEvent(e) for e in self.events if e["log_level"] == LogLevel.debug]


class RepeatedEventsTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.repeated = RepeatedEvents(self.clock, interval_s=60)
        self.logged = Events()

    def refuse(self, host: str, kind: str = "Inbound connections refused") -> None:
        self.repeated.emit(
            self.logged.log, LogLevel.info, kind, host, "Refusing {host}", host=host
        )

    def test_theFirstIsWrittenAndTheRestSummarisedAtTheEndOfTheInterval(self):
        for n in range(800):
            self.refuse(f"10.0.{n % 87}.1")
            self.clock.advance(0.0625)  # (exact in binary: 50 s in all)
        self.assertEqual(self.logged.at(LogLevel.info), ["Refusing 10.0.0.1"])
        self.clock.advance(60 - 50)
        self.assertEqual(
            self.logged.at(LogLevel.info),
            [
                "Refusing 10.0.0.1",
                "Inbound connections refused: 799 more in the last 60 s, from 87 hosts",
            ],
        )
        summary = self.logged.events[-1]
        self.assertEqual(
            (summary["log_level"], summary["repeated"], summary["count"], summary["hosts"]),
            (LogLevel.info, "Inbound connections refused", 799, 87),
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_aSteadyFloodIsOneLinePerInterval(self):
        for second in range(600):
            for _ in range(10):
                self.refuse("10.0.0.1")
            self.clock.advance(1)
        lines = self.logged.at(LogLevel.info)
        self.assertEqual(len(lines), 1 + 10)
        self.assertEqual(
            lines[1:], ["Inbound connections refused: 599 more in the last 60 s, from 1 host"]
            + ["Inbound connections refused: 600 more in the last 60 s, from 1 host"] * 9,
        )

    def test_aQuietIntervalEndsTheSummary(self):
        self.refuse("10.0.0.1")
        self.refuse("10.0.0.2")
        self.clock.advance(60)  # the summary of the second
        self.clock.advance(60)  # an interval with nothing
        self.refuse("10.0.0.3")
        self.assertEqual(
            self.logged.at(LogLevel.info),
            [
                "Refusing 10.0.0.1",
                "Inbound connections refused: 1 more in the last 60 s, from 1 host",
                "Refusing 10.0.0.3",
            ],
        )

    def test_noTimerRunsWhileNothingIsCounted(self):
        self.refuse("10.0.0.1")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.refuse("10.0.0.1")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(60)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_eachKindIsSummarisedApartInItsLoggersNamespaceAndLevel(self):
        other = Events()
        self.refuse("10.0.0.1")
        self.refuse("10.0.0.1")
        for _ in range(3):
            self.repeated.emit(other.log, LogLevel.warn, "Hosts discouraged", "10.0.0.9", "Bad")
        self.clock.advance(60)
        self.assertEqual(
            other.at(LogLevel.warn), ["Bad", "Hosts discouraged: 2 more in the last 60 s, from 1 host"]
        )
        self.assertEqual(len(self.logged.at(LogLevel.info)), 2)

    def test_countedEventsAreStillLoggedAtDebug(self):
        for n in range(3):
            self.refuse(f"10.0.0.{n}")
        self.assertEqual(self.logged.debug(), ["Refusing 10.0.0.1", "Refusing 10.0.0.2"])

    def test_countedEventsAreNotMadeWhenTheLogWouldDropThem(self):
        self.repeated.logCounted = False
        for n in range(3):
            self.refuse(f"10.0.0.{n}")
        self.assertEqual(self.logged.debug(), [])
        self.assertEqual(self.repeated.pending(), {"Inbound connections refused": 2})
        self.clock.advance(60)
        self.assertEqual(
            self.logged.at(LogLevel.info),
            ["Refusing 10.0.0.0", "Inbound connections refused: 2 more in the last 60 s, from 2 hosts"],
        )

    def test_anEventOnlyCountedNeedNotBeMade(self):
        """
        C{counted} counts an event that C{emit} would only count, and says
        so; for any other, it says to call C{emit}.
        """
        self.assertFalse(self.repeated.counted("Inbound connections refused", "10.0.0.1"))
        self.refuse("10.0.0.1")  # the first is written
        self.assertFalse(self.repeated.counted("Inbound connections refused", "10.0.0.2"))
        self.repeated.logCounted = False
        self.assertFalse(self.repeated.counted("Other kind", "10.0.0.2"))
        for n in range(3):
            self.assertTrue(self.repeated.counted("Inbound connections refused", f"10.0.0.{n}"))
        self.assertEqual(self.repeated.pending(), {"Inbound connections refused": 3})
        self.clock.advance(60)
        self.assertEqual(
            self.logged.at(LogLevel.info)[-1],
            "Inbound connections refused: 3 more in the last 60 s, from 3 hosts",
        )
        self.clock.advance(60)  # a quiet interval: the next is written again
        self.assertFalse(self.repeated.counted("Inbound connections refused", "10.0.0.1"))
        self.assertFalse(UNSUMMARISED.counted("Inbound connections refused", "10.0.0.1"))

    def test_hostsAreRememberedUpToTheBound(self):
        repeated = RepeatedEvents(self.clock, interval_s=60, maxHosts=3)
        for n in range(11):
            repeated.emit(self.logged.log, LogLevel.info, "Refused", f"10.0.0.{n}", "x")
        self.clock.advance(60)
        self.assertEqual(
            self.logged.at(LogLevel.info)[-1], "Refused: 10 more in the last 60 s, from over 3 hosts"
        )

    def test_kindsAreBounded(self):
        """
        Past C{maxKinds} kinds remembered, an event of yet another kind is
        logged at debug only; a kind gone quiet is forgotten to make room.
        """
        repeated = RepeatedEvents(self.clock, interval_s=60, maxKinds=2)
        for kind in ("a", "b", "c"):
            repeated.emit(self.logged.log, LogLevel.info, kind, None, kind)
        self.assertEqual(self.logged.at(LogLevel.info), ["a", "b"])
        self.assertEqual(self.logged.debug(), ["c"])
        self.clock.advance(60)
        repeated.emit(self.logged.log, LogLevel.info, "c", None, "c again")
        self.assertEqual(self.logged.at(LogLevel.info), ["a", "b", "c again"])

    def test_stopWritesTheSummariesDueAndLeavesNoTimer(self):
        for _ in range(5):
            self.refuse("10.0.0.1")
        self.clock.advance(12.5)
        self.repeated.stop()
        self.assertEqual(
            self.logged.at(LogLevel.info)[-1],
            "Inbound connections refused: 4 more in the last 12.5 s, from 1 host",
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.repeated.pending(), {})


class QuietTwistedTests(SynchronousTestCase):
    """
    Issue 19, item 10: what Twisted says of its own machinery is debug.
    """

    def test_twistedsChatterIsDemotedAndTheRestKept(self):
        from twisted.python import log as legacy

        events: list[dict] = []
        observer = QuietTwisted(events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        base = Logger(namespace="twisted.internet.base")
        legacy.msg("PeerServerFactory starting on 5340")
        legacy.msg("ControlSite (ConnectionLimit) starting on 5341")
        legacy.msg("(TCP Port 5341 Closed)")
        legacy.msg("(UNIX Port /tmp/node.sock Closed)")
        base.info("Main loop terminated.")
        base.info("Received SIGTERM, shutting down.")
        legacy.msg("Something starting on 5000 went wrong", isError=True)
        Logger(namespace="bitp2p.node").info("Node abc listening on 0.0.0.0:5340")
        levels = [(formatEvent(e), e["log_level"]) for e in events]
        self.assertEqual(
            levels,
            [
                ("PeerServerFactory starting on 5340", LogLevel.debug),
                ("ControlSite (ConnectionLimit) starting on 5341", LogLevel.debug),
                ("(TCP Port 5341 Closed)", LogLevel.debug),
                ("(UNIX Port /tmp/node.sock Closed)", LogLevel.debug),
                ("Main loop terminated.", LogLevel.debug),
                ("Received SIGTERM, shutting down.", LogLevel.info),
                ("Something starting on 5000 went wrong", LogLevel.critical),
                ("Node abc listening on 0.0.0.0:5340", LogLevel.info),
            ],
        )


class NodeLogTests(SynchronousTestCase):
    """
    What a node writes at info and above when outsiders churn.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.node = makeNode(7101, self.reactor)
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def lines(self, level: LogLevel = LogLevel.info) -> list[str]:
        return [
            formatEvent(e)
            for e in self.events
            if e["log_level"] >= level and e.get("log_namespace", "").startswith("bitp2p")
        ]

    def test_inboundChurnWritesAFewLinesNotTwoAConnection(self, logCounted: bool = True):
        """
        Before issue 16 each inbound peer that did its handshake and left
        wrote a "Connected" and a "Disconnected" line at info (~250 bytes):
        one client churning wrote 19 MB a minute. Now the first of each is
        written, the rest summarised once a minute.
        """
        self.node.repeated.logCounted = logCounted
        for n in range(300):
            peer = Inbound(self.node, "198.51.100.7", 40000 + n)
            self.assertFalse(peer.refused)
            lose(peer.wire)
        lines = self.lines()
        self.assertEqual(len(lines), 2, lines)
        self.assertTrue(lines[0].startswith("Connected to i-198-51-100-7-40000 at"), lines)
        self.assertTrue(lines[1].startswith("Disconnected from i-198-51-100-7-40000 at"), lines)
        self.reactor.advance(60)
        self.assertEqual(
            self.lines()[2:],
            [
                "Inbound peers connected: 299 more in the last 60 s, from 1 host",
                "Inbound peers disconnected: 299 more in the last 60 s, from 1 host",
            ],
        )
        debug = [line for line in self.lines(LogLevel.debug) if line not in self.lines()]
        self.assertEqual(len(debug), 2 * 299 if logCounted else 0)

    def test_inboundChurnMakesNoEventForWhatIsOnlyCounted(self):
        """
        The same, below --log-level debug: the lines counted are not made.
        """
        self.test_inboundChurnWritesAFewLinesNotTwoAConnection(logCounted=False)

    def test_refusedConnectionsAreSummarised(self):
        cap = self.node.config.inbound_group_cap
        held = [Inbound(self.node, "203.0.113.1", 41000 + n) for n in range(cap)]
        self.assertFalse(any(peer.refused for peer in held))
        for n in range(500):
            self.assertTrue(Inbound(self.node, f"203.0.113.{n % 200 + 2}", 42000 + n).refused)
        refusals = [line for line in self.lines() if line.startswith("Refusing")]
        self.assertEqual(
            refusals,
            [
                f"Refusing inbound connection from 203.0.113.2: {cap} inbound from 203.0.0.0/16"
                " already"
            ],
        )
        self.reactor.advance(60)
        self.assertIn(
            "Inbound connections refused: 499 more in the last 60 s, from 200 hosts", self.lines()
        )

    def test_violationsAreSummarisedAndStillCounted(self):
        for n in range(50):
            address = IPv4Address("TCP", f"{n + 11}.0.2.1", 43000)  # 50 /16s: no cap
            wire = self.node.connman.admit(address)
            wire.makeConnection(StringTransport(peerAddress=address))
            receive(wire, {"type": "getaddr"})
        violations = [line for line in self.lines() if "violation" in line]
        self.assertEqual(len(violations), 1, violations)
        self.assertTrue(violations[0].startswith("Protocol violation by"), violations)
        self.assertEqual(self.node.misbehavior.total, 50)
        self.assertEqual(self.node.misbehavior.violations("60.0.2.1"), 1)
        self.reactor.advance(60)
        self.assertIn(
            "Protocol violations by inbound peers: 49 more in the last 60 s, from 49 hosts",
            self.lines(),
        )

    def test_peersThisNodeDialedAreLoggedAtInfoEachTime(self):
        """
        Like Bitcoin Core's "New outbound peer connected": a peer this node
        dialed is worth a line every time (this node chose to dial it, so
        no outsider sets the pace).
        """
        other = makeNode(7102, self.reactor)
        for _ in range(3):
            pump = linkNodes(other, self.node, self.reactor)
            [peer] = self.node.peers()
            peer.close(Exception("bye"))
            pump.flush()
        ours = [
            line
            for line in self.lines()
            if line.startswith(("Connected to", "Disconnected from")) and other.node_id in line
        ]
        self.assertEqual(len(ours), 6, ours)
        self.assertIn("(outbound,", ours[0])

    def test_aDeadPeerIsNamedOnceALineAndItsDialsOnlyAtDebug(self):
        """
        Issue 19, item 3: dead seeds wrote "Dialing X" and "Could not
        connect to X: cannot connect to X: ..." at every try. The dials
        and their failures are debug lines (as Bitcoin Core's -debug=net),
        each naming the address once; a peer the operator asked for
        (--addnode) is worth its info line, once named too.
        """
        node = makeNode(
            7103, self.reactor, seeds=("127.0.0.1:7198",), addnodes=("127.0.0.1:7199",)
        )
        self.addCleanup(node.stopService)
        failed = 0
        for _ in range(20):
            self.reactor.advance(1)
            for connector, client in zip(
                self.reactor.connectors[failed:], self.reactor.tcpClients[failed:]
            ):
                client[2].clientConnectionFailed(connector, ConnectionRefusedError())
            failed = len(self.reactor.connectors)
        self.assertGreater(failed, 2)
        lines = [line for line in self.lines(LogLevel.debug) if "7198" in line or "7199" in line]
        self.assertTrue(any(line.startswith("Dialing 127.0.0.1:7198") for line in lines), lines)
        couldNot = [line for line in lines if line.startswith("Could not connect")]
        self.assertEqual(
            {line.split(":")[0] + ":" + line.split(":")[1] for line in couldNot},
            {"Could not connect to 127.0.0.1:7198", "Could not connect to 127.0.0.1:7199"},
        )
        for line in lines:
            self.assertEqual(line.count("127.0.0.1:71"), 1, line)
        info = [line for line in self.lines() if "7198" in line or "7199" in line]
        self.assertTrue(info, lines)
        self.assertTrue(
            all(line.startswith("Could not connect to 127.0.0.1:7199: ") for line in info), info
        )
        self.assertIn("retrying in", info[0])

    def test_aSecondConnectionToAPeerIsClosedAtDebugNamingItsAddress(self):
        """
        Issue 19, item 10: two nodes that dial each other at once wrote
        "Closing <Peer ...>: already connected" at info. It is a normal
        race: a debug line, naming the node and its address, not a repr.
        """
        other = makeNode(7104, self.reactor)
        linkNodes(self.node, other, self.reactor)
        self.assertEqual([p.node_id for p in self.node.peers()], [other.node_id])
        again = Inbound(self.node, "127.0.0.1", 45000, node_id=other.node_id)
        self.assertFalse(again.refused)
        self.assertEqual([p.node_id for p in self.node.peers()], [other.node_id])
        self.assertEqual([line for line in self.lines() if "Closing" in line], [])
        self.assertIn(
            f"Closing a second connection to {other.node_id} at 127.0.0.1:5000",
            self.lines(LogLevel.debug),
        )
        self.assertNotIn("<Peer", " ".join(self.lines(LogLevel.debug)))

    def test_aRefusedVersionNamesThePeerByIdAndAddress(self):
        Inbound(self.node, "198.51.100.9", 45001, node_id=self.node.node_id)
        closing = [line for line in self.lines() if line.startswith("Closing")]
        self.assertEqual(
            closing,
            [
                f"Closing the connection to {self.node.node_id} at 198.51.100.9:5000:"
                " connected to itself"
            ],
        )

    def test_theNodesStopWritesTheSummariesDueAndLeavesNoTimer(self):
        for n in range(3):
            lose(Inbound(self.node, "198.51.100.8", 44000 + n).wire)
        self.successResultOf(self.node.stopService())
        self.assertIn(
            "Inbound peers connected: 2 more in the last 0 s, from 1 host", self.lines()
        )
        self.assertEqual(self.node.repeated.pending(), {})
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class TwistdLogFileTests(SynchronousTestCase):
    """
    The log observer C{twistd -l FILE bitp2p} gets (L{logObserver}):
    twistd's own keeps every rotated file, so a flood of log lines filled
    the disk (about 1 GB an hour).
    """

    def options(self, twistdArgs: list[str], args: list[str]) -> Options:
        twistd = ServerOptions()
        twistd.parseOptions([*twistdArgs, "bitp2p", *args])
        return twistd.subOptions

    def test_theLogFileKeepsOnlyTheNewestRotatedFiles(self):
        directory = tempDir(self)
        path = os.path.join(directory, "node.log")
        for n in range(1, 6):
            with open(f"{path}.{n}", "w") as f:
                f.write("from an older run\n")
        options = self.options(
            ["-n", "-l", path], ["--log-rotate-bytes", "1000", "--log-max-files", "3"]
        )
        observer = logObserver(options)
        log = Logger(namespace="bitp2p.test", observer=observer)
        for n in range(500):
            log.info("Line {n} of a flood of lines, each about a hundred bytes long: {pad}",
                     n=n, pad="x" * 20)
        names = sorted(os.listdir(directory))
        self.assertEqual(names, ["node.log", "node.log.1", "node.log.2", "node.log.3"])
        for name in names:
            self.assertLessEqual(os.path.getsize(os.path.join(directory, name)), 1200)
        with open(path) as f:
            self.assertIn("Line 499 of a flood", f.read())

    def test_theDefaultsBoundTheLog(self):
        directory = tempDir(self)
        options = self.options(["-n", "-l", os.path.join(directory, "node.log")], [])
        self.assertEqual((options.logRotateBytes, options.logMaxFiles), (10_000_000, 10))
        file = logObserver(options)._observer._observer._outFile  # QuietTwisted, filter, file
        self.assertEqual((file.rotateLength, file.maxRotatedFiles), (10_000_000, 10))

    def test_debugEventsAreLeftOutUnlessAskedFor(self):
        for args, expected in (([], ["info line"]), (["--log-level", "debug"], ["debug line", "info line"])):
            directory = tempDir(self)
            path = os.path.join(directory, "node.log")
            observer = logObserver(self.options(["-n", "-l", path], args))
            log = Logger(namespace="bitp2p.test", observer=observer)
            log.debug("debug line")
            log.info("info line")
            with open(path) as f:
                written = [line.split("] ", 1)[1] for line in f.read().splitlines()]
            self.assertEqual(written, expected)

    def test_theNodeMakesCountedEventsOnlyAtDebugLevel(self):
        for args, expected in (([], False), (["--log-level", "debug"], True),
                               (["--log-level", "warn"], False)):
            # (Three nodes never stopped: no data directory, whose lock
            # the first would keep.)
            options = self.options(["-n"], ["--port", "7103", "--no-datadir", *args])
            node = makeNodeFromOptions(options, MemoryReactorClock())
            self.assertIs(node.repeated.logCounted, expected, args)

    def test_jsonGoesToTheFileToo(self):
        directory = tempDir(self)
        path = os.path.join(directory, "node.log")
        observer = logObserver(self.options(["-n", "-l", path], ["--log-format", "json"]))
        Logger(namespace="bitp2p.test", observer=observer).info("hello {who}", who="you")
        with open(path) as f:
            self.assertIn('"message":"hello you"', f.read())

    def test_twistdsOtherDestinationsAreKept(self):
        self.assertIsNone(logObserver(self.options(["-l", "-"], [])))  # twistd refuses it
        self.assertIsNone(
            logObserver(self.options(["-n", "--logger", "twisted.logger.textFileLogObserver"], []))
        )
        stdout = logObserver(self.options(["-n"], []))
        self.assertIsNotNone(stdout)

    def test_badValuesAreRefused(self):
        for args, expected in (
            (["--log-level", "loud"], "--log-level must be one of debug, info, warn, error"),
            (["--log-max-files", "0"], "--log-max-files must be a whole number >= 1"),
            (["--log-rotate-bytes", "-5"], "--log-rotate-bytes must be a whole number >= 1"),
            (["--log-rotate-bytes", "many"], "--log-rotate-bytes must be a whole number"),
        ):
            with self.assertRaises(SystemExit) as caught:
                Options().parseOptions(args)
            self.assertIn(expected, str(caught.exception))
