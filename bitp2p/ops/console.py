"""
The interactive console: a prompt for driving a running node by hand.

Three layers:

  - L{Commands} parses and runs one command line against a L{Node} and
    writes its answer through a callable. It knows nothing of terminals.
  - Two front-ends feed it lines: L{TerminalConsole} (a terminal in raw mode,
    with line editing and history, built on C{twisted.conch.recvline}) and
    L{PipeConsole} (plain lines from a pipe, for scripts and tests).
  - L{ConsoleService} picks the front-end by whether stdin is a terminal,
    wires it to stdin/stdout with C{StandardIO}, and makes sure log lines
    never garble the prompt: in a terminal, each log line erases the prompt
    line, is written, and the prompt and the half-typed input are redrawn.

This module owns the console's commands and its terminal handling. It
renders the node's views (L{bitp2p.views}) and acts through the node's
public methods; it must not know a Peer's or Node's private state, nor HTTP.
(Moved from C{bitp2p.console}, which still re-exports it.)
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections import deque
from typing import Callable

from twisted.application import service
from twisted.conch.insults.insults import ServerProtocol
from twisted.conch.recvline import HistoricRecvLine
from twisted.internet import stdio
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from zope.interface import implementer, provider

from bitp2p.constants import CONSOLE_HISTORY_LINES as HISTORY_LINES
from bitp2p.formatting import age, span
from bitp2p.formatting import duration as humanDuration
from bitp2p.node import Node
from bitp2p.storage import atomic_write
from bitp2p.views import addressViews, establishedViews, nodeView

__all__ = [
    "ConsoleService",
    "Commands",
    "HELP",
    "PipeConsole",
    "TerminalConsole",
    "formatLogLine",
    "prompt",
]

HELP = """\
commands:
  connect HOST PORT   dial a peer and shake hands (also HOST:PORT, unix:/path.sock, ...)
  disconnect ID       close the connection to a peer (a unique id prefix will do)
  peers               the connected peers
  known               the known addresses (the address manager's tables)
  ban TARGET [SECS]   ban an address or subnet (default 24 h); disconnects it
  unban TARGET        lift a ban
  bans                the current bans
  pins                with --tls: the node id pinned at each address dialed
  unpin HOST:PORT     forget a pin (after that node changed its key)
  status              this node's id, address, uptime and counts
  help                this list
  quit                stop the node and leave (also Ctrl-D, Ctrl-C)"""

ALIASES = {"?": "help", "exit": "quit"}

# The log namespace stays the one of the module's old path, bitp2p.console
# (operators filter on it).
log = Logger(namespace="bitp2p.console")

HISTORY_FILE = "console_history"

USAGE = {
    "connect": "usage: connect HOST PORT (or connect HOST:PORT, or connect ENDPOINT)",
    "unpin": "usage: unpin HOST:PORT",
    "disconnect": "usage: disconnect ID",
    "ban": "usage: ban ADDRESS|SUBNET [SECONDS]",
    "unban": "usage: unban ADDRESS|SUBNET",
}


def prompt(node: Node) -> str:
    return f"node-{node.node_id[:8]}> "


class Commands:
    """
    The console's commands, run against one node.

    @ivar node: the node commanded.
    """

    def __init__(
        self, node: Node, write: Callable[[str], object], quit: Callable[[], object]
    ) -> None:
        self.node = node
        self._write = write
        self._quit = quit

    def execute(self, line: str) -> Deferred | None:
        """
        Run one command line. Output goes to C{write}, one call per line.

        @return: a Deferred for a command that finishes later (C{connect},
            C{disconnect}), else L{None}.
        """
        words = line.split()
        if not words:
            return None
        name, args = words[0].lower(), words[1:]
        name = ALIASES.get(name, name)
        method = getattr(self, f"cmd_{name}", None)
        if method is None:
            self._write(f"unknown command {words[0]!r}; type help")
            return None
        try:
            inspect.signature(method).bind(*args)
        except TypeError:
            self._write(USAGE.get(name, f"usage: {name}"))
            return None
        return method(*args)

    def cmd_connect(self, host: str, port: str | None = None) -> Deferred | None:
        if port is None:
            # HOST:PORT, or an endpoint string such as unix:/path.sock
            self._write(f"connecting to {host} ...")
            d = self.node.connect(host)
        elif not (port.isascii() and port.isdigit()) or not 0 < int(port) <= 65535:
            self._write(f"bad port {port!r}: expected 1..65535")
            return None
        else:
            self._write(f"connecting to {host}:{port} ...")
            d = self.node.connect(host, int(port))

        def connected(peer) -> None:
            self._write(f"connected to {peer.node_id[:8]} at {peer.address or peer.remote}")

        def failed(failure: Failure) -> None:
            self._write(f"connect failed: {failure.getErrorMessage()}")

        return d.addCallbacks(connected, failed)

    def cmd_disconnect(self, node_id: str) -> Deferred | None:
        try:
            peer = self.node.findPeer(node_id)
        except LookupError as e:
            self._write(str(e.args[0]))
            return None
        d = self.node.disconnect(peer.node_id)
        return d.addCallback(lambda _: self._write(f"disconnected {peer.node_id[:8]}"))

    def cmd_peers(self) -> None:
        peers = establishedViews(self.node)
        if not peers:
            self._write("no peers")
            return
        now = self.node.reactor.seconds()
        if self.node.config.bitcoin is not None:
            self._bitcoinPeers(peers, now)
            return
        self._write(
            f"{'ID':8}  {'ADDRESS':21}  {'DIR':8}  {'AGENT':16}  {'SINCE':5}  "
            f"{'RTT':>8}  {'MSGS IN/OUT':>11}  {'BYTES IN/OUT':>13}"
        )
        for p in peers:
            rtt = "-" if p.rtt_s is None else f"{p.rtt_s * 1000:.1f}ms"
            address = str(p.address) if p.address else p.remote
            self._write(
                f"{p.node_id[:8]:8}  {address:21}  "
                f"{p.direction.value:8}  {p.user_agent[:16]:16}  "
                f"{age(now, p.established_at):5}  {rtt:>8}  "
                f"{p.messages_in:>5}/{p.messages_out:<5}  "
                f"{p.bytes_in:>6}/{p.bytes_out:<6}"
            )

    def _bitcoinPeers(self, peers, now: float) -> None:
        """
        The peers of a node on a Bitcoin network: what their C{version}
        said (protocol, services, start height, relay flag) and the network
        of their address.
        """
        self._write(
            f"{'ADDRESS':21}  {'NET':4}  {'DIR':3}  {'VERSION':7}  {'AGENT':24}  "
            f"{'SERVICES':24}  {'HEIGHT':>7}  {'RELAY':5}  {'SINCE':5}  {'RTT':>8}"
        )
        for p in peers:
            rtt = "-" if p.rtt_s is None else f"{p.rtt_s * 1000:.1f}ms"
            address = str(p.address) if p.address else p.remote
            services = " ".join(name.lower() for name in p.service_names) or "none"
            height = "-" if p.start_height is None else str(p.start_height)
            relay = "-" if p.relay is None else ("yes" if p.relay else "no")
            self._write(
                f"{address:21}  {p.network:4}  {p.direction.value[:3]:3}  {p.protocol:<7}  "
                f"{p.user_agent[:24]:24}  {services[:24]:24}  {height:>7}  {relay:5}  "
                f"{age(now, p.established_at):5}  {rtt:>8}"
            )

    def cmd_known(self) -> None:
        known = addressViews(self.node)
        if not known:
            self._write("no known addresses")
            return
        now = self.node.reactor.seconds()
        self._write(f"{'ADDRESS':21}  {'TABLE':5}  {'SEEN':5}  {'WORKED':6}  {'TRIED':5}  FAILS")
        for k in known:
            self._write(
                f"{str(k.address):21}  {k.table:5}  {age(now, k.last_seen):5}  "
                f"{age(now, k.last_success):6}  {age(now, k.last_tried):5}  "
                f"{k.failures:5}"
            )

    def cmd_ban(self, target: str, seconds: str = "86400") -> None:
        try:
            duration = float(seconds)
        except ValueError:
            self._write(f"cannot ban: {seconds!r} is not a number of seconds")
            return
        try:
            subnet = self.node.ban(target, duration)
        except ValueError as e:
            self._write(str(e))  # it names the ban already
            return
        self._write(f"banned {subnet} for {humanDuration(duration)}")

    def cmd_unban(self, target: str) -> None:
        try:
            lifted = self.node.unban(target)
        except ValueError as e:
            self._write(str(e))
            return
        self._write(f"unbanned {target}" if lifted else f"{target} was not banned")

    def cmd_bans(self) -> None:
        view = nodeView(self.node)
        if not view.bans:
            self._write("no bans")
            return
        for subnet, until in view.bans:
            self._write(f"{subnet:43}  {span(until - view.now)} left")

    def cmd_pins(self) -> None:
        if self.node.identity is None:
            self._write("no pins: this node runs without --tls")
            return
        pins = self.node.pins.items()
        if not pins:
            self._write("no pins")
        for address, node_id in pins:
            self._write(f"{address:43}  {node_id}")

    def cmd_unpin(self, address: str) -> None:
        if self.node.pins.unpin(address):
            self._write(f"unpinned {address}: the next node met there is trusted and pinned")
        else:
            self._write(f"{address} was not pinned")

    def cmd_status(self) -> None:
        v = nodeView(self.node)
        now = v.now
        self._write(f"node id    {v.node_id}")
        self._write(f"network    {self.node.config.network}")
        self._write(f"listening  {v.listening or '-'}")
        self._write(f"agent      {v.user_agent}")
        self._write(f"uptime     {age(now, now - v.uptime_s) if v.uptime_s else '-'}")
        self._write(
            f"peers      {v.outbound} outbound, {v.inbound} inbound, "
            f"{v.handshaking} handshaking, {v.dialing} dialing"
        )
        self._write(f"known      {v.known} addresses ({v.known_tried} tried)")
        self._write(f"tls        {'on (node id = hash of the key)' if v.tls else 'off'}")
        g = v.gossip
        self._write(
            f"gossip     {g['published']} published, {g['delivered']} delivered, "
            f"{g['duplicates']} duplicates, {g['seen']} ids remembered"
        )

    def cmd_help(self) -> None:
        for line in HELP.splitlines():
            self._write(line)

    def cmd_quit(self) -> None:
        self._write("bye")
        self._quit()


class TerminalConsole(HistoricRecvLine):
    """
    The console on a terminal in raw mode: prompt, line editing, history.
    Text from elsewhere (command answers, log lines) is shown with
    L{showText}, which keeps the prompt and the input intact.
    """

    CTRL_C = b"\x03"
    CTRL_D = b"\x04"

    def __init__(self, node: Node, quit: Callable[[], object]) -> None:
        self.node = node
        self._quit = quit
        self.commands = Commands(node, self.showText, quit)
        self.ps = (prompt(node).encode(), b"... ")

    @property
    def historyPath(self) -> str | None:
        """
        Where the history is kept between runs: C{console_history} in the
        node's data directory (none without one).
        """
        datadir = self.node.config.datadir
        return os.path.join(datadir, HISTORY_FILE) if datadir else None

    def connectionMade(self) -> None:
        HistoricRecvLine.connectionMade(self)
        self.keyHandlers[self.CTRL_C] = self._quit
        self.keyHandlers[self.CTRL_D] = self.handle_EOF
        path = self.historyPath
        if path is not None:
            try:
                with open(path, "rb") as f:
                    lines = f.read().splitlines()
            except OSError:
                lines = []
            self.historyLines = [line for line in lines if line][-HISTORY_LINES:]
            self.historyPosition = len(self.historyLines)

    def saveHistory(self) -> None:
        """
        Keep the last C{HISTORY_LINES} commands for the next run.
        """
        path = self.historyPath
        if path is None:
            return
        try:
            atomic_write(path, b"".join(line + b"\n" for line in self.historyLines[-HISTORY_LINES:]))
        except OSError as e:
            log.warn("Cannot save the console history to {path}: {error}", path=path, error=e)

    def initializeScreen(self) -> None:
        # Unlike RecvLine, leave the screen (and what is on it) alone.
        self.terminal.write(self.ps[self.pn])
        self.setInsertMode()

    def handle_EOF(self) -> None:
        if not self.lineBuffer:
            self._quit()

    def handle_RETURN(self) -> None:
        line = b"".join(self.lineBuffer)
        if line and (not self.historyLines or self.historyLines[-1] != line):
            self.historyLines.append(line)
        self.historyPosition = len(self.historyLines)
        self.lineBuffer = []
        self.lineBufferIndex = 0
        self.terminal.write(b"\n")  # the terminal protocol sends \r\n
        self.drawInputLine()
        self.commands.execute(line.decode("utf-8", "replace"))

    def showText(self, text: str) -> None:
        """
        Write lines above the prompt, then redraw the prompt and the input
        with the cursor where it was.
        """
        terminal = self.terminal
        if terminal is None:
            return
        terminal.write(b"\r")
        terminal.eraseLine()
        for line in text.splitlines() or [""]:
            terminal.write(line.encode("utf-8", "replace") + b"\n")
        self.drawInputLine()
        back = len(self.lineBuffer) - self.lineBufferIndex
        if back:
            terminal.cursorBackward(back)

    def connectionLost(self, reason) -> None:
        self.saveHistory()
        self._quit()


@implementer(IHalfCloseableProtocol)
class PipeConsole(LineOnlyReceiver):
    """
    The console on a pipe: one command per line, answers one per line.

    Commands run in the order they came, each once the one before has
    answered: a command that finishes later (C{connect}, C{disconnect})
    holds the ones after it until its Deferred fires (C{connect} waits for
    the handshake or its failure, bounded by the node's timeouts), so that
    C{printf 'connect 127.0.0.1 5000\\npeers\\n'} lists the peer. The end of
    input stops the node once every command read has answered.
    """

    delimiter = b"\n"
    MAX_LENGTH = 65536

    def __init__(self, node: Node, quit: Callable[[], object]) -> None:
        self._quit = quit
        self.commands = Commands(node, self.showText, quit)
        self._queue: deque[str] = deque()
        self._waiting: Deferred | None = None
        self._draining = False
        self._ended = False

    def lineReceived(self, line: bytes) -> None:
        self._queue.append(line.rstrip(b"\r").decode("utf-8", "replace"))
        self._runQueued()

    def _runQueued(self) -> None:
        """
        Run the commands queued, in order, while none is waiting for its
        answer; at the end of input with nothing left, stop.
        """
        if self._draining:
            return  # a command answered at once, inside the loop below
        self._draining = True
        try:
            while self._waiting is None and self._queue:
                d = self.commands.execute(self._queue.popleft())
                if d is not None:
                    self._waiting = d
                    d.addBoth(self._answered, d)
        finally:
            self._draining = False
        if self._ended and self._waiting is None and not self._queue:
            self._quit()

    def _answered(self, result, d: Deferred) -> None:
        if self._waiting is d:
            self._waiting = None
        if isinstance(result, Failure):
            self.showText(f"failed: {result.getErrorMessage()}")
        self._runQueued()

    def showText(self, text: str) -> None:
        if self.transport is not None:
            self.transport.write(text.encode("utf-8", "replace") + b"\n")

    def readConnectionLost(self) -> None:
        """
        The end of input (stdout stays open for the answers still to come,
        each bounded by its own timeout).
        """
        self._ended = True
        self._runQueued()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason) -> None:
        self._quit()


class _PromptSafeStream:
    """
    Stands in for C{sys.stdout} under C{twistd --console}: whole lines
    written to it (twistd's log) go above the prompt once the console runs.
    """

    def __init__(self, original, console: ConsoleService) -> None:
        self._original = original
        self._console = console
        self._partial = ""

    def write(self, text: str) -> int:
        if not self._console.active:
            return self._original.write(text)
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._console.showText(line)
        return len(text)

    def flush(self) -> None:
        if not self._console.active:
            self._original.flush()

    def __getattr__(self, name: str):
        return getattr(self._original, name)


class ConsoleService(service.Service):
    """
    Runs the console on this process's stdin and stdout.

    @ivar active: whether the console owns the terminal now.
    """

    name = "bitp2p-console"

    def __init__(
        self,
        node: Node,
        redirectStdout: bool = False,
        quit: Callable[[], object] | None = None,
        stdin=None,
    ) -> None:
        self.node = node
        self.active = False
        self._stdin = stdin if stdin is not None else sys.__stdin__
        self._quit = quit if quit is not None else self._stopReactor
        self._quitting = False
        self._termios = None
        self._front = None
        self._stdio = None
        self._savedStdout = None
        self.interactive = self._stdin is not None and self._stdin.isatty()
        if redirectStdout and self.interactive:
            self._savedStdout = sys.stdout
            sys.stdout = _PromptSafeStream(sys.stdout, self)

    def _stopReactor(self) -> None:
        self.node.reactor.stop()

    def quit(self) -> None:
        """
        Stop, once: the front-ends may ask several times (EOF after quit).
        """
        if not self._quitting:
            self._quitting = True
            self._quit()

    def startService(self) -> None:
        service.Service.startService(self)
        if self.interactive:
            import termios
            import tty

            fd = self._stdin.fileno()
            self._termios = termios.tcgetattr(fd)
            tty.setraw(fd)
            self._front = None

            def build() -> TerminalConsole:
                self._front = TerminalConsole(self.node, self.quit)
                return self._front

            protocol = ServerProtocol(build)
        else:
            self._front = protocol = PipeConsole(self.node, self.quit)
        self._stdio = stdio.StandardIO(protocol, reactor=self.node.reactor)
        self.active = True

    def stopService(self) -> None:
        service.Service.stopService(self)
        if isinstance(self._front, TerminalConsole):
            self._front.saveHistory()
        self.active = False
        if self._termios is not None:
            import termios

            fd = self._stdin.fileno()
            # Leave the terminal as we found it, the prompt line erased.
            termios.tcsetattr(fd, termios.TCSANOW, self._termios)
            self._termios = None
            out = sys.__stdout__
            if out is not None and out.isatty():
                os.write(out.fileno(), b"\r\x1b[2K")
        if self._savedStdout is not None:
            sys.stdout = self._savedStdout
            self._savedStdout = None

    def showText(self, text: str) -> None:
        """
        Show text above the prompt (or as plain lines on a pipe).
        """
        if self._front is not None and self.active:
            self._front.showText(text)

    def logObserver(self, level: LogLevel = LogLevel.info):
        """
        A log observer that shows events of C{level} and above through the
        console, one short line each.
        """

        @provider(ILogObserver)
        def observe(event: dict) -> None:
            if event.get("log_level", LogLevel.info) < level:
                return
            text = formatLogLine(event)
            if text is not None:
                self.showText(text)

        return observe


def formatLogLine(event: dict) -> str | None:
    """
    C{HH:MM:SS message}, with the level named for warnings and errors; the
    traceback of a logged failure is kept.
    """
    text = formatEvent(event)
    if not text:
        return None
    stamp = time.strftime("%H:%M:%S", time.localtime(event.get("log_time", time.time())))
    level = event.get("log_level", LogLevel.info)
    prefix = f"{level.name}: " if level >= LogLevel.warn else ""
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    return f"{stamp} {prefix}{text}"
