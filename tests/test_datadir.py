"""
The per-user default data directory (L{bitp2p.ops.datadir}) on each
platform, given the platform and the environment, and how C{bitp2p-cli}
finds a running node's among them.
"""

from __future__ import annotations

import os
import sys
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from bitp2p.ops.datadir import baseDir, defaultDatadir, findNode, listenPort, runningNodes
from bitp2p.storage import DataDir

from .helpers import tempDir


class BaseDirTests(SynchronousTestCase):
    def test_linuxFollowsXDGDataHome(self):
        env = {"HOME": "/home/ann", "XDG_DATA_HOME": "/data/ann"}
        self.assertEqual(baseDir("linux", env), "/data/ann/bitp2p")

    def test_linuxFallsBackToLocalShare(self):
        self.assertEqual(baseDir("linux", {"HOME": "/home/ann"}), "/home/ann/.local/share/bitp2p")
        self.assertEqual(
            baseDir("linux", {"HOME": "/home/ann", "XDG_DATA_HOME": ""}),
            "/home/ann/.local/share/bitp2p",
        )

    def test_aRelativeXDGDataHomeIsIgnored(self):
        env = {"HOME": "/home/ann", "XDG_DATA_HOME": "data"}
        self.assertEqual(baseDir("linux", env), "/home/ann/.local/share/bitp2p")

    def test_otherUnixesAreLikeLinux(self):
        self.assertEqual(baseDir("freebsd14", {"HOME": "/home/ann"}), "/home/ann/.local/share/bitp2p")

    def test_macOSUsesApplicationSupport(self):
        env = {"HOME": "/Users/ann", "XDG_DATA_HOME": "/data/ann"}
        self.assertEqual(baseDir("darwin", env), "/Users/ann/Library/Application Support/bitp2p")

    def test_windowsUsesLocalAppData(self):
        env = {"USERPROFILE": "C:\\Users\\ann", "LOCALAPPDATA": "D:\\Local"}
        self.assertEqual(baseDir("win32", env), "D:\\Local\\bitp2p")
        self.assertEqual(
            baseDir("win32", {"USERPROFILE": "C:\\Users\\ann"}), "C:\\Users\\ann\\AppData\\Local\\bitp2p"
        )

    def test_homeCanBeGiven(self):
        self.assertEqual(baseDir("linux", {}, home="/h"), "/h/.local/share/bitp2p")


class DefaultDatadirTests(SynchronousTestCase):
    env = {"HOME": "/home/ann"}

    def test_oneFolderPerNetworkAndPort(self):
        names = {
            defaultDatadir(network, port, "linux", self.env)
            for network, port in (("bitp2p", 5000), ("bitp2p", 5001), ("regtest", 5000))
        }
        self.assertEqual(
            names,
            {
                "/home/ann/.local/share/bitp2p/bitp2p-5000",
                "/home/ann/.local/share/bitp2p/bitp2p-5001",
                "/home/ann/.local/share/bitp2p/regtest-5000",
            },
        )

    def test_windowsPath(self):
        env = {"LOCALAPPDATA": "C:\\L"}
        self.assertEqual(defaultDatadir("mainnet", 8333, "win32", env), "C:\\L\\bitp2p\\mainnet-8333")

    def test_noDefaultOnPortZeroOrWithoutAPort(self):
        self.assertIsNone(defaultDatadir("bitp2p", 0, "linux", self.env))
        self.assertIsNone(defaultDatadir("bitp2p", None, "linux", self.env))

    def test_theTCPPortOfAnEndpoint(self):
        for endpoint, port in (
            ("tcp:5000", 5000),
            ("tcp6:5001:interface=\\:\\:", 5001),
            ("tcp:interface=127.0.0.1:port=5002", 5002),
            ("tcp:0", 0),
            ("unix:/run/bitp2p.sock", None),
            ("onion:5000", None),
            ("tcp:abc", None),
        ):
            self.assertEqual(listenPort(endpoint), port, endpoint)


