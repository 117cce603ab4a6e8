"""
C{twistd bitp2p}: command-line options and the service they build.

The plugin file (C{twisted/plugins/bitp2p_plugin.py}) only points here; the
same L{Options} serve C{python -m bitp2p}.

Errors a user can make on the command line (a bad value, a busy port) end the
program with one line on standard error and exit status 1, no traceback.

Under twistd it also makes the process's log observer (L{logObserver}): the
destination twistd would have used (C{-l FILE}, standard output, syslog), in
C{--log-format}, only events of C{--log-level} and above, and a log file
that is rotated at C{--log-rotate-bytes} with only C{--log-max-files}
rotated files kept (twistd alone keeps every one: a node under a flood of
connections could fill its disk).

Under C{twist}, which makes its log observer itself once the service is
built, it makes that observer bitp2p's in the same way (L{_logUnderTwist}).

This module owns the command line and the assembly of the services (the
node, the control API with C{/metrics} and the dashboard, the console). It
must not know what any of them does inside: it only builds and wires them.
(Moved from C{bitp2p.tap}, which still re-exports it.)
"""

from __future__ import annotations

import math
import os
import sys

import attrs

from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LegacyLogObserverWrapper,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python import logfile, usage
from twisted.python.components import Componentized

from bitp2p.address import Address, AddressError, split_host_port
from bitp2p.endpoints import check_listen, parse_target
from bitp2p.logs import JSONLogObserver, QuietTwisted
from bitp2p.bitcoin.networks import NETWORKS as BITCOIN_NETWORKS
from bitp2p.constants import (
    BITCOIN_PING_INTERVAL_S,
    BITCOIN_PING_TIMEOUT_S,
    NETWORK,
    DEFAULT_INTERFACE,
    DEFAULT_PORT,
    LOG_MAX_FILES,
    LOG_ROTATE_BYTES,
    MAX_CONNECTIONS,
    MAX_OUTBOUND,
    PING_INTERVAL_S,
    PING_TIMEOUT_S,
)
from bitp2p.node import Node, NodeConfig
from bitp2p.ops.datadir import defaultDatadir, listenPort
from bitp2p.ops.uvloopreactor import describeReactor
from bitp2p.storage import DataDirInUse

# The log namespace stays the one of the module's old path, bitp2p.tap
# (operators filter on it).
log = Logger(namespace="bitp2p.tap")


__all__ = [
    "NodeService",
    "Options",
    "UsageFailure",
    "addControl",
    "beginLogging",
    "checkLogOptions",
    "exitWith",
    "logObserver",
    "makeNode",
    "makeService",
    "printAndExit",
    "stderrLines",
    "wholeNumber",
]

LOG_LEVELS = ("debug", "info", "warn", "error")


