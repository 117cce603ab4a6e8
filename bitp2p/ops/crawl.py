"""
C{bitp2p crawl}: crawl a Bitcoin network from the command line.

C{bitp2p crawl --network mainnet [--seed HOST:PORT ...] [--concurrency N]
[--timeout S] [--max-nodes N] [--rate N] [--out FILE.json|FILE.csv]}

While it runs, a progress line goes to standard error (rewritten in place
on a terminal, a plain line every few seconds otherwise). At the end, or
at Ctrl-C (which stops the crawl cleanly), the snapshot is written to
C{--out} (JSON or CSV by its extension) and a summary printed on standard
output. A mistake on the command line is one line on standard error and
exit status 2.

It owns the command line of C{bitp2p crawl} and its output; the crawl
itself is L{bitp2p.bitcoin.crawl}.
"""

from __future__ import annotations

import sys
from typing import TextIO

from twisted.internet import defer, task
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)
from twisted.python import usage

from bitp2p.address import AddressError, split_host_port
from bitp2p.bitcoin.crawl import Crawler, Progress, Snapshot, outputFormat
from bitp2p.bitcoin.networks import NETWORKS
from bitp2p.ops.tap import _positiveNumber, _seconds, wholeNumber
from bitp2p.constants import (
    CRAWL_ADDR_QUIET_S,
    CRAWL_ADDR_WAIT_S,
    CRAWL_CONCURRENCY,
    CRAWL_PROGRESS_LOG_S,
    CRAWL_PROGRESS_TTY_S,
    CRAWL_RATE_PER_S,
    CRAWL_TIMEOUT_S,
)

TOP = 10  # lines per table of the summary


