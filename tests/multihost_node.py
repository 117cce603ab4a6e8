"""
A node for tests/test_multihost.py, run as its own process: C{twistd -n
bitp2p} with one timer more.

    python tests/multihost_node.py [--maintenance-interval S] -- TWISTD-BITP2P-OPTIONS...

The options after C{--} are those of C{twistd bitp2p} (L{bitp2p.ops.tap.Options},
parsed by it), and the service is the one it builds (L{bitp2p.ops.tap.makeService}:
the node and its control API), run under the reactor as C{twistd -n} would
(C{privilegedStartService}, then C{startService}, stopped at SIGTERM). Only
the configuration differs: the maintenance interval (5 s) is not a daemon
option, and a test that cuts a link wants the lost connections replaced in
well under a second.

Log lines (debug included, but not the control API's line per request) go
to standard output, a line at a time. The process also stops when its parent
(the test) is gone, so that a test killed abruptly leaves no node behind.
"""

from __future__ import annotations

import argparse
import os
import sys

import attrs
from twisted.application import app, service
from twisted.internet import reactor
from twisted.internet.task import LoopingCall
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from bitp2p.ops.tap import Options, makeService


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--maintenance-interval", type=float, default=None)
    if "--" in argv:
        split = argv.index("--")
        ours, rest = parser.parse_args(argv[:split]), argv[split + 1 :]
    else:
        ours, rest = parser.parse_args([]), argv
    options = Options()
    # Debug events are made only for a node told it logs them (the test
    # reads every disconnection line, summarised ones included).
    options.parseOptions(["--log-level", "debug", *rest])
    changes = {}
    if ours.maintenance_interval is not None:
        changes["maintenance_interval_s"] = ours.maintenance_interval
    options.config = attrs.evolve(options.config, **changes)

    # Everything, debug included, but the control API's line per request
    # (the test polls every node several times a second).
    levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.debug)
    levels.setLogLevelForNamespace("bitp2p.control", LogLevel.info)
    sys.stdout.reconfigure(line_buffering=True)
    observer = FilteringLogObserver(textFileLogObserver(sys.stdout), [levels])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    application = service.Application("bitp2p")
    makeService(options).setServiceParent(application)
    app.startApplication(application, False)

    parent = os.getppid()

    def orphaned() -> None:
        if os.getppid() != parent and reactor.running:
            reactor.stop()

    watch = LoopingCall(orphaned)
    watch.clock = reactor
    watch.start(1.0, now=False)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
