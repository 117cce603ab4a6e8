"""
C{python -m bitp2p PORT [options]}: a node with an interactive console
(and C{bitp2p crawl ...}: the crawler's command, L{bitp2p.ops.crawl};
C{bitp2p lab ...}: the lab, L{bitp2p.ops.lab.tap}).

The options are those of C{twistd bitp2p} (L{bitp2p.ops.tap.Options}), plus
C{--reactor default|asyncio|uvloop}, installed before anything imports the
reactor (L{bitp2p.ops.uvloopreactor}; twistd has its own C{--reactor}). On a
terminal the console has a prompt and log lines appear above it; on a pipe it
reads one command per line (each run once the one before has answered),
answers on stdout, logs to stderr, and stops at the end of its input.
Either way it logs events of C{--log-level} and above (info by default)
and writes no file.

It owns the command line of C{python -m bitp2p} and nothing else: the
options are the twistd plugin's (L{bitp2p.ops.tap}), the prompt is
L{bitp2p.ops.console}.
"""

from __future__ import annotations

import sys

from twisted.python import usage

from bitp2p._version import __version__
from bitp2p.logs import JSONLogObserver
from bitp2p.ops.tap import (
    NodeService,
    Options,
    UsageFailure,
    addControl,
    beginLogging,
    makeNode,
    printAndExit,
    stderrLines,
)
from bitp2p.ops.uvloopreactor import REACTORS, installReactor


class MainOptions(Options):
    """
    C{twistd bitp2p}'s options and the reactor to run on.
    """

    synopsis = (
        "Usage: bitp2p [options] PORT\n"
        "       bitp2p crawl --network NETWORK [options]   (crawl a Bitcoin network;"
        " see bitp2p crawl --help)"
    )

    optParameters = Options.optParameters + [
        [
            "reactor",
            None,
            "default",
            "Reactor to run on: default (Twisted's: epoll on Linux), asyncio (Twisted's"
            " asyncio reactor), or uvloop (that on a uvloop event loop; pip install"
            " 'bitp2p[uvloop]').",
        ],
    ]

    def opt_version(self) -> None:
        """
        Print bitp2p's version and exit.
        """
        raise printAndExit(f"bitp2p {__version__}")

    def postOptions(self) -> None:
        if self["reactor"] not in REACTORS:
            raise usage.UsageError(
                f"--reactor must be one of {', '.join(REACTORS)}, not {self['reactor']!r}"
            )
        super().postOptions()


def _toAPipe(run, *args) -> int:
    """
    C{run(*args)}, where a reader of standard output that went away
    (C{bitp2p crawl --help | head}) ends it quietly, as C{head} expects.
    """
    try:
        try:
            return run(*args)
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        raise printAndExit("") from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["crawl"]:
        from bitp2p.ops.crawl import main as crawl

        return _toAPipe(crawl, argv[1:])
    if argv[:1] == ["lab"]:
        from bitp2p.ops.lab.tap import main as lab

        return lab(argv[1:])
    options = MainOptions()
    options.parseOptions(argv)
    try:
        installReactor(options["reactor"])
    except ImportError as e:
        raise UsageFailure(f"--reactor {options['reactor']}: {e}") from None

    # Only now: the console's module (twisted.conch's) imports the reactor.
    from twisted.internet import reactor

    from bitp2p.ops.console import ConsoleService

    node = makeNode(options, reactor)
    top = NodeService(node, reactor=reactor)
    addControl(top, options, reactor)
    console = ConsoleService(node)
    console.setServiceParent(top)

    # Start before logging begins: a busy port ends the program with its one
    # line, and the log events buffered until then are dropped with it.
    top.privilegedStartService()
    top.startService()
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)

    if options["log-format"] == "json":
        observer = JSONLogObserver(sys.stderr)
    else:
        observer = (
            console.logObserver(options.logLevel) if console.interactive else stderrLines
        )
    beginLogging(observer, options.logLevel)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
