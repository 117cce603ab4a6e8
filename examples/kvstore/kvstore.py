#!/usr/bin/env python3
"""
A replicated key-value store on bitp2p, and a program that runs one.

Every node holds the whole map. Each key is a last-writer-wins register: a
write carries a version (a Lamport clock: one more than the highest version
the writer has seen) and its origin (the writer's node id), and a node keeps,
for each key, the write with the greatest C{(version, origin, value)}. That
order is total, so nodes that have received the same writes, in any order
and any number of times, hold the same map. A delete is a write of L{None}
(a tombstone, kept so that an older write cannot bring the key back).

Two application message types carry the writes:

  - C{kv.set}: C{{"type": "kv.set", "key": K, "value": V, "version": N,
    "origin": ID}}, one write, flooded through the network with
    C{Node.broadcast} (bitp2p's gossip): every node receives it once.
  - C{kv.state}: C{{"type": "kv.state", "entries": [[K, V, N, ID], ...]}},
    sent to one peer with C{Node.send}. Anti-entropy: when a connection is
    made, each side sends the other its whole map (in chunks of at most
    C{STATE_CHUNK_BYTES}, paced by the peer's send buffer), so a node that
    joins late, or was on the other side of a partition, catches up. The
    entries of a state that change a node's map are passed on, as a smaller
    C{kv.state}, to its other neighbours (not back to the sender, which has
    them); an entry that changes nothing stops there. Without that, a healed
    partition would only converge at the two ends of the link that came
    back.

Run it as a program::

    python examples/kvstore/kvstore.py --port 5000
    python examples/kvstore/kvstore.py --port 5001 --seed 127.0.0.1:5000

and type C{set KEY VALUE}, C{get KEY}, C{del KEY}, C{keys}, C{peers},
C{wait}, C{help}, C{quit}. It uses only bitp2p's public API.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Callable, Iterable, NamedTuple, Union

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from bitp2p import Node, NodeConfig, Peer

log = Logger()

SET = "kv.set"
STATE = "kv.state"

MAX_KEY_CHARS = 256
MAX_VALUE_BYTES = 64 * 1024  # a value's JSON encoding, UTF-8
MAX_VERSION = 2**63 - 1
MAX_ORIGIN_CHARS = 64
MAX_STATE_ENTRIES = 10_000  # entries in one kv.state
STATE_CHUNK_BYTES = 256 * 1024  # a kv.state we send is at most about this long

STORE_FILE = "kvstore.json"
STORE_FORMAT = "bitp2p-kvstore"

Value = Union[str, int, float, bool, None]

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encodeValue(value: Value) -> str:
    """
    The canonical JSON text of a value: what its size is measured on, and
    what breaks ties between writes of one version and one origin.
    """
    return _encoder.encode(value)


# -- validation -------------------------------------------------------------------


def checkKey(key: object) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
        raise ValueError(f"key must be a string of 1 to {MAX_KEY_CHARS} characters")
    return key


def checkValue(value: object) -> Value:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("value must be a finite number")
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise ValueError("value must be a string, a number, true, false or null")
    if len(encodeValue(value).encode("utf-8")) > MAX_VALUE_BYTES:
        raise ValueError(f"value is over {MAX_VALUE_BYTES} bytes encoded")
    return value


def checkVersion(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_VERSION:
        raise ValueError("version must be an integer in 0..2**63-1")
    return version


def checkOrigin(origin: object) -> str:
    if not isinstance(origin, str) or not 0 < len(origin) <= MAX_ORIGIN_CHARS:
        raise ValueError(f"origin must be a string of 1 to {MAX_ORIGIN_CHARS} characters")
    return origin


def validateSet(message: dict) -> None:
    """
    The validator of C{kv.set}: raises C{ValueError}, which bitp2p counts as
    the sender's protocol violation (it closes the connection).
    """
    for field in ("key", "value", "version", "origin"):
        if field not in message:
            raise ValueError(f"{field} is missing")
    checkKey(message["key"])
    checkValue(message["value"])
    checkVersion(message["version"])
    checkOrigin(message["origin"])
    return None  # the message, as it is


class Entry(NamedTuple):
    """
    What a node holds for one key: the winning write.
    """

    value: Value
    version: int
    origin: str

    def rank(self) -> tuple[int, str, str]:
        """
        The order of writes: the greatest wins everywhere.
        """
        return (self.version, self.origin, encodeValue(self.value))


def checkEntries(entries: object) -> list[tuple[str, Entry]]:
    """
    Check a list of C{[key, value, version, origin]} (a C{kv.state}'s, or the
    saved file's).

    @return: the entries as C{(key, Entry)} pairs.
    @raise ValueError: with a one-line reason.
    """
    if not isinstance(entries, list):
        raise ValueError("entries must be a list")
    if len(entries) > MAX_STATE_ENTRIES:
        raise ValueError(f"{len(entries)} entries, more than {MAX_STATE_ENTRIES}")
    checked = []
    for i, item in enumerate(entries):
        if not isinstance(item, list) or len(item) != 4:
            raise ValueError(f"entry {i} must be [key, value, version, origin]")
        key, value, version, origin = item
        try:
            checked.append(
                (checkKey(key), Entry(checkValue(value), checkVersion(version), checkOrigin(origin)))
            )
        except ValueError as e:
            raise ValueError(f"entry {i}: {e}") from None
    return checked


def validateState(message: dict) -> dict:
    """
    The validator of C{kv.state}: returns the message with its entries
    checked and turned into C{(key, Entry)} pairs, for the handler.
    """
    if "entries" not in message:
        raise ValueError("entries is missing")
    return {"type": STATE, "entries": checkEntries(message["entries"])}


# -- the store ----------------------------------------------------------------------


class Store:
    """
    A replicated map on one L{Node}: see the module's docstring.

    @ivar node: the node.
    @ivar clock: the highest version written or received (a Lamport clock).
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.clock = 0
        self._entries: dict[str, Entry] = {}
        self._listeners: list[Callable[[str, Value], object]] = []
        self._closed = False
        node.registerMessage(SET, self._setReceived, validateSet)
        node.registerMessage(STATE, self._stateReceived, validateState)
        self._unobserve = node.observe(connected=self._connected)

    def close(self) -> None:
        """
        Stop replicating: the node no longer handles the two types.
        """
        self._unobserve()
        self._closed = True  # paced sends still waiting stop
        self.node.unregisterMessage(SET)
        self.node.unregisterMessage(STATE)

    # -- reading ----------------------------------------------------------------

    def get(self, key: str, default: Value = None) -> Value:
        entry = self._entries.get(key)
        return default if entry is None or entry.value is None else entry.value

    def items(self) -> list[tuple[str, Value]]:
        """
        The live keys and their values, sorted by key (deleted keys left out).
        """
        return sorted((k, e.value) for k, e in self._entries.items() if e.value is not None)

    def keys(self) -> list[str]:
        return [key for key, _ in self.items()]

    def entry(self, key: str) -> Entry | None:
        """
        The winning write of C{key}, a delete included, or L{None}.
        """
        return self._entries.get(key)

    # -- writing -----------------------------------------------------------------

    def set(self, key: str, value: Value) -> Entry:
        """
        Write C{key} here and flood the write through the network.

        @raise ValueError: for a bad key or value.
        """
        checkKey(key)
        checkValue(value)
        if self.clock >= MAX_VERSION:
            raise ValueError("the version clock is exhausted")
        entry = Entry(value, self.clock + 1, self.node.node_id)
        self._merge(key, entry)
        self.node.broadcast(
            {"type": SET, "key": key, "value": value, "version": entry.version, "origin": entry.origin}
        )
        return entry

    def delete(self, key: str) -> Entry:
        """
        Delete C{key} everywhere (a write of L{None}).
        """
        return self.set(key, None)

    def onChange(self, callback: Callable[[str, Value], object]) -> Callable[[], None]:
        """
        Call C{callback(key, value)} whenever a key's value changes, by a
        write here or from the network (C{value} is L{None} for a delete).

        @return: a function that stops the calls.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def merge(self, entries: Iterable[tuple[str, Entry]]) -> list[tuple[str, Entry]]:
        """
        Apply writes by the last-writer-wins rule.

        @return: those that changed the map.
        """
        return [(key, entry) for key, entry in entries if self._merge(key, entry)]

    def _merge(self, key: str, entry: Entry) -> bool:
        if entry.version > self.clock:
            self.clock = entry.version
        held = self._entries.get(key)
        if held is not None and entry.rank() <= held.rank():
            return False
        self._entries[key] = entry
        before = None if held is None else held.value
        if encodeValue(before) != encodeValue(entry.value):
            for callback in list(self._listeners):
                try:
                    callback(key, entry.value)
                except Exception:
                    log.failure("onChange callback {callback!r} failed", callback=callback)
        return True

    # -- anti-entropy --------------------------------------------------------------

    def stateMessages(self, entries: Iterable[tuple[str, Entry]] | None = None) -> list[dict]:
        """
        C{kv.state} messages holding C{entries} (default: the whole map,
        deletes included), each at most about C{STATE_CHUNK_BYTES} encoded
        and C{MAX_STATE_ENTRIES} entries.
        """
        if entries is None:
            entries = sorted(self._entries.items())
        messages: list[dict] = []
        chunk: list[list] = []
        size = 0
        for key, entry in entries:
            item = [key, entry.value, entry.version, entry.origin]
            itemSize = len(_encoder.encode(item).encode("utf-8")) + 1
            if chunk and (size + itemSize > STATE_CHUNK_BYTES - 64 or len(chunk) >= MAX_STATE_ENTRIES):
                messages.append({"type": STATE, "entries": chunk})
                chunk, size = [], 0
            chunk.append(item)
            size += itemSize
        if chunk:
            messages.append({"type": STATE, "entries": chunk})
        return messages

    def sendPaced(self, peer: Peer, messages: list[dict]) -> None:
        """
        Send C{messages} to C{peer} in order, never while its send buffer is
        full: bitp2p drops a peer when more than C{max_send_buffer_bytes}
        (4 MiB) are written while its buffer stays full, so a big state
        written at once would end the connection. C{peer.whenDrained()}
        says when to go on.
        """
        while messages and peer.established and not self._closed:
            if peer.sendPaused:
                peer.whenDrained().addCallbacks(
                    lambda _: self.sendPaced(peer, messages),
                    lambda failure: None,  # the connection closed: nothing to send to
                )
                return
            self.node.send(peer, messages.pop(0))

    def _connected(self, peer: Peer) -> None:
        self.sendPaced(peer, self.stateMessages())

    def _setReceived(self, peer: Peer, message: dict) -> None:
        # Gossip passes the message on by itself: nothing to forward here.
        self._merge(
            message["key"], Entry(message["value"], message["version"], message["origin"])
        )

    def _stateReceived(self, peer: Peer, message: dict) -> None:
        changed = self.merge(message["entries"])
        if not changed:
            return
        log.debug(
            "Merged {count} entries from {peer}", count=len(changed), peer=peer.node_id[:8]
        )
        for other in self.node.peers():
            if other is not peer:
                self.sendPaced(other, self.stateMessages(changed))

    # -- persistence -----------------------------------------------------------------

    def save(self, path: str) -> None:
        """
        Write the map (deletes included) to C{path}, atomically.
        """
        entries = [[k, e.value, e.version, e.origin] for k, e in sorted(self._entries.items())]
        data = json.dumps({"format": STORE_FORMAT, "entries": entries}, ensure_ascii=False)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def load(self, path: str) -> int:
        """
        Merge the map saved in C{path}, if there is one.

        @return: how many entries it held.
        @raise ValueError: if it is not a saved map.
        @raise OSError: if it cannot be read.
        """
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except FileNotFoundError:
            return 0
        if not isinstance(saved, dict) or saved.get("format") != STORE_FORMAT:
            raise ValueError("not a kvstore file")
        entries = saved.get("entries")
        if not isinstance(entries, list):
            raise ValueError("entries must be a list")
        for start in range(0, len(entries), MAX_STATE_ENTRIES):
            self.merge(checkEntries(entries[start : start + MAX_STATE_ENTRIES]))
        return len(entries)


# -- the program ----------------------------------------------------------------------

HELP = """\
commands:
  set KEY VALUE   write KEY everywhere (VALUE: a JSON number, true, false,
                  "a string", or any other text, taken as a string)
  get KEY         the value of KEY
  del KEY         delete KEY everywhere
  keys            the keys that have a value
  peers           the connected peers
  wait [SECONDS]  wait until a peer is connected (default: at most 10 s)
  help            this list
  quit            stop the node and leave (also end of input)"""


def parseValue(text: str) -> Value:
    """
    A value typed after C{set KEY}: JSON if it is a JSON scalar, else the
    text itself.

    @raise ValueError: for C{null} (deleting is C{del}).
    """

    def noConstant(name: str):
        raise ValueError(name)

    try:
        value = json.loads(text, parse_constant=noConstant)
    except ValueError:
        return text
    if value is None:
        raise ValueError("null deletes: use del KEY")
    return text if isinstance(value, (list, dict)) else value


def showValue(value: Value) -> str:
    return json.dumps(value, ensure_ascii=False)


@implementer(IHalfCloseableProtocol)
class Console(LineReceiver):
    """
    The command line, on stdin and stdout (C{StandardIO}) or any transport.

    At the end of input the program quits, unless C{serve} is true: then the
    node keeps running (and printing changes) until it is stopped.
    """

    delimiter = b"\n"
    MAX_LENGTH = 2 * MAX_VALUE_BYTES

    def __init__(
        self,
        store: Store,
        quit: Callable[[], object],
        interactive: bool = False,
        serve: bool = False,
    ) -> None:
        self.store = store
        self.node = store.node
        self._quit = quit
        self._interactive = interactive
        self._serve = serve
        self._running = False  # inside a command: its own writes are not echoed
        self._ended = False  # the input ended
        self._unsubscribe = [store.onChange(self._changed)]
        if interactive:
            self._unsubscribe.append(
                self.node.observe(
                    connected=lambda peer: self.notice(f"* connected to {peer.node_id[:16]}"),
                    disconnected=lambda peer, reason: self.notice(
                        f"* disconnected from {peer.node_id[:16]}: {reason}"
                    ),
                )
            )

    # -- the transport ------------------------------------------------------------

    def connectionMade(self) -> None:
        address = self.node.listeningAddress
        self.say(f"node {self.node.node_id} listening on {address}")
        if self._interactive:
            self.say("type help for the commands")
        self._prompt()

    def say(self, text: str) -> None:
        if self.transport is not None:
            self.transport.write(text.encode("utf-8", "replace") + b"\n")

    def notice(self, text: str) -> None:
        """
        Say something that was not asked for: on a terminal, on the prompt's
        line, and the prompt again below.
        """
        if self._interactive and self.transport is not None:
            self.transport.write(b"\r\x1b[K")
            self.say(text)
            if not self.paused:
                self._prompt()
        else:
            self.say(text)

    def _prompt(self) -> None:
        if self._interactive and self.transport is not None:
            self.transport.write(b"kv> ")

    def lineReceived(self, line: bytes) -> None:
        self._running = True
        try:
            self.execute(line.decode("utf-8", "replace").strip())
        finally:
            self._running = False
        if not self.paused:
            self._prompt()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.say(f"line too long (over {self.MAX_LENGTH} bytes)")
        self.clearLineBuffer()

    def readConnectionLost(self) -> None:
        self._ended = True
        rest = self.clearLineBuffer()
        if rest.strip() and not rest.endswith(self.delimiter):
            rest += self.delimiter  # a last line without its newline
        self.dataReceived(rest)  # (kept for later while a command waits)
        if not self.paused:
            self._endOfInput()

    def writeConnectionLost(self) -> None:
        if not self._serve:
            self.transport.loseConnection()

    def connectionLost(self, reason=None) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if not self._serve:
            self._quit()

    def _endOfInput(self) -> None:
        if not self._serve:
            self.transport.loseConnection()  # written output is flushed first

    def _changed(self, key: str, value: Value) -> None:
        if self._running:
            return
        if value is None:
            self.notice(f"* {key} deleted")
        else:
            text = showValue(value)
            self.notice(f"* {key} = {text if len(text) <= 60 else text[:57] + '...'}")

    # -- the commands ----------------------------------------------------------------

    def execute(self, line: str) -> None:
        if not line or line.startswith("#"):
            return
        name, _, rest = line.partition(" ")
        method = getattr(self, f"cmd_{name.lower()}", None)
        if method is None:
            self.say(f"unknown command {name!r}; type help")
            return
        method(rest.strip())

    def cmd_set(self, rest: str) -> None:
        key, _, text = rest.partition(" ")
        text = text.strip()
        if not key or not text:
            self.say("usage: set KEY VALUE")
            return
        try:
            entry = self.store.set(key, parseValue(text))
        except ValueError as e:
            self.say(f"error: {e}")
            return
        self.say(f"ok (version {entry.version})")

    def cmd_get(self, rest: str) -> None:
        if not rest or " " in rest:
            self.say("usage: get KEY")
            return
        entry = self.store.entry(rest)
        self.say("(not set)" if entry is None or entry.value is None else showValue(entry.value))

    def cmd_del(self, rest: str) -> None:
        if not rest or " " in rest:
            self.say("usage: del KEY")
            return
        try:
            entry = self.store.delete(rest)
        except ValueError as e:
            self.say(f"error: {e}")
            return
        self.say(f"ok (version {entry.version})")

    def cmd_keys(self, rest: str) -> None:
        keys = self.store.keys()
        for key in keys:
            self.say(key)
        if not keys:
            self.say("(no keys)")

    def cmd_peers(self, rest: str) -> None:
        peers = self.node.peers()
        for peer in peers:
            where = peer.address or peer.remote
            self.say(f"{peer.node_id[:16]:16}  {str(where):24}  {peer.direction.value}")
        if not peers:
            self.say("(no peers)")

    def cmd_wait(self, rest: str) -> None:
        try:
            seconds = float(rest) if rest else 10.0
        except ValueError:
            seconds = -1.0
        if not 0 < seconds < math.inf:
            self.say("usage: wait [SECONDS]")
            return
        if self.node.peers():
            self.say(f"connected to {len(self.node.peers())} peers")
            return
        # Read no further command until a peer comes or the time is up.
        self.pauseProducing()
        done: Deferred[str] = Deferred()
        unsubscribe = self.node.observe(
            connected=lambda peer: done.called or done.callback(f"connected to {peer.node_id[:16]}")
        )
        timer = self.node.reactor.callLater(
            seconds, lambda: done.called or done.callback(f"no peer after {seconds:g} s")
        )

        def finish(text: str) -> None:
            unsubscribe()
            if timer.active():
                timer.cancel()
            self.say(text)
            if self.transport is None or self.transport.disconnecting:
                return
            self._prompt()
            self.resumeProducing()
            if self._ended and not self.paused:
                self._endOfInput()

        done.addCallback(finish)

    def cmd_help(self, rest: str) -> None:
        self.say(HELP)

    def cmd_quit(self, rest: str) -> None:
        self._serve = False
        self.transport.loseConnection()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a whole number in 0..65535, not {text!r}")
    return int(text)


def parseArguments(argv: list[str]) -> tuple[argparse.Namespace, NodeConfig]:
    """
    The options, and the node configuration they describe. A mistake ends
    the program with one line and exit status 2.
    """
    parser = _Parser(
        prog="kvstore",
        description="A replicated key-value store on bitp2p: every node holds every key.",
    )
    parser.add_argument("--port", type=_port, default=5000, help="TCP port to listen on (0: any free one) [5000]")
    parser.add_argument("--interface", default="0.0.0.0", help="address to listen on [0.0.0.0]")
    parser.add_argument(
        "--seed", action="append", default=[], metavar="HOST:PORT",
        help="a node to bootstrap from; repeat for several (default: 127.0.0.1 ports 5000-5003)",
    )
    parser.add_argument("--no-seeds", action="store_true", help="use no seed at all")
    parser.add_argument("--datadir", help="keep the node id, peers and the map here (kvstore.json)")
    parser.add_argument("--tls", action="store_true", help="speak TLS to peers")
    parser.add_argument("--serve", action="store_true", help="keep running at the end of input")
    args = parser.parse_args(argv)
    if args.seed and args.no_seeds:
        parser.error("--seed and --no-seeds exclude each other")
    try:
        config = NodeConfig(
            port=args.port,
            interface=args.interface,
            seeds=() if args.no_seeds else (args.seed or None),
            datadir=args.datadir,
            tls=args.tls,
        )
    except ValueError as e:
        parser.error(str(e))
    return args, config


def _fail(message: str, status: int) -> SystemExit:
    sys.stderr.write(f"kvstore: {message}\n")
    return SystemExit(status)


def _logTo(stream, level):
    """
    A log observer that writes events of C{level} and above to C{stream},
    one short line each.
    """
    from twisted.logger import FilteringLogObserver, LogLevelFilterPredicate, formatEvent

    def observe(event: dict) -> None:
        text = formatEvent(event)
        if "log_failure" in event:
            text += "\n" + event["log_failure"].getTraceback()
        stamp = time.strftime("%H:%M:%S", time.localtime(event.get("log_time", time.time())))
        stream.write(f"{stamp} {text}\n")
        stream.flush()

    return FilteringLogObserver(observe, [LogLevelFilterPredicate(defaultLogLevel=level)])


def main(argv: list[str] | None = None) -> int:
    args, config = parseArguments(sys.argv[1:] if argv is None else argv)

    from twisted.internet import reactor, stdio
    from twisted.internet.error import CannotListenError
    from twisted.logger import LogLevel, globalLogBeginner

    try:
        node = Node(config, reactor=reactor)
    except OSError as e:
        raise _fail(f"--datadir {args.datadir}: {e.strerror or e}", 2) from None
    store = Store(node)
    path = os.path.join(args.datadir, STORE_FILE) if args.datadir else None
    if path is not None:
        try:
            store.load(path)
        except (OSError, ValueError) as e:
            raise _fail(f"cannot read {path}: {e}", 1) from None
    try:
        node.startService()
    except CannotListenError as e:
        reason = getattr(e.socketError, "strerror", None) or e.socketError
        raise _fail(f"cannot listen on {args.interface}:{args.port}: {reason}", 1) from None
    except ValueError as e:
        raise _fail(str(e), 1) from None
    # On a terminal the console tells of peers and changes itself: only
    # warnings and errors are logged there.
    interactive = sys.stdin is not None and sys.stdin.isatty()
    level = LogLevel.warn if interactive else LogLevel.info
    globalLogBeginner.beginLoggingTo([_logTo(sys.stderr, level)], redirectStandardIO=False)

    def shutdown() -> Deferred:
        d = node.stopService()
        if path is not None:
            d.addCallback(lambda _: store.save(path))
            d.addErrback(lambda f: log.error("Cannot save {path}: {e}", path=path, e=f.value))
        return d

    reactor.addSystemEventTrigger("before", "shutdown", shutdown)

    def quit() -> None:
        if reactor.running:
            reactor.stop()

    stdio.StandardIO(Console(store, quit, interactive, args.serve), reactor=reactor)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