class UsageFailure(SystemExit):
    """
    A command-line mistake: exits with status 1 and this one-line message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"bitp2p: {message}")


def exitWith(message: str, logged: bool = True) -> SystemExit:
    """
    End the program with one line on the real standard error (once twistd
    runs, C{sys.stderr} is redirected into the log) and, if C{logged}, in
    the log too: not when the log is the terminal already, where it would
    be the same line twice.
    """
    line = f"bitp2p: {message}"
    if logged:
        log.error("{line}", line=line)
    stream = sys.__stderr__
    if stream is not None:
        stream.write(line + "\n")
        stream.flush()
    return SystemExit(1)


def printAndExit(text: str) -> SystemExit:
    """
    Write C{text} and a newline to standard output for C{--help} or
    C{--version}, and return the L{SystemExit} (status 0) to raise. A
    reader that went away (C{bitp2p --help | head -3}) is not an error:
    nothing is said, now or when Python flushes standard output at exit.
    """
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # no file descriptor (a test's stream)
            pass
    return SystemExit(0)


def wholeNumber(option: str, text: str, low: int, high: int | None = None) -> int:
    """
    The value of a whole-number option, in C{low..high} (or C{>= low}).

    @raise usage.UsageError: one line naming the option and the bounds.
    """
    bounds = f"in {low}..{high}" if high is not None else f">= {low}"
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise usage.UsageError(f"--{option} must be a whole number {bounds}, not {text!r}")
    return value


def _positiveNumber(option: str, text: str, what: str = "a number") -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < math.inf:
        raise usage.UsageError(f"--{option} must be {what} > 0, not {text!r}")
    return value


def _seconds(option: str, text: str) -> float:
    return _positiveNumber(option, text, "a number of seconds")


def _portLast(parser: usage.Options, options: list[str]) -> list[str]:
    """
    C{options} with the PORT argument moved to the end, wherever it was
    given ("python -m bitp2p 5000 --seed ..." and "--network regtest 18444
    --seed ..." alike): getopt stops at the first argument that is not an
    option.
    """
    valued = {f"--{name}" for name, *_ in parser.optParameters}
    valued |= {f"-{short}" for _, short, *_ in parser.optParameters if short}
    valued |= {
        f"--{name[len('opt_'):].replace('_', '-')}"
        for name in dir(parser)
        if name.startswith("opt_") and getattr(parser, name).__code__.co_argcount == 2
    }
    previous = None
    for index, token in enumerate(options):
        if token == "--":
            break
        if not token.startswith("-") and previous not in valued:
            return options[:index] + options[index + 1 :] + [token]
        previous = token
    return options


def _optionalSeconds(option: str, text: str | None) -> float | None:
    return None if text is None else _seconds(option, text)



def checkLogOptions(options: usage.Options) -> LogLevel:
    """
    Check C{--log-format} and C{--log-level} of C{options} (a node's, the
    lab's) and return the level.

    @raise usage.UsageError: for a format or level that is not one.
    """
    if options["log-format"] not in ("text", "json"):
        raise usage.UsageError(f"--log-format must be text or json, not {options['log-format']!r}")
    if options["log-level"] not in LOG_LEVELS:
        raise usage.UsageError(
            f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {options['log-level']!r}"
        )
    return LogLevel.levelWithName(options["log-level"])


def stderrLines(event: dict) -> None:
    """
    A log observer writing the console's one-line form of each event on
    standard error (C{python -m bitp2p} on a pipe, C{bitp2p lab}).
    """
    from bitp2p.ops.console import formatLogLine

    text = formatLogLine(event)
    if text is not None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def beginLogging(observer: ILogObserver, level: LogLevel) -> None:
    """
    Begin the program's logging (not under twistd or twist, which begin
    their own) to C{observer}: events of C{level} and above, Twisted's
    chatter demoted (L{QuietTwisted}).
    """
    globalLogBeginner.beginLoggingTo(
        [
            QuietTwisted(
                FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=level)])
            )
        ],
        redirectStandardIO=False,
    )

class Options(usage.Options):
    """
    Options of C{twistd bitp2p} and C{python -m bitp2p}.
    """

    synopsis = "[options] [PORT]"
    longdesc = (
        "Run a bitp2p node: listen for peers, dial seeds and discovered "
        "addresses, keep connections alive. PORT may also be given as the "
        "only argument."
    )

    optFlags = [
        ["console", "c", "Interactive prompt on the terminal (when stdin is a terminal)."],
        ["no-seeds", None, "Use no bootstrap seeds, not even the built-in ones."],
        [
            "no-datadir",
            None,
            "Run without a data directory: keep nothing (a new node id at each start).",
        ],
        [
            "tls",
            None,
            "Speak TLS to peers: the node id becomes the hash of a key kept in --datadir"
            " (node.key, mode 0600); peers are pinned on first use.",
        ],
    ]
    optParameters = [
        [
            "network",
            None,
            NETWORK,
            f"{NETWORK} (bitp2p's own JSON lines), or a Bitcoin network to speak Bitcoin's"
            f" P2P protocol on: {', '.join(BITCOIN_NETWORKS)}.",
        ],
        [
            "port",
            "p",
            None,
            f"TCP port to listen on (0: any free port) [default: {DEFAULT_PORT}, or the"
            " Bitcoin network's: 8333 mainnet, 48333 testnet4, 18333 testnet3, 38333 signet,"
            " 18444 regtest].",
        ],
        ["interface", "i", DEFAULT_INTERFACE, "Address to listen on (:: for IPv6)."],
        [
            "datadir",
            "d",
            None,
            "Directory for the node id, address tables, bans and anchors [default: a"
            " per-user one, ~/.local/share/bitp2p/NETWORK-PORT on Linux ($XDG_DATA_HOME);"
            " none on port 0].",
        ],
        ["max-outbound", None, str(MAX_OUTBOUND), "Outbound connections to keep."],
        ["max-connections", None, str(MAX_CONNECTIONS), "Most connections in all."],
        [
            "ping-interval",
            None,
            None,
            f"Seconds between pings [default: {PING_INTERVAL_S}; {BITCOIN_PING_INTERVAL_S}"
            " on a Bitcoin network, as Bitcoin Core].",
        ],
        [
            "ping-timeout",
            None,
            None,
            "Seconds a ping may wait for its pong before the peer is disconnected"
            f" [default: {PING_TIMEOUT_S}; {BITCOIN_PING_TIMEOUT_S} on a Bitcoin network].",
        ],
        [
            "rpc-port",
            None,
            None,
            "Serve the control API (bitp2p-cli) and /metrics on this port of"
            " 127.0.0.1, or on an endpoint (tcp:5332:interface=0.0.0.0). Off by default.",
        ],
        [
            "web-port",
            None,
            None,
            "Serve the web dashboard (at /, with the control API at /rpc) on this port of"
            " 127.0.0.1, or on an endpoint. Off by default.",
        ],
        ["rpc-user", None, "bitp2p", "User name for --rpc-password."],
        [
            "rpc-password",
            None,
            None,
            "Password of the control API; without it, a cookie in --datadir (.cookie).",
        ],
        ["log-format", None, "text", "Log lines as text, or json (one object per line)."],
        [
            "log-level",
            None,
            "info",
            "Lowest level logged: debug (every connection), info, warn or error.",
        ],
        [
            "log-rotate-bytes",
            None,
            str(LOG_ROTATE_BYTES),
            "With twistd -l FILE: start a new log file once FILE holds this many bytes.",
        ],
        [
            "log-max-files",
            None,
            str(LOG_MAX_FILES),
            "With twistd -l FILE: rotated files kept (FILE.1 newest ... FILE.N); older"
            " ones are deleted.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        for key in ("seeds", "addnodes", "connect", "seednodes", "listen"):
            self[key] = []

    def opt_help(self) -> None:
        """
        Display this help and exit.
        """
        raise printAndExit(str(self).rstrip("\n"))

    def opt_listen(self, value: str) -> None:
        """
        Listen on a Twisted endpoint: tcp:5000, tcp6:5000, unix:/path.sock,
        onion:5000 (with txtorcon), ...; repeat for several. Replaces --port
        and --interface.
        """
        try:
            check_listen(value)
        except ValueError as e:
            raise usage.UsageError(f"--listen: {e}") from None
        self["listen"].append(value)

    def _target(self, option: str, key: str, value: str) -> None:
        try:
            parse_target(value)
        except ValueError as e:
            raise usage.UsageError(f"--{option}: {e}") from None
        self[key].append(value)

    def _addHostPort(self, option: str, key: str, value: str) -> None:
        try:
            split_host_port(value)
        except AddressError as e:
            raise usage.UsageError(f"--{option}: {e}") from None
        self[key].append(value)

    def opt_seed(self, value: str) -> None:
        """
        Bootstrap address HOST:PORT, used when the address manager is empty;
        repeat for several. A host name stands for all its addresses.
        Default: 127.0.0.1 ports 5000-5003 but our own.
        """
        self._addHostPort("seed", "seeds", value)

    def opt_addnode(self, value: str) -> None:
        """
        Peer HOST:PORT (or a client endpoint: unix:/path.sock, tor:HOST:PORT,
        ...) to keep connected (redialed with backoff; not counted against
        --max-outbound); repeat for several.
        """
        self._target("addnode", "addnodes", value)

    def opt_connect(self, value: str) -> None:
        """
        Connect only to HOST:PORT or a client endpoint (repeat for several):
        no automatic outbound connections, no seeds, no feelers.
        """
        self._target("connect", "connect", value)

    def opt_seednode(self, value: str) -> None:
        """
        Node HOST:PORT to fetch addresses from once at start, then
        disconnect; repeat for several.
        """
        self._addHostPort("seednode", "seednodes", value)

    def parseArgs(self, port: str | None = None) -> None:
        if port is not None:
            self["port"] = port

    def postOptions(self) -> None:
        if self["seeds"] and self["no-seeds"]:
            raise usage.UsageError("--seed and --no-seeds exclude each other")
        if self["seeds"] and self["connect"]:
            raise usage.UsageError("--connect dials only the peers given: --seed cannot be used with it")
        if self["listen"] and self["port"] is not None:
            raise usage.UsageError("--listen says where to listen: give it or --port, not both")
        port = self["port"]
        self.logLevel = checkLogOptions(self)
        if self["log-level"] == "info" and _twist(self) is not None:
            self.logLevel = _twist(self)["logLevel"]  # twist --log-level
        self.logRotateBytes = wholeNumber("log-rotate-bytes", self["log-rotate-bytes"], 1)
        self.logMaxFiles = wholeNumber("log-max-files", self["log-max-files"], 1)
        for option in ("rpc-port", "web-port"):
            value = self[option]
            if value is not None and value.isascii() and value.isdigit():
                value = f"tcp:{wholeNumber(option, value, 0, 65535)}:interface=127.0.0.1"
            elif value is not None:
                try:
                    check_listen(value)
                except ValueError as e:
                    raise usage.UsageError(f"--{option}: {e}") from None
            self[option.replace("port", "endpoint")] = value
        if self["datadir"] == "":
            raise usage.UsageError(
                "--datadir '' names no directory: give one, or --no-datadir to run without"
            )
        if self["datadir"] is not None and self["no-datadir"]:
            raise usage.UsageError("--datadir and --no-datadir exclude each other")
        try:
            self.config = NodeConfig(
                network=self["network"],
                port=None if port is None else wholeNumber("port", str(port), 0, 65535),
                interface=self["interface"],
                listen_endpoints=self["listen"],
                tls=bool(self["tls"]),
                seeds=() if self["no-seeds"] else (self["seeds"] or None),
                addnodes=self["addnodes"],
                connect=self["connect"],
                seednodes=self["seednodes"],
                datadir=self["datadir"],
                max_outbound=wholeNumber("max-outbound", self["max-outbound"], 0),
                max_connections=wholeNumber("max-connections", self["max-connections"], 1),
                ping_interval_s=_optionalSeconds("ping-interval", self["ping-interval"]),
                ping_timeout_s=_optionalSeconds("ping-timeout", self["ping-timeout"]),
            )
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        self._chooseDatadir()
        for option in ("rpc-port", "web-port"):
            if self[option] is None or self["rpc-password"] is not None:
                continue
            if self["datadir"] is None:
                raise usage.UsageError(
                    f"--{option} needs a data directory for its cookie (none here:"
                    f" {self.datadirNote}) or --rpc-password"
                )
        try:
            Address.of(self["interface"], 0)
        except AddressError:
            raise usage.UsageError(
                f"--interface must be an IP address, not {self['interface']!r}"
            ) from None

    def _chooseDatadir(self) -> None:
        """
        The data directory: C{--datadir}, else none with C{--no-datadir},
        else the per-user default for the network and port
        (L{bitp2p.ops.datadir}): none on port 0, which changes at each run.
        Sets C{self["datadir"]}, C{config.datadir} and C{datadirNote}, why
        there is none (or L{None}).
        """
        self.datadirNote = None
        self.datadirIsDefault = False
        if self["datadir"] is not None:
            return
        if self["no-datadir"]:
            self.datadirNote = "--no-datadir"
            return
        config = self.config
        if config.listen_endpoints:
            port = listenPort(config.listen_endpoints[0])
        else:
            port = config.port
        self["datadir"] = defaultDatadir(config.network, port)
        self.datadirIsDefault = self["datadir"] is not None
        if self["datadir"] is None:
            self.datadirNote = (
                "no default one on port 0" if port == 0 else "no default one without a TCP port"
            )
            return
        self.config = attrs.evolve(config, datadir=self["datadir"])

    def parseOptions(self, options=None) -> None:
        """
        Parse, turning any usage error into a one-line exit.
        """
        if options is None:
            options = sys.argv[1:]
        options = _portLast(self, list(options))
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            raise UsageFailure(f"{e} (see --help)") from None


# usage.Options prints an opt_ method's docstring as it is, indentation and
# all: make each one line, so --help wraps it cleanly.
for _name in dir(Options):
    if _name.startswith("opt_") and getattr(Options, _name).__doc__:
        _method = getattr(Options, _name)
        _method.__doc__ = " ".join(_method.__doc__.split())
del _name, _method


class NodeService(service.MultiService):
    """
    The node, and its console when asked for, as one service. A port that
    cannot be listened on ends the program with one line. Given the reactor
    it runs on, it logs which one that is (and its event loop, on asyncio)
    once started.
    """

    #: whether the log goes to standard output or error already (twistd
    #: -n without -l): a fatal error is then written once, not twice.
    logsToStandardStreams = False

    def __init__(
        self, node: Node, logObserver: ILogObserver | None = None, reactor=None
    ) -> None:
        super().__init__()
        self.node = node
        self.logObserver = logObserver
        self.reactor = reactor
        node.setServiceParent(self)

    def setServiceParent(self, parent) -> None:
        """
        Join C{parent}; with a log observer of our own (L{logObserver}),
        make it the application's C{ILogObserver}, which twistd uses for
        the whole process.
        """
        super().setServiceParent(parent)
        if self.logObserver is not None and isinstance(parent, Componentized):
            if parent.getComponent(ILogObserver, None) is None:
                parent.setComponent(ILogObserver, self.logObserver)

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise exitWith(_listenError(e), not self.logsToStandardStreams) from None
        except ValueError as e:  # an endpoint string Twisted cannot parse
            raise exitWith(str(e), not self.logsToStandardStreams) from None

    def startService(self) -> None:
        try:
            super().startService()
        except CannotListenError as e:
            raise exitWith(_listenError(e), not self.logsToStandardStreams) from None
        except ValueError as e:
            raise exitWith(str(e), not self.logsToStandardStreams) from None
        if self.reactor is not None:
            log.info("Running on {reactor}", reactor=describeReactor(self.reactor))


def _listenError(error: CannotListenError) -> str:
    reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
    if isinstance(error.port, (str, bytes)):  # a UNIX socket's path
        where = error.port.decode() if isinstance(error.port, bytes) else error.port
    else:
        where = f"{error.interface or '0.0.0.0'}:{error.port}"
    return f"cannot listen on {where}: {reason.lower()}"


def makeNode(config: Options, reactor=None) -> Node:
    """
    The node the parsed options describe, with one log line naming its
    data directory (or why it has none). A data directory that cannot be
    used, or that another node holds, ends the program with one line.

    Below C{--log-level debug}, the events its L{RepeatedEvents
    <bitp2p.logs.RepeatedEvents>} counts are not made at all (the log
    would drop them).
    """
    try:
        node = Node(config.config, reactor=reactor)
    except DataDirInUse as e:
        raise UsageFailure(str(e)) from None
    except OSError as e:
        default = getattr(config, "datadirIsDefault", False)
        which = "the default data directory" if default else "--datadir"
        raise UsageFailure(f"{which} {config['datadir']}: {e.strerror or e}") from None
    node.repeated.logCounted = config.logLevel <= LogLevel.debug
    datadir = node.config.datadir
    if datadir:
        log.info("Data directory {datadir}", datadir=datadir)
    else:
        note = getattr(config, "datadirNote", None)
        log.info(
            "No data directory ({why}): the node keeps nothing",
            why=note or "none given",
        )
    return node


def addControl(top: NodeService, config: Options, reactor=None) -> None:
    """
    With C{--rpc-port} or C{--web-port}: the control API, with C{/metrics}
    and the dashboard (C{/dashboard/}), as a child of C{top}, listening on
    both when both are given.
    """
    endpoints = [e for e in (config["rpc-endpoint"], config["web-endpoint"]) if e is not None]
    if not endpoints:
        return
    from bitp2p.ops.control import ControlService
    from bitp2p.ops.metrics import MetricsResource, registryFor
    from bitp2p.ops.web import dashboardResource

    try:
        control = ControlService(
            top.node,
            endpoints[0],
            password=config["rpc-password"],
            user=config["rpc-user"],
            reactor=reactor,
        )
        for endpoint in endpoints[1:]:
            control.addEndpoint(endpoint)
    except ValueError as e:
        raise UsageFailure(f"--rpc-port: {e}") from None
    control.root.putChild(b"metrics", MetricsResource(registryFor(top.node)))
    control.root.putHome(b"dashboard", dashboardResource(top.node))
    control.setServiceParent(top)


def _twist(config: Options) -> usage.Options | None:
    """
    The options of C{twist} when it runs the plugin (C{config.parent}),
    else L{None}. twist makes its log observer itself, once the service is
    built, from their C{fileLogObserverFactory} and C{logLevel}.
    """
    runner = getattr(config, "parent", None)
    if runner is not None and "fileLogObserverFactory" in runner and "logLevel" in runner:
        return runner
    return None


def _logUnderTwist(config: Options) -> None:
    """
    Make C{twist}'s log bitp2p's: its observer writes bitp2p's JSON lines
    (L{JSONLogObserver}: addresses as text, not Twisted's
    C{{"unpersistable": true}}) when C{--log-format json} is given to the
    plugin or to twist (twist's own choice stands otherwise: text on a
    terminal, JSON elsewhere), keeps events of C{--log-level} and above
    (the plugin's; twist's C{--log-level} when the plugin's is left at
    info), and demotes Twisted's chatter (L{QuietTwisted}), as under
    twistd.
    """
    runner = _twist(config)
    if runner is None:
        return
    json = config["log-format"] == "json" or runner.get("logFormat") == "json"
    level = config.logLevel

    def observerFor(logFile) -> ILogObserver:
        observer = JSONLogObserver(logFile) if json else textFileLogObserver(logFile)
        return QuietTwisted(
            FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=level)])
        )

    runner["fileLogObserverFactory"] = observerFor
    runner["logLevel"] = level


def _logsToStandardStreams(config: Options) -> bool:
    """
    Whether twistd's log, as L{logObserver} makes it, is standard output
    (C{-n} without C{-l}, or C{-l -}).
    """
    twistd = getattr(config, "parent", None)
    if twistd is None or _twist(config) is not None:
        return False
    if twistd.get("logger") or twistd.get("syslog"):
        return False
    path = twistd.get("logfile") or ""
    return path == "-" or (twistd.get("nodaemon", True) and not path)


def logObserver(config: Options) -> ILogObserver | None:
    """
    The log observer of a node run by twistd, or L{None} to leave it to
    twistd (C{--logger} given, or a daemon told to log to C{-}, which
    twistd refuses).

    It writes where twistd would have written (twistd's options are
    C{config.parent}): to syslog with C{--syslog}, to standard output with
    C{-l -} or C{-n} without C{-l}, else to the file C{-l} names
    (C{twistd.log} by default), rotated at C{--log-rotate-bytes}, keeping
    the C{--log-max-files} most recent rotated files (and, as twistd does,
    rotated on C{SIGUSR1}). It keeps only events of C{--log-level} and
    above, as text or as JSON (C{--log-format}); what Twisted says of its
    own machinery counts as debug (L{QuietTwisted}).

    Without twistd's options (the service built by other code), only
    C{--log-format json} makes an observer, on standard output.
    """
    twistd = getattr(config, "parent", None)
    json = config["log-format"] == "json"
    if _twist(config) is not None:
        return None  # twist's own, made bitp2p's by _logUnderTwist
    if twistd is None:
        if not json:
            return None
        observer: ILogObserver = JSONLogObserver(sys.stdout)
    elif twistd.get("logger"):
        return None
    elif twistd.get("syslog"):
        from twisted.python import syslog

        observer = LegacyLogObserverWrapper(syslog.SyslogObserver(twistd.get("prefix", "")).emit)
    else:
        path = twistd.get("logfile") or ""
        nodaemon = twistd.get("nodaemon", True)
        if path == "-" and not nodaemon:
            return None  # twistd ends with "Daemons cannot log to stdout"
        if path == "-" or (nodaemon and not path):
            stream = sys.stdout
        else:
            stream = logfile.LogFile.fromFullPath(
                path or "twistd.log",
                rotateLength=config.logRotateBytes,
                maxRotatedFiles=config.logMaxFiles,
            )
            _rotateOnSIGUSR1(stream)
        observer = JSONLogObserver(stream) if json else textFileLogObserver(stream)
    return QuietTwisted(
        FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=config.logLevel)])
    )


def _rotateOnSIGUSR1(file: logfile.LogFile) -> None:
    """
    Rotate C{file} on C{SIGUSR1}, unless something else handles it (what
    twistd does for the log file it opens itself).
    """
    try:
        import signal
    except ImportError:
        return
    if not hasattr(signal, "SIGUSR1") or signal.getsignal(signal.SIGUSR1):
        return

    def rotate(number, frame) -> None:
        from twisted.internet import reactor

        reactor.callFromThread(file.rotate)

    signal.signal(signal.SIGUSR1, rotate)


def makeService(config: Options, stdio=None) -> service.MultiService:
    """
    Build the node service from parsed options.
    """
    from twisted.internet import reactor

    node = makeNode(config, reactor)
    top = NodeService(node, logObserver(config), reactor)
    top.logsToStandardStreams = _logsToStandardStreams(config)
    _logUnderTwist(config)
    addControl(top, config)
    if config["console"]:
        stdin = stdio if stdio is not None else sys.stdin
        if stdin.isatty():
            from bitp2p.ops.console import ConsoleService

            ConsoleService(node, redirectStdout=True).setServiceParent(top)
    return top