class Options(usage.Options):
    """
    Options of C{bitp2p crawl}.
    """

    synopsis = "Usage: bitp2p crawl --network NETWORK [options]"
    longdesc = (
        "Crawl a Bitcoin network: from its DNS seeds (or --seed), connect to every "
        "node learned, record its version, services, user agent, latency and the "
        "addresses it knows, and write a snapshot."
    )
    optParameters = [
        ["network", "n", "mainnet", f"The network: {', '.join(NETWORKS)}."],
        ["concurrency", None, str(CRAWL_CONCURRENCY), "Most connections open at once."],
        ["timeout", None, str(CRAWL_TIMEOUT_S), "Seconds to connect, and to handshake."],
        [
            "addr-wait",
            None,
            str(CRAWL_ADDR_WAIT_S),
            "Seconds to wait for the answer to getaddr.",
        ],
        [
            "addr-quiet",
            None,
            str(CRAWL_ADDR_QUIET_S),
            "Seconds after getaddr to leave a peer that sent no addr at all.",
        ],
        ["max-nodes", None, None, "Dial at most this many addresses."],
        ["rate", None, str(CRAWL_RATE_PER_S), "Most new connections a second."],
        ["out", "o", None, "Write the snapshot to this file (.json or .csv)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["seeds"] = []

    def opt_seed(self, text: str) -> None:
        """
        Start from HOST:PORT instead of the DNS seeds (repeatable).
        """
        try:
            split_host_port(text)
        except AddressError as e:
            raise usage.UsageError(f"--seed: {e}") from None
        self["seeds"].append(text)

    def postOptions(self) -> None:
        if self["network"] not in NETWORKS:
            raise usage.UsageError(
                f"--network must be one of {', '.join(NETWORKS)}, not {self['network']!r}"
            )
        self["concurrency"] = wholeNumber("concurrency", self["concurrency"], 1)
        self["timeout"] = _seconds("timeout", self["timeout"])
        self["addr-wait"] = _seconds("addr-wait", self["addr-wait"])
        self["addr-quiet"] = _seconds("addr-quiet", self["addr-quiet"])
        self["rate"] = _positiveNumber("rate", self["rate"])
        if self["max-nodes"] is not None:
            self["max-nodes"] = wholeNumber("max-nodes", self["max-nodes"], 1)
        if self["out"] is not None:
            try:
                outputFormat(self["out"])
            except ValueError as e:
                raise usage.UsageError(f"--out: {e}") from None


def progressLine(p: Progress) -> str:
    return (
        f"tried {p.tried}  reachable {p.reachable}  queued {p.queued}  "
        f"in flight {p.in_flight}  known {p.known}  {p.rate:.1f}/s"
    )


def summaryText(snapshot: Snapshot, top: int = TOP) -> str:
    """
    The summary printed at the end.
    """
    s = snapshot.summary()
    lines = [
        f"{'Stopped' if s['stopped'] else 'Crawled'} {s['network']} in {s['duration_s']:.1f} s: "
        f"{s['reachable']} reachable of {s['tried']} tried, {s['known']} known "
        f"({s['handshakes_per_s']} handshakes/s)"
    ]
    for title, key in (
        ("Protocol versions", "by_version"),
        ("User agents", "by_user_agent"),
        ("Services", "by_services"),
        ("Networks (reachable)", "by_network"),
        ("Networks (known)", "known_by_network"),
        ("Errors", "errors"),
    ):
        table = s[key]
        if not table:
            continue
        lines.append(f"{title}:")
        for name, count in list(table.items())[:top]:
            lines.append(f"  {count:>7}  {name if name != '' else '(empty)'}")
        if len(table) > top:
            lines.append(f"  ({len(table) - top} more)")
    return "\n".join(lines)


class CrawlRun:
    """
    One run of C{bitp2p crawl}: the crawler, its progress display, and
    the output at the end (also at L{interrupt}, the Ctrl-C path).

    @ivar done: fires (with the snapshot) once the output is written.
    """

    def __init__(self, options: Options, reactor, stdout: TextIO, stderr: TextIO) -> None:
        self.options = options
        self._reactor = reactor
        self._stdout = stdout
        self._stderr = stderr
        self.tty = bool(getattr(stderr, "isatty", lambda: False)())
        self.crawler = Crawler(
            reactor,
            options["network"],
            options["seeds"] or None,
            concurrency=options["concurrency"],
            timeout_s=options["timeout"],
            addr_wait_s=options["addr-wait"],
            quiet_s=options["addr-quiet"],
            max_nodes=options["max-nodes"],
            rate_per_s=options["rate"],
        )
        self._ticker = task.LoopingCall(self._showProgress)
        self._ticker.clock = reactor
        self.done: defer.Deferred[Snapshot] = defer.Deferred()

    def start(self) -> defer.Deferred[Snapshot]:
        self.crawler.start().addCallback(self._finished)
        self._ticker.start(CRAWL_PROGRESS_TTY_S if self.tty else CRAWL_PROGRESS_LOG_S, now=False)
        return self.done

    def interrupt(self) -> defer.Deferred[Snapshot]:
        """
        Stop the crawl cleanly; the output is still written.
        """
        self.crawler.stop()
        return self.done

    def _showProgress(self) -> None:
        line = progressLine(self.crawler.progress())
        if self.tty:
            self._stderr.write("\r\x1b[K" + line)
        else:
            self._stderr.write(line + "\n")
        self._stderr.flush()

    def _finished(self, snapshot: Snapshot) -> Snapshot:
        if self._ticker.running:
            self._ticker.stop()
        if self.tty:
            self._stderr.write("\r\x1b[K")
            self._stderr.flush()
        out = self.options["out"]
        if out is not None:
            try:
                snapshot.write(out)
            except OSError as e:
                self._stderr.write(f"bitp2p crawl: cannot write {out}: {e.strerror}\n")
        self._stdout.write(summaryText(snapshot) + "\n")
        self._stdout.flush()
        self.done.callback(snapshot)
        return snapshot


def main(argv: list[str], reactor=None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """
    Run C{bitp2p crawl} with the arguments after C{crawl}.

    @return: the exit status (2 for a mistake on the command line).
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        stderr.write(f"bitp2p crawl: {e}\n")
        return 2
    if reactor is None:
        from twisted.internet import reactor
    run = CrawlRun(options, reactor, stdout, stderr)

    def warning(event: dict) -> None:
        # (Over the progress line on a terminal.)
        stderr.write(("\r\x1b[K" if run.tty else "") + f"bitp2p crawl: {formatEvent(event)}\n")

    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(warning, [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)])],
        redirectStandardIO=False,
    )

    def ended(_):
        if reactor.running and not stopping:
            reactor.stop()

    stopping = []

    def beforeShutdown():
        # Ctrl-C (the reactor's SIGINT handler stops it): stop the crawl
        # and let the shutdown wait for the output.
        stopping.append(True)
        if not run.done.called:
            return run.interrupt()
        return None

    reactor.addSystemEventTrigger("before", "shutdown", beforeShutdown)
    reactor.callWhenRunning(lambda: run.start().addCallback(ended))
    reactor.run()
    return 0