class FindNodeTests(SynchronousTestCase):
    def node(self, base: str, name: str, rpcPort: int | None, cookie: bool = True) -> str:
        datadir = os.path.join(base, name)
        os.makedirs(datadir)
        if cookie:
            with open(os.path.join(datadir, ".cookie"), "w") as f:
                f.write("__cookie__:secret\n")
        if rpcPort is not None:
            with open(os.path.join(datadir, ".rpcport"), "w") as f:
                f.write(f"{rpcPort}\n")
        return datadir

    def test_theOneNodeWithACookie(self):
        base = tempDir(self)
        self.node(base, "bitp2p-5001", None, cookie=False)  # not serving its API
        found = self.node(base, "bitp2p-5000", 5332)
        self.assertEqual(runningNodes(base), [(found, 5332)])
        self.assertEqual(findNode(base=base), found)
        self.assertEqual(findNode(5332, base=base), found)

    def test_theRPCPortChoosesAmongSeveral(self):
        base = tempDir(self)
        first = self.node(base, "bitp2p-5000", 5332)
        second = self.node(base, "regtest-18444", 5333)
        self.assertEqual(findNode(5333, base=base), second)
        self.assertEqual(findNode(5332, base=base), first)
        with self.assertRaises(LookupError) as caught:
            findNode(base=base)
        self.assertIn("give --datadir or --rpc-port (one of 5332, 5333)", str(caught.exception))
        with self.assertRaises(LookupError) as caught:
            findNode(5999, base=base)
        self.assertEqual(
            str(caught.exception), f"no running node with --rpc-port 5999 has a cookie in {base}"
        )

    def test_aCookieLeftByANodeKilledIsLeftOutAmongSeveral(self):
        base = tempDir(self)
        self.node(base, "bitp2p-5000", 5332)  # its node was killed: no lock held
        live = self.node(base, "bitp2p-5001", 5333)
        held = DataDir(live)
        self.addCleanup(held.unlock)
        self.assertEqual(findNode(base=base), live)

    def test_theLockFileSaysWhoHoldsItWithoutALockTaken(self):
        """
        Among several, a cookie whose lock file names a process that is
        gone is left out, and one naming a live process kept, without any
        lock being tried (so a node starting at that instant is never
        refused because of bitp2p-cli).
        """
        if sys.platform == "win32":
            raise SkipTest("no process ids asked on Windows")
        import subprocess

        from bitp2p.ops import datadir as module

        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait(30)
        base = tempDir(self)
        dead = self.node(base, "bitp2p-5000", 5332)
        live = self.node(base, "bitp2p-5001", 5333)
        for datadir, pid in ((dead, gone.pid), (live, os.getpid())):
            with open(os.path.join(datadir, ".lock"), "w") as f:
                f.write(f"{pid}\n")

        def noLock(*args):
            raise AssertionError("a lock was tried")

        if module.fcntl is not None:
            self.patch(module.fcntl, "flock", noLock)
        self.assertEqual(findNode(base=base), live)

    def test_aNodeWritesItsProcessIdInItsLock(self):
        datadir = os.path.join(tempDir(self), "d")
        held = DataDir(datadir)
        self.addCleanup(held.unlock)
        with open(os.path.join(datadir, ".lock")) as f:
            self.assertEqual(f.read(), f"{os.getpid()}\n")

    def test_noBaseFolder(self):
        missing = os.path.join(tempDir(self), "none")
        self.assertEqual(runningNodes(missing), [])
        self.assertRaises(LookupError, findNode, base=missing)


class OptionsTests(SynchronousTestCase):
    """
    The data directory C{twistd bitp2p}'s options choose.
    """

    def datadir(self, *argv: str):
        from bitp2p.ops.tap import Options

        options = Options()
        options.parseOptions(list(argv))
        self.assertEqual(options.config.datadir, options["datadir"])
        return options.config.datadir, options.datadirNote

    def test_theDefaultIsPerNetworkAndPort(self):
        base = baseDir()
        self.assertEqual(self.datadir("--port", "5001"), (os.path.join(base, "bitp2p-5001"), None))
        self.assertEqual(self.datadir(), (os.path.join(base, "bitp2p-5000"), None))
        self.assertEqual(
            self.datadir("--network", "regtest"), (os.path.join(base, "regtest-18444"), None)
        )
        self.assertEqual(
            self.datadir("--listen", "tcp:5002:interface=127.0.0.1"),
            (os.path.join(base, "bitp2p-5002"), None),
        )

    def test_givenNoneOrNoDefault(self):
        self.assertEqual(self.datadir("--datadir", "/srv/n"), ("/srv/n", None))
        self.assertEqual(self.datadir("--no-datadir"), (None, "--no-datadir"))
        self.assertEqual(self.datadir("--port", "0"), (None, "no default one on port 0"))
        self.assertEqual(
            self.datadir("--listen", "unix:/tmp/n.sock"), (None, "no default one without a TCP port")
        )

    def test_theBaseComesFromTheEnvironment(self):
        if sys.platform in ("darwin", "win32"):
            raise SkipTest("XDG_DATA_HOME is the rule of Linux and other Unixes")
        home = tempDir(self)
        self.patch(os, "environ", {**os.environ, "XDG_DATA_HOME": home})
        self.assertEqual(
            self.datadir("--port", "5003")[0], os.path.join(home, "bitp2p", "bitp2p-5003")
        )

    def test_anUnusableDirectoryIsNamedForWhatItIs(self):
        """
        A data directory that cannot be made ends the program with one line
        that says whether it was the default one or the one --datadir gave.
        """
        from bitp2p.ops.tap import Options, UsageFailure, makeNode

        if sys.platform in ("darwin", "win32"):
            raise SkipTest("XDG_DATA_HOME is the rule of Linux and other Unixes")
        notADirectory = os.path.join(tempDir(self), "file")
        with open(notADirectory, "w"):
            pass
        self.patch(os, "environ", {**os.environ, "XDG_DATA_HOME": notADirectory})
        for argv, start in (
            (["--port", "5004"], f"the default data directory {notADirectory}"),
            (["--datadir", os.path.join(notADirectory, "d")], f"--datadir {notADirectory}"),
        ):
            options = Options()
            options.parseOptions(argv)
            with self.assertRaises(UsageFailure) as caught:
                makeNode(options)
            self.assertTrue(str(caught.exception).startswith(f"bitp2p: {start}"), caught.exception)
