"""
C{bitp2p lab} and C{twistd -n bitp2p-lab}: the options and the service they
build (the lab of L{bitp2p.ops.lab.service} and its page of
L{bitp2p.ops.lab.web}, on loopback).

Mistakes on the command line and a busy web port end the program with one
line, no traceback. Logs go where a node's go (L{bitp2p.ops.tap.logObserver}
under twistd; standard error for C{bitp2p lab}), at C{--log-level} and
above, Twisted's chatter demoted (L{bitp2p.logs.QuietTwisted}).

It owns the command line and the assembly, nothing the lab or the page
does.
"""

from __future__ import annotations

import shutil
import sys
import tempfile

from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.web import server

from bitp2p.bitcoin.networks import NETWORKS as BITCOIN_NETWORKS
from bitp2p.constants import LOG_MAX_FILES, LOG_ROTATE_BYTES, NETWORK
from bitp2p.logs import JSONLogObserver
from bitp2p.ops.tap import (
    UsageFailure,
    beginLogging,
    checkLogOptions,
    exitWith,
    logObserver,
    stderrLines,
    wholeNumber,
)

__all__ = ["LabService", "Options", "makeService", "main"]

log = Logger()

HOST = "127.0.0.1"
# The most nodes --nodes starts.
MAX_START_NODES = 100


class Options(usage.Options):
    """
    Options of C{bitp2p lab} and C{twistd bitp2p-lab}.
    """

    synopsis = "[options]"
    longdesc = (
        "A web page on loopback from which to start, stop, kill, restart and connect "
        "local bitp2p nodes (real nodes on real loopback ports, run in this process) "
        "and watch them discover each other."
    )
    optParameters = [
        [
            "nodes",
            "n",
            "0",
            "Nodes to start at launch, each one after the first dialing the first.",
        ],
        ["web-port", "w", "8080", "Port of the lab's page, on 127.0.0.1."],
        ["base-port", "b", "5000", "First port tried for a node started without one."],
        [
            "network",
            None,
            NETWORK,
            f"{NETWORK} (bitp2p's own JSON lines), or a Bitcoin network: "
            f"{', '.join(BITCOIN_NETWORKS)} (no broadcasts there).",
        ],
        [
            "dir",
            "d",
            None,
            "Directory for the nodes' data directories (one per port) [default: a fresh"
            " temporary directory, removed at the end].",
        ],
        ["log-format", None, "text", "Log lines as text, or json (one object per line)."],
        [
            "log-level",
            None,
            "info",
            "Lowest level logged: debug (the nodes' every connection), info, warn or error.",
        ],
    ]
    # twistd's log file (-l FILE), rotated as a node's is.
    logRotateBytes = LOG_ROTATE_BYTES
    logMaxFiles = LOG_MAX_FILES

    def postOptions(self) -> None:
        self["nodes"] = wholeNumber("nodes", self["nodes"], 0, MAX_START_NODES)
        self["web-port"] = wholeNumber("web-port", self["web-port"], 0, 65535)
        self["base-port"] = wholeNumber("base-port", self["base-port"], 1, 65535)
        self.logLevel = checkLogOptions(self)
        networks = (NETWORK, *BITCOIN_NETWORKS)
        if self["network"] not in networks:
            raise usage.UsageError(
                f"--network must be one of {', '.join(networks)}, not {self['network']!r}"
            )

    def parseOptions(self, options=None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            raise UsageFailure(f"lab: {e} (see --help)") from None


class LabService(service.MultiService):
    """
    The lab and its page. The page listens when the service starts; a busy
    port ends the program with one line.

    @ivar url: the page's address, once listening.
    """

    def __init__(self, config: Options, reactor=None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        from bitp2p.ops.lab.service import Lab
        from bitp2p.ops.lab.web import labResource

        self.reactor = reactor
        self.config = config
        self._temporary = config["dir"] is None
        directory = tempfile.mkdtemp(prefix="bitp2p-lab-") if self._temporary else config["dir"]
        self.lab = Lab(
            directory, network=config["network"], basePort=config["base-port"], reactor=reactor
        )
        self.lab.setServiceParent(self)
        self.site = server.Site(labResource(self.lab))
        self.site.displayTracebacks = False
        self.site.noisy = False  # no "Starting factory <Site ...>"
        # No access log: the page polls every second.
        self.site.log = lambda request: None
        self.port = None
        self.url: str | None = None

    def setServiceParent(self, parent) -> None:
        """
        Join C{parent}; under twistd, give the application the log observer
        a node's would have (L{logObserver}: its level, its format, Twisted's
        chatter demoted), unless it has one.
        """
        super().setServiceParent(parent)
        if getattr(self.config, "parent", None) is None:
            return
        observer = logObserver(self.config)
        if observer is not None and isinstance(parent, Componentized):
            if parent.getComponent(ILogObserver, None) is None:
                parent.setComponent(ILogObserver, observer)

    def privilegedStartService(self) -> None:
        self._listen()
        super().privilegedStartService()

    def _listen(self) -> None:
        if self.port is not None:
            return
        try:
            self.port = self.reactor.listenTCP(self.config["web-port"], self.site, interface=HOST)
        except CannotListenError as e:
            reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
            self._cleanup()
            raise exitWith(f"lab: cannot listen on {HOST}:{e.port}: {reason.lower()}") from None
        self.url = f"http://{HOST}:{self.port.getHost().port}/"

    def startService(self) -> None:
        self._listen()
        super().startService()
        from bitp2p.ops.lab.service import LabError

        first = None
        for index in range(self.config["nodes"]):
            try:
                node = self.lab.startNode()
            except LabError as e:
                raise exitWith(f"lab: {e}") from None
            if first is None:
                first = node.port
            else:
                self.lab.connect(node.port, first).addErrback(lambda _: None)
        log.info("The lab: {url} (nodes' data in {dir})", url=self.url, dir=self.lab.directory)

    def stopService(self):
        d = super().stopService()
        if self.port is not None:
            d.addBoth(lambda _: self.port.stopListening())
        return d.addBoth(lambda _: self._cleanup())

    def _cleanup(self) -> None:
        if self._temporary:
            shutil.rmtree(self.lab.directory, ignore_errors=True)


def makeService(config: Options) -> service.MultiService:
    """
    The lab service from parsed options (C{twistd bitp2p-lab}).
    """
    return LabService(config)


def main(argv: list[str]) -> int:
    """
    Run C{bitp2p lab} with the arguments after C{lab}: print the page's
    address and run until interrupted.
    """
    options = Options()
    options.parseOptions(argv)
    from twisted.internet import reactor

    top = LabService(options, reactor)
    top.privilegedStartService()
    top.startService()
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    sys.stdout.write(
        f"bitp2p lab: {top.url} (nodes' data in {top.lab.directory}; Ctrl-C to stop)\n"
    )
    sys.stdout.flush()
    json = options["log-format"] == "json"
    beginLogging(JSONLogObserver(sys.stderr) if json else stderrLines, options.logLevel)
    reactor.run()
    return 0
