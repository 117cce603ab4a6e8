"""
Attacks on a real node process: what each costs the node and whether it
keeps serving an honest peer.

One victim node runs as a real process (``twistd -n bitp2p`` on 127.0.0.1,
with a data directory and the control API), with small limits where the
daemon exposes them (``--max-connections 16 --max-outbound 0 --no-seeds
--ping-interval 5``; the message size limit, handshake timeout, token
buckets and so on are the daemon's defaults: it has no options for them). A
second node process, the honest peer, is connected to it (``--connect``).
Then each attack case runs against the victim, one after the other, from
plain sockets of this script, each case from its own loopback /16
(127.N.0.0/16: Linux routes all of 127/8 to ``lo``; each connection binds
its own source address), so that what one case charges against its hosts
never touches the honest peer at 127.0.0.1 or a later case.

For every case the script measures:

  - the victim's resident memory (``VmRSS``) before and after, and its peak
    during the attack (``VmHWM``, reset before each case through
    ``/proc/PID/clear_refs``, and samples taken during the attack);
  - its open file descriptors (``/proc/PID/fd``) before and after;
  - what the node did: what the attacker's sockets saw (closed or not,
    answers), the change of the node's counters (``/metrics``:
    ``bitp2p_protocol_violations_total``, ``bitp2p_handshake_failures_total``,
    the address manager's size) and what the node logged (violations and
    their reasons, refusals, timeouts, drops, discouragements, errors), and
    the CPU time it used during the attack;
  - whether the honest peer was kept: the victim's ``getpeerinfo`` still
    lists the honest node id with the same API ``id`` and ``conntime`` (the
    same connection, not a reconnection), the honest node lists the victim,
    and a ping round trip between them completes (``ping`` on the control
    API, then no ``pingwait`` left);
  - the time to recover: from the end of the attack (its sockets closed)
    until a fresh client from 127.0.0.1 completes a handshake with the
    victim and gets the pong of a ping (``time.perf_counter``, in ms).

The cases (``--list``), each from fresh sockets of this script:

  - malformed input, each line sent as the first thing on a connection and
    again after a valid handshake on another connection (from another
    host): invalid JSON, invalid UTF-8, NUL bytes, non-object JSON, a
    missing or non-string type, wrong field types, out-of-range values, a
    5000-digit number, arrays nested 8000 and 500000 deep, a line of
    exactly the limit (1 MiB, tolerated) and one byte over, an unknown type
    and blank lines (tolerated), getaddr/addr/ping/pong/verack before the
    handshake (violations then only), a second version;
  - a line that never ends, in 4 KiB chunks every 10 ms, and in 256-byte
    chunks as fast as the node reads them (its CPU cost); every free slot
    holding an unfinished line just under the limit at once; five
    violations from one host (discouragement);
  - floods: pings (tens of thousands, as fast as the socket takes them),
    addr messages of fresh addresses from one connection and from many
    (the address manager's size before and after: the token buckets), a
    getaddr repeated thousands of times, thousands of connection attempts
    (2000 a second) from one address and from thousands of addresses in
    100 /16s, held silent until the end (and a newcomer tried meanwhile);
  - slow peers: one that never reads while sending pings (whose pongs the
    node must write; a daemon sends a peer nothing else in bulk), one that
    sends a version one byte per second;
  - identity: a version carrying the victim's own node id, and one
    carrying the honest peer's.

"After" figures are taken once the node has settled (no connection left in
its handshake, the peer count back to what it was), at most a few seconds
after the attack. The script prints one line per case, an RST table and a
summary line; it exits 1 if the victim died or lost the honest peer.

The machines this runs on are shared and small (2 cores here): timings,
recovery times and CPU seconds are noisy; memory and descriptor counts and
the outcomes are what the table is for.

    python bench/attacks.py [--quick] [--only CASE ...] [--list]
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(__file__))

from _common import (  # noqa: E402
    cpu_seconds,
    descriptors,
    free_ports,
    proc_status,
    rpc,
    rpc_get,
    wait_for,
)

from bitp2p.constants import (  # noqa: E402
    ADDR_RATE_PER_S,
    HANDSHAKE_TIMEOUT_S,
    MAX_ADDR_ENTRIES,
    MAX_MESSAGE_BYTES,
    MAX_SEND_BUFFER_BYTES,
    PING_TIMEOUT_S,
    RELAY_MAX_ENTRIES,
)

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
PASSWORD = "attacks"
LIMIT = MAX_MESSAGE_BYTES  # the daemon's longest line (no option changes it)
MAX_CONNECTIONS = 16
PING_INTERVAL_S = 5
LOOPBACK = "127.0.0.1"

# Sizes: (quick, full)
SIZES = {
    "pings": (5_000, 50_000),
    "addr_messages": (100, 500),
    "addr_connections": (8, 30),
    "getaddrs": (500, 5_000),
    "connection_attempts": (600, 4_000),
    "flood_seconds": (0.5, 2.0),
    "flood_hold_seconds": (0.5, 1.0),
    # Long enough, in the full run, for the oldest silent connection to pass
    # the node's stale_handshake_s (10 s) and be replaced by the newcomer.
    "flood_probe_seconds": (1.0, 15.0),
    "nonreader_seconds": (1.5, 5.0),
    "dribble_seconds": (1.5, 6.0),
    "slow_line_chunk": (16 * 1024, 4 * 1024),
    "small_line_chunk": (1024, 256),
    "big_line_rounds": (1, 3),
    "settle_seconds": (3.0, 5.0),
}


# -- the node processes --------------------------------------------------------


class Daemon:
    """
    One ``twistd -n bitp2p`` process with its control API.
    """

    def __init__(self, name: str, root: str, port: int, rpcPort: int, extra: list[str]):
        self.name, self.port, self.rpcPort = name, port, rpcPort
        self.datadir = os.path.join(root, name)
        self.logfile = os.path.join(root, f"{name}.log")
        self.args = [
            TWISTD, "-n", "--pidfile=", f"--logfile={self.logfile}", "bitp2p",
            "--port", str(port), "--interface", LOOPBACK, "--datadir", self.datadir,
            "--rpc-port", str(rpcPort), "--rpc-password", PASSWORD, *extra,
        ]
        self.process: subprocess.Popen | None = None
        self._logOffset = 0
        self._logInode: int | None = None
        self.node_id = ""

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def call(self, method: str, *params, timeout: float = 10.0):
        return rpc(self.rpcPort, PASSWORD, method, params, timeout)

    def metrics(self) -> dict[str, float]:
        """
        The node's Prometheus figures, summed over labels except the
        address tables, which are kept apart.
        """
        text = rpc_get(self.rpcPort, PASSWORD, "/metrics").decode()
        figures: Counter = Counter()
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            if name.startswith("bitp2p_known_addresses"):
                key = name
            else:
                key = name.split("{", 1)[0]
            figures[key] += float(value)
        return figures

    def ready(self) -> bool:
        try:
            self.call("uptime", timeout=2)
            return True
        except OSError:
            return False

    def newLog(self) -> list[str]:
        """
        The log lines written since the last call. twistd rotates its log
        file every 1 MB (to NAME.1, NAME.2, ...): the rest of the file read
        last is found by its inode among the rotated ones.
        """
        paths = [self.logfile]
        n = 1
        while os.path.exists(f"{self.logfile}.{n}"):
            paths.insert(0, f"{self.logfile}.{n}")  # oldest first
            n += 1
        inodes = []
        for path in paths:
            try:
                inodes.append(os.stat(path).st_ino)
            except OSError:
                inodes.append(None)
        start = inodes.index(self._logInode) if self._logInode in inodes else len(paths) - 1
        chunks = []
        offset = self._logOffset if self._logInode in inodes else 0
        for path, inode in zip(paths[start:], inodes[start:]):
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:
                continue
            if path == self.logfile:
                end = data.rfind(b"\n") + 1  # a line may be half written
                self._logInode, self._logOffset = inode, offset + end
                data = data[:end]
            chunks.append(data)
            offset = 0
        return b"".join(chunks).decode("utf-8", "replace").splitlines()


def resetPeak(pid: int) -> bool:
    """
    Reset the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0).
    """
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# -- attackers -------------------------------------------------------------------


def line(message: object) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def version(node_id: str, port: int = 0) -> bytes:
    return line({"type": "version", "node_id": node_id, "port": port})


VERACK = line({"type": "verack"})


def ping(nonce: int) -> bytes:
    return b'{"type":"ping","nonce":%d}\n' % nonce


def padded(kind: str, size: int) -> bytes:
    """
    A line (delimiter excluded) of exactly C{size} bytes: a message of type
    C{kind} with a padding field.
    """
    head = b'{"type":"%s","pad":"' % kind.encode()
    return head + b"x" * (size - len(head) - 2) + b'"}'


_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets, no TIME_WAIT


class Client:
    """
    A blocking TCP client bound to a chosen loopback source address, that
    collects the lines it receives.
    """

    def __init__(self, port: int, source: str, rcvbuf: int | None = None, timeout: float = 5.0):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock = s
        self.source = source
        self.buffer = b""
        self.messages: list[dict] = []
        self.closed = False
        try:
            s.bind((source, 0))
            s.settimeout(timeout)
            s.connect((LOOPBACK, port))
        except OSError:
            s.close()
            raise

    @property
    def local(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"

    def send(self, data: bytes) -> bool:
        """
        Write everything; C{False} if the node closed the connection.
        """
        if self.closed:
            return False
        try:
            self.sock.settimeout(10)
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def readOnce(self, timeout: float) -> None:
        if self.closed:
            return
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        except OSError:
            self.closed = True
            return
        if not chunk:
            self.closed = True
            return
        self.buffer += chunk
        *done, self.buffer = self.buffer.split(b"\n")
        for each in done:
            if each.strip():
                try:
                    self.messages.append(json.loads(each))
                except ValueError:
                    self.messages.append({"type": "?unparsable"})

    def wait(self, predicate, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return predicate()
            self.readOnce(min(left, 0.1))
        return True

    def waitClosed(self, seconds: float) -> bool:
        return self.wait(lambda: self.closed, seconds)

    def handshake(self, node_id: str, seconds: float = 5.0) -> bool:
        if not self.send(version(node_id)):
            return False
        got = self.wait(
            lambda: {"version", "verack"} <= {m.get("type") for m in self.messages}, seconds
        )
        return got and self.send(VERACK)

    def ping(self, nonce: int, seconds: float = 5.0) -> bool:
        if not self.send(ping(nonce)):
            return False
        return self.wait(
            lambda: any(m.get("type") == "pong" and m.get("nonce") == nonce for m in self.messages),
            seconds,
        )

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# -- the bench ---------------------------------------------------------------------


class Bench:
    """
    The victim, the honest node, and what every case needs: source
    addresses, sampling, the honest peer's connection, recovery probes.
    """

    def __init__(self, quick: bool):
        self.quick = quick
        self.root = tempfile.mkdtemp(prefix="bitp2p-attacks-")
        vPort, vRpc, hPort, hRpc = free_ports(4)
        self.victim = Daemon(
            "victim", self.root, vPort, vRpc,
            ["--max-connections", str(MAX_CONNECTIONS), "--max-outbound", "0", "--no-seeds",
             "--ping-interval", str(PING_INTERVAL_S)],
        )
        self.honest = Daemon("honest", self.root, hPort, hRpc, ["--connect", f"{LOOPBACK}:{vPort}"])
        self.group = 10  # the /16 of the current case: 127.group.0.0/16
        self._host = 0
        self._probes = 0
        self.probeTries = 0
        self.peakKiB = 0
        self._lastSample = 0.0
        self.honestConnection: tuple | None = None

    def size(self, name: str):
        return SIZES[name][0 if self.quick else 1]

    # -- setup --

    def start(self) -> None:
        self.victim.start()
        self.honest.start()
        for daemon in (self.victim, self.honest):
            if not wait_for(daemon.ready, 30, 0.2):
                raise RuntimeError(f"the {daemon.name} node did not come up")
            daemon.node_id = daemon.call("getnetworkinfo")["node_id"]
        if not wait_for(lambda: self.honestOnVictim() is not None, 30, 0.1):
            raise RuntimeError("the honest node did not connect to the victim")
        self.honestConnection = self.honestOnVictim()
        self.victim.newLog()

    def close(self) -> None:
        for daemon in (self.honest, self.victim):
            daemon.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- addresses --

    def newCase(self, index: int) -> None:
        self.group = 10 + index
        self._host = 0

    def source(self) -> str:
        """
        A loopback address of the current case's /16 not used before.
        """
        n = self._host
        self._host += 1
        return f"127.{self.group}.{n // 250}.{n % 250 + 1}"

    def client(self, source: str | None = None, **kw) -> Client:
        return Client(self.victim.port, source or self.source(), **kw)

    # -- sampling --

    def tick(self) -> None:
        """
        Sample the victim's RSS (at most every 20 ms): attacks call this
        in their loops.
        """
        now = time.monotonic()
        if now - self._lastSample < 0.02:
            return
        self._lastSample = now
        try:
            self.peakKiB = max(self.peakKiB, proc_status(self.victim.pid, "VmRSS"))
        except OSError:
            pass

    # -- the honest peer --

    def honestOnVictim(self) -> tuple | None:
        """
        The victim's connection to the honest node: (API id, conntime,
        remote), or None.
        """
        for peer in self.victim.call("getpeerinfo"):
            if peer["node_id"] == self.honest.node_id:
                return (peer["id"], peer["conntime"], peer["remote"])
        return None

    def honestServed(self) -> bool:
        """
        A ping from the victim to the honest node comes back.
        """
        def answered() -> bool:
            for peer in self.victim.call("getpeerinfo"):
                if peer["node_id"] == self.honest.node_id:
                    return "pingwait" not in peer
            return False

        wait_for(answered, 5)  # a periodic ping may be out
        self.victim.call("ping")
        return wait_for(answered, 5)

    def honestKept(self) -> tuple[bool, str]:
        now = self.honestOnVictim()
        if now is None:
            return False, "honest peer gone"
        if now != self.honestConnection:
            return False, f"honest peer reconnected ({self.honestConnection} -> {now})"
        if self.victim.node_id not in {p["node_id"] for p in self.honest.call("getpeerinfo")}:
            return False, "the honest node does not list the victim"
        if not self.honestServed():
            return False, "the honest peer does not answer the victim's ping"
        return True, ""

    # -- recovery --

    def probe(self, seconds: float = 15.0, source: str = LOOPBACK) -> float | None:
        """
        Milliseconds until a fresh client has completed a handshake and got
        a pong; None if it never does within C{seconds}.
        """
        started = time.perf_counter()
        deadline = started + seconds
        self.probeTries = 0
        while time.perf_counter() < deadline:
            self._probes += 1
            self.probeTries += 1
            nonce = 7_000_000 + self._probes
            try:
                client = Client(self.victim.port, source, timeout=2)
            except OSError:
                time.sleep(0.02)
                continue
            try:
                left = max(0.1, deadline - time.perf_counter())
                if client.handshake(f"probe-{self._probes}", min(left, 5)) and client.ping(
                    nonce, min(left, 5)
                ):
                    return (time.perf_counter() - started) * 1000
            finally:
                client.close()
            time.sleep(0.02)
        return None

    def settled(self, peers: int) -> bool:
        figures = self.victim.metrics()
        return (
            figures["bitp2p_connections_handshaking"] == 0
            and self.victim.call("getconnectioncount") <= peers
        )


# -- what the node logged -------------------------------------------------------

_PATTERNS = [
    ("violation", re.compile(r"Protocol violation by <[^>]*>: (.*)$")),
    ("closing", re.compile(r"Closing <[^>]*>: (.*)$")),
    ("refused", re.compile(r"Refusing inbound connection from [^:]*: (.*)$")),
    ("handshake timeout", re.compile(r"Handshake with .* timed out")),
    ("ping timeout", re.compile(r"Ping to .* timed out")),
    ("not reading", re.compile(r"Dropping <[^>]*>: not reading \((\d+) bytes")),
    ("discouraged", re.compile(r"Discouraging (\S+)")),
    ("evicted", re.compile(r"Inbound slots full: evicting")),
    ("silent", re.compile(r"silent for")),
]
_NOUNS = {
    "violation": ("violation", "violations"),
    "closing": ("refused version", "refused versions"),
    "refused": ("connection refused", "connections refused"),
    "handshake timeout": ("handshake timeout", "handshake timeouts"),
    "ping timeout": ("ping timeout", "ping timeouts"),
    "not reading": ("'not reading' drop", "'not reading' drops"),
    "discouraged": ("host discouraged", "hosts discouraged"),
    "evicted": ("eviction", "evictions"),
    "silent": ("inactivity timeout", "inactivity timeouts"),
}
_ERRORS = re.compile(r"Traceback|Unhandled|#critical\]|#error\]")


def summarizeLog(lines: list[str], honestId: str) -> tuple[str, list[str]]:
    """
    A short account of the log lines of one case, and the error lines.
    """
    counts: Counter = Counter()
    reasons: Counter = Counter()
    errors = []
    for text in lines:
        if _ERRORS.search(text):
            errors.append(text)
        if honestId and f"Disconnected from {honestId}" in text:
            counts["HONEST DISCONNECTED"] += 1
        for name, pattern in _PATTERNS:
            match = pattern.search(text)
            if match:
                counts[name] += 1
                if name in ("violation", "closing"):
                    reasons[match.group(1)] += 1
                elif name == "refused":
                    reasons["refused: " + match.group(1)] += 1
                break
    parts = []
    for name in ("violation", "closing", "refused"):
        if counts[name]:
            count = counts.pop(name)
            parts.append(f"{count} {_NOUNS[name][count > 1]}")
    for name, count in sorted(counts.items()):
        noun = _NOUNS.get(name, (name, name))[count > 1]
        parts.append(f"{count} {noun}")
    if errors:
        parts.append(f"{len(errors)} ERROR line(s)")
    if reasons:
        shown = "; ".join(
            f"{r!r}" + (f" x{n}" if n > 1 else "") for r, n in reasons.most_common(3)
        )
        more = len(reasons) - 3
        parts.append(f"({shown}{f'; +{more} more' if more > 0 else ''})")
    return ("logged: " + ", ".join(parts)) if parts else "logged nothing", errors


# -- the cases -------------------------------------------------------------------

# Each case function takes the Bench and returns (what was sent, what the
# attacker saw, whether that was the expected outcome).

MALFORMED = [
    # (case, what is sent, payloads, expected: "violation" either way,
    # "tolerated" either way, "early": a violation before the handshake only)
    ("invalid-json", "a line that is not JSON", [b'{"type":"ping",nonce:1}\n'], "violation"),
    ("invalid-utf8", "invalid UTF-8 in a string", [b'{"type":"\xff\xfe"}\n'], "violation"),
    (
        "nul-bytes", "NUL bytes alone; NUL after an object",
        [b"\x00\x00\x00\x00\n", b'{"type":"ping","nonce":1}\x00\n'], "violation",
    ),
    (
        "non-object", "JSON list, number, string, null",
        [b"[1,2,3]\n", b"42\n", b'"version"\n', b"null\n"], "violation",
    ),
    (
        "bad-type", "no type; type a number, null, a list",
        [line({"nonce": 1}), line({"type": 7}), line({"type": None}), line({"type": ["ping"]})],
        "violation",
    ),
    (
        "wrong-field-types",
        'version node_id 5, port "8333"; addr peers a string; ping nonce "1", 1.5, true, none',
        [
            line({"type": "version", "node_id": 5, "port": 0}),
            line({"type": "version", "node_id": "m", "port": "8333"}),
            line({"type": "addr", "peers": "1.2.3.4:5"}),
            line({"type": "ping", "nonce": "1"}),
            line({"type": "ping", "nonce": 1.5}),
            line({"type": "ping", "nonce": True}),
            line({"type": "ping"}),
        ],
        "violation",
    ),
    (
        "out-of-range",
        f"port 70000, -1; nonce -1, 2^64; user_agent of 300 chars; addr of {MAX_ADDR_ENTRIES + 1}"
        " entries",
        [
            line({"type": "version", "node_id": "m", "port": 70000}),
            line({"type": "version", "node_id": "m", "port": -1}),
            line({"type": "ping", "nonce": -1}),
            line({"type": "ping", "nonce": 2**64}),
            line({"type": "version", "node_id": "m", "port": 0, "user_agent": "u" * 300}),
            line({"type": "addr", "peers": ["1.1.1.1:1"] * (MAX_ADDR_ENTRIES + 1)}),
        ],
        "violation",
    ),
    (
        "5000-digit-number", "a ping whose nonce has 5000 digits",
        [b'{"type":"ping","nonce":' + b"9" * 5000 + b"}\n"], "violation",
    ),
    (
        "deep-nesting", "arrays nested 8000 deep; 500000 deep (1 MB)",
        [b"[" * 8000 + b"]" * 8000 + b"\n", b"[" * 500_000 + b"]" * 500_000 + b"\n"],
        "violation",
    ),
    (
        "line-at-limit", f"a line of exactly {LIMIT} bytes (the limit), unknown type",
        [padded("junk", LIMIT) + b"\n"], "tolerated",
    ),
    (
        "line-over-limit", f"a line of {LIMIT + 1} bytes", [padded("junk", LIMIT + 1) + b"\n"],
        "violation",
    ),
    (
        "unknown-and-blank", "an unknown type; blank lines",
        [line({"type": "hello", "x": [1, {"y": None}]}), b"\n\r\n\n"], "tolerated",
    ),
    (
        "before-handshake", "getaddr, addr, ping, pong, a second verack",
        [
            line({"type": "getaddr"}),
            line({"type": "addr", "peers": ["1.2.3.4:5"]}),
            line({"type": "ping", "nonce": 1}),
            line({"type": "pong", "nonce": 1}),
            VERACK + VERACK,
        ],
        "early",
    ),
    ("second-version", "a second version", [b"SECOND-VERSION"], "violation"),
]


def malformedCase(name: str, what: str, payloads: list[bytes], expected: str):
    def case(bench: Bench):
        results = {"first": [], "after": []}
        for mode in ("first", "after"):
            for index, payload in enumerate(payloads):
                bench.tick()
                client = bench.client()
                try:
                    if mode == "after" and not client.handshake(f"mallory{index}"):
                        results[mode].append("handshake failed")
                        continue
                    if payload == b"SECOND-VERSION":
                        payload = version(f"mallory{index}") * (2 if mode == "first" else 1)
                    client.send(payload)
                    bench.tick()
                    violation = expected == "violation" or (expected == "early" and mode == "first")
                    if violation:
                        results[mode].append("closed" if client.waitClosed(10) else "kept open")
                    else:
                        served = (mode == "after" or client.handshake(f"mallory{index}")) and (
                            client.ping(4242)
                        )
                        results[mode].append("served" if served else "closed")
                finally:
                    client.close()
        wanted = {
            "violation": ("closed", "closed"),
            "tolerated": ("served", "served"),
            "early": ("closed", "served"),
        }[expected]
        ok = all(r == wanted[0] for r in results["first"]) and all(
            r == wanted[1] for r in results["after"]
        )
        n = len(payloads)

        def tally(mode: str) -> str:
            counts = Counter(results[mode])
            return ", ".join(f"{c}/{n} {r}" for r, c in counts.most_common())

        sent = f"{what}; each as the first line, and after a handshake ({2 * n} connections)"
        seen = f"first: {tally('first')}; after handshake: {tally('after')}"
        return sent, seen, ok

    case.__name__ = name
    return case


def endlessLine(bench: Bench, chunk: int, pause: float, how: str):
    """
    A line that never ends, after a handshake, C{chunk} bytes at a time; a
    fresh client is served (or not) half-way.
    """
    client = bench.client()
    during = None
    try:
        client.handshake("mallory")
        sent = 0
        client.send(b'{"type":"junk","pad":"')
        started = time.monotonic()
        while sent < 2 * LIMIT and time.monotonic() - started < 30:
            if not client.send(b"x" * chunk):
                break
            sent += chunk
            client.readOnce(pause)
            bench.tick()
            if client.closed:
                break
            if during is None and sent >= LIMIT // 2:
                during = bench.probe(5.0)
        closed = client.closed or client.waitClosed(5)
        seconds = time.monotonic() - started
    finally:
        client.close()
    size = f"{chunk // 1024} KiB" if chunk >= 1024 else f"{chunk} bytes"
    sent_ = f"after a handshake, a line that never ends: {size} {how} (at most {2 * LIMIT} bytes)"
    seen = (
        (f"closed after {sent / 1024:.0f} KiB, {seconds:.1f} s" if closed
         else f"NOT closed after {sent / 1024:.0f} KiB")
        + "; a fresh client half-way: "
        + (f"served in {during:.0f} ms" if during is not None and during < 1000
           else f"served after {during / 1000:.1f} s (in place of a connection silent for 10 s)"
           if during is not None else "NOT served")
    )
    # (What was sent includes what was still in the kernel's buffers when
    # the node read past the limit.)
    return sent_, seen, closed and sent < 2 * LIMIT


def slowLine(bench: Bench):
    return endlessLine(bench, bench.size("slow_line_chunk"), 0.01, "every 10 ms")


def smallChunkLine(bench: Bench):
    return endlessLine(
        bench, bench.size("small_line_chunk"), 0.0005, "at a time, as fast as the node reads"
    )


def bigLines(bench: Bench):
    """
    Every free slot holds an unfinished line just under the limit, at once.
    """
    rounds = bench.size("big_line_rounds")
    count = MAX_CONNECTIONS - 1  # the honest peer holds the last slot
    body = padded("junk", LIMIT)
    served = 0
    for r in range(rounds):
        clients = []
        try:
            for i in range(count):
                # 4 a /16 at most: the inbound group cap of 16 slots.
                client = bench.client(f"127.{150 + i // 4}.{bench.group}.{r * 8 + i % 4 + 1}")
                clients.append(client)
                client.handshake(f"mallory{i}")
            for client in clients:
                client.send(body[:-1])  # all but the last byte: held by the node
                bench.tick()
            hold = time.monotonic() + 1.0
            while time.monotonic() < hold:
                bench.tick()
                time.sleep(0.02)
            for client in clients:
                client.send(body[-1:] + b"\n")
            for n, client in enumerate(clients):
                served += client.ping(n, 10)
                bench.tick()
        finally:
            for client in clients:
                client.close()
        wait_for(lambda: bench.settled(1), 5)
    total = rounds * count
    seen = f"{served}/{total} kept and answered a ping after their line"
    sent_ = (
        f"{count} connections (every free slot), each an unfinished line of {LIMIT - 1} bytes, "
        f"held 1 s, then ended (exactly the limit); {rounds} round(s)"
    )
    return sent_, seen, served == total


def discourage(bench: Bench):
    """
    Five violations from one host, then a sixth connection from it.
    """
    host = bench.source()
    closed = 0
    for _ in range(5):
        client = bench.client(host)
        try:
            client.send(b"not json\n")
            closed += client.waitClosed(5)
        finally:
            client.close()
    client = bench.client(host)
    try:
        handshook = client.handshake("mallory") and client.ping(1)
    finally:
        client.close()
    seen = (
        f"{closed}/5 closed; a 6th connection from the host: "
        + ("served (a discouraged host may take a free slot)" if handshook else "not served")
    )
    return "5 invalid lines from one host, each on its own connection; then a 6th connection", seen, closed == 5


def pingFlood(bench: Bench):
    count = bench.size("pings")
    client = bench.client()
    try:
        client.handshake("mallory")
        data = memoryview(b"".join(ping(i) for i in range(count)))
        sock = client.sock
        sock.setblocking(False)
        sent, buffer, pongs = 0, b"", []
        closed = False
        started = time.perf_counter()
        deadline = time.monotonic() + max(20.0, count / 1000)
        while (sent < len(data) or len(pongs) < count) and not closed and time.monotonic() < deadline:
            readable, writable, _ = select.select(
                [sock], [sock] if sent < len(data) else [], [], 0.2
            )
            if writable:
                try:
                    sent += sock.send(data[sent : sent + 65536])
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
            if readable:
                try:
                    chunk = sock.recv(1 << 20)
                except BlockingIOError:
                    chunk = None
                except OSError:
                    chunk = b""
                if chunk == b"":
                    closed = True
                elif chunk:
                    buffer += chunk
                    *done, buffer = buffer.split(b"\n")
                    for each in done:
                        if b'"pong"' in each:
                            pongs.append(json.loads(each)["nonce"])
            bench.tick()
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    inOrder = pongs == list(range(count))
    seen = (
        f"{len(pongs)} pongs{' in order' if inOrder else ''} in {elapsed:.2f} s "
        f"({count / elapsed:,.0f} pings/s); {'CLOSED' if closed else 'kept open'}"
    )
    sent_ = f"{count} pings as fast as the socket takes them, after a handshake, reading the pongs"
    return sent_, seen, inOrder and not closed


def bookSize(daemon: Daemon) -> int:
    figures = daemon.metrics()
    return int(
        figures['bitp2p_known_addresses{table="new"}'] + figures['bitp2p_known_addresses{table="tried"}']
    )


_freshAddress = iter(range(10**6))


def freshAddresses(count: int) -> list[dict]:
    """
    Routable addresses never sent before, one /16 each, seen now.
    """
    now = int(time.time())
    result = []
    for _ in range(count):
        k = next(_freshAddress)
        result.append({"addr": f"{11 + k // 250 % 200}.{k % 250}.{k // 50000}.1:8333", "time": now})
    return result


def addrFlood(bench: Bench):
    messages = bench.size("addr_messages")
    before, honestBefore = bookSize(bench.victim), bookSize(bench.honest)
    client = bench.client()
    started = time.monotonic()
    try:
        client.handshake("mallory")
        for start in range(0, messages, 50):
            batch = b"".join(
                line({"type": "addr", "peers": freshAddresses(10)})
                for _ in range(min(50, messages - start))
            )
            client.send(batch)
            bench.tick()
        answered = client.ping(77, 15)
        seconds = time.monotonic() - started
    finally:
        client.close()
    time.sleep(0.3)  # the relay to the honest node
    grown, honestGrown = bookSize(bench.victim) - before, bookSize(bench.honest) - honestBefore
    allowed = RELAY_MAX_ENTRIES + int(ADDR_RATE_PER_S * seconds) + 1
    seen = (
        f"ping answered after it: {'yes' if answered else 'NO'}; victim's book +{grown} "
        f"(token bucket allows {RELAY_MAX_ENTRIES} + {ADDR_RATE_PER_S:g}/s); "
        f"honest node's book +{honestGrown} (relayed)"
    )
    sent_ = f"{messages} addr of 10 fresh routable addresses each ({messages * 10}), after a handshake"
    return sent_, seen, answered and 0 < grown <= allowed


def addrFloodMany(bench: Bench):
    connections = bench.size("addr_connections")
    before = bookSize(bench.victim)
    answered = 0
    started = time.monotonic()
    for i in range(connections):
        # A /16 of its own for each, so that no group cap refuses it.
        client = bench.client(f"127.{150 + i}.{bench.group}.1")
        try:
            client.handshake(f"mallory{i}")
            client.send(b"".join(line({"type": "addr", "peers": freshAddresses(10)}) for _ in range(10)))
            answered += client.ping(i)
        finally:
            client.close()
        bench.tick()
    seconds = time.monotonic() - started
    time.sleep(0.3)
    grown = bookSize(bench.victim) - before
    allowed = connections * (RELAY_MAX_ENTRIES + int(ADDR_RATE_PER_S * seconds) + 1)
    seen = (
        f"{answered}/{connections} served; victim's book +{grown} "
        f"(at most {RELAY_MAX_ENTRIES} per connection: {connections * RELAY_MAX_ENTRIES})"
    )
    sent_ = (
        f"{connections} connections from {connections} /16s, one after the other, "
        "each 10 addr of 10 fresh addresses"
    )
    return sent_, seen, answered == connections and grown <= allowed


def getaddrFlood(bench: Bench):
    count = bench.size("getaddrs")
    own = f"{LOOPBACK}:{bench.victim.port}"
    client = bench.client()
    try:
        client.handshake("mallory")
        for start in range(0, count, 500):
            client.send(line({"type": "getaddr"}) * min(500, count - start))
            bench.tick()
        answered = client.ping(99, 15)
    finally:
        client.close()
    answers = sizes = 0
    for m in client.messages:
        if m.get("type") != "addr":
            continue
        entries = [e["addr"] if isinstance(e, dict) else e for e in m.get("peers", [])]
        if entries != [own]:  # not the node advertising itself
            answers += 1
            sizes = len(entries)
    seen = f"{answers} addr answer ({sizes} addresses); ping after: {'answered' if answered else 'NO'}"
    return f"{count} getaddr after a handshake, then a ping", seen, answered and answers == 1


def connectionFlood(bench: Bench, sources, label: str):
    """
    Connection attempts at a steady pace (C{connection_attempts} over
    C{flood_seconds}), from non-blocking sockets; what the node accepts is
    held open and silent until the end.
    """
    attempts = bench.size("connection_attempts")
    seconds = bench.size("flood_seconds")
    target = (LOOPBACK, bench.victim.port)
    selector = selectors.DefaultSelector()
    stats: Counter = Counter()
    live: set = set()
    addresses: set = set()

    def drop(s) -> None:
        selector.unregister(s)
        live.discard(s)
        s.close()

    def handle(timeout: float) -> None:
        for key, _ in selector.select(timeout):
            s = key.fileobj
            if key.data == "connecting":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    stats["failed"] += 1
                    drop(s)
                else:
                    stats["connected"] += 1
                    selector.modify(s, selectors.EVENT_READ, "open")
            else:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    stats["closed by the node"] += 1
                    drop(s)

    launched = 0
    started = time.perf_counter()
    try:
        while launched < attempts and time.perf_counter() - started < seconds + 5:
            due = min(attempts, int(attempts * (time.perf_counter() - started) / seconds) + 1)
            while launched < due:
                source = sources(launched)
                addresses.add(source)
                launched += 1
                s = socket.socket()
                s.setblocking(False)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
                try:
                    s.bind((source, 0))
                except OSError as e:
                    stats[f"bind {errno.errorcode.get(e.errno, e.errno)}"] += 1
                    s.close()
                    continue
                err = s.connect_ex(target)
                if err not in (0, errno.EINPROGRESS):
                    stats[f"connect {errno.errorcode.get(err, err)}"] += 1
                    s.close()
                    continue
                selector.register(s, selectors.EVENT_WRITE, "connecting")
                live.add(s)
            handle(0.001)
            bench.tick()
        launchSeconds = time.perf_counter() - started
        # Let the node deal with the burst, still holding what it kept.
        hold = bench.size("flood_hold_seconds")
        settle = time.monotonic() + hold
        while time.monotonic() < settle:
            handle(0.05)
            bench.tick()
        figures = bench.victim.metrics()
        connections = int(
            figures["bitp2p_connections_handshaking"] + bench.victim.call("getconnectioncount")
        )
        held = len(live)
        # A newcomer while the attacker still holds its connections.
        probeSeconds = bench.size("flood_probe_seconds")
        during = bench.probe(probeSeconds)
    finally:
        for s in list(live):
            drop(s)
        selector.close()
    rate = launched / launchSeconds if launchSeconds else 0
    details = ", ".join(f"{n} {what}" for what, n in stats.most_common() if what != "connected")
    seen = (
        f"{stats['connected']} connected, {details or 'none closed'}; still open {hold:g} s later: "
        f"{held}; the node's connections then: {connections} (limit {MAX_CONNECTIONS}); "
        "a fresh client meanwhile: "
        + (f"served in {during:.0f} ms" if during is not None and during < 1000
           else f"served after {during / 1000:.1f} s (in place of a connection silent for 10 s)"
           if during is not None
           else f"NOT served in {probeSeconds:g} s ({bench.probeTries} tries, refused: every slot"
           " held by a silent connection)")
    )
    sent_ = (
        f"{launched} connection attempts in {launchSeconds:.2f} s ({rate:,.0f}/s) {label(addresses)}, "
        "each held silent, all closed at the end"
    )
    return sent_, seen, connections <= MAX_CONNECTIONS


def connectionFloodOne(bench: Bench):
    host = bench.source()
    return connectionFlood(bench, lambda i: host, lambda used: f"from one address ({host})")


def connectionFloodMany(bench: Bench):
    def source(i: int) -> str:
        # 100 /16s, 250 hosts in each at most
        return f"127.{150 + i % 100}.{bench.group}.{i // 100 % 250 + 1}"

    def label(used: set) -> str:
        groups = {a.rsplit(".", 2)[0] for a in used}
        return f"from {len(used)} addresses in {len(groups)} /16s"

    return connectionFlood(bench, source, label)


def nonReader(bench: Bench):
    """
    A peer that never reads, sending pings whose pongs the node must write.
    """
    seconds = bench.size("nonreader_seconds")
    client = bench.client(rcvbuf=4096)

    def info() -> dict | None:
        for peer in bench.victim.call("getpeerinfo"):
            if peer["remote"] == local:
                return peer
        return None

    try:
        client.handshake("mallory")
        local = client.local
        sock = client.sock
        sock.setblocking(False)
        sent = 0
        data = b"".join(ping(n) for n in range(1000))
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            try:
                sent += sock.send(data)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break
            bench.tick()
        first = info()
        time.sleep(0.5)
        second = info()
    finally:
        client.close()
    sent_ = f"after a handshake, pings for {seconds:g} s, reading nothing (receive buffer 4 KiB)"
    if second is None:
        return sent_, f"dropped by the node; we sent {sent / 1024:.0f} KiB", True
    stopped = first is not None and first["bytesrecv"] == second["bytesrecv"]
    seen = (
        ("the node stopped reading it (backpressure)" if stopped else "the node still reading it")
        + f": it took {second['bytesrecv'] / 1024:.0f} KiB of pings and wrote "
        f"{second['bytessent'] / 1024:.0f} KiB of pongs (mostly in kernel buffers); "
        f"we got {sent / 1024:.0f} KiB into our socket; still connected after {seconds:g} s "
        f"(its ping timeout, {PING_TIMEOUT_S} s, would drop it; the "
        f"{MAX_SEND_BUFFER_BYTES // 2**20} MiB 'not reading' limit is never reached: a "
        "daemon only writes to a peer what that peer asks for, and stops reading it)"
    )
    return sent_, seen, stopped


def dribble(bench: Bench):
    seconds = bench.size("dribble_seconds")
    client = bench.client()
    data = version("mallory") + VERACK
    sent = 0
    try:
        started = time.monotonic()
        while sent < len(data) and time.monotonic() - started < seconds:
            if not client.send(data[sent : sent + 1]):
                break
            sent += 1
            client.readOnce(1.0)
            bench.tick()
            if client.closed:
                break
        closed = client.closed
    finally:
        client.close()
    seen = (
        f"{sent} bytes in {seconds:g} s; "
        + ("CLOSED by the node" if closed else f"held (its handshake timeout is {HANDSHAKE_TIMEOUT_S} s)")
    )
    return f"a version, one byte per second, for {seconds:g} s", seen, not closed


def claimedId(bench: Bench, node_id: str, what: str, closedSeen: str):
    """
    A version claiming C{node_id}, which the node must refuse.
    """
    client = bench.client()
    try:
        client.send(version(node_id, port=4444) + VERACK)
        closed = client.waitClosed(5)
    finally:
        client.close()
    return f"a version carrying {what}", closedSeen if closed else "KEPT OPEN", closed


def selfConnection(bench: Bench):
    return claimedId(bench, bench.victim.node_id, "the victim's own node_id", "closed")


def duplicateId(bench: Bench):
    return claimedId(bench, bench.honest.node_id, "the honest peer's node_id", "the newer connection closed")


CASES = [malformedCase(*spec) for spec in MALFORMED] + [
    slowLine,
    smallChunkLine,
    bigLines,
    discourage,
    pingFlood,
    addrFlood,
    addrFloodMany,
    getaddrFlood,
    connectionFloodOne,
    connectionFloodMany,
    nonReader,
    dribble,
    selfConnection,
    duplicateId,
]

CASE_NAMES = {
    "slowLine": "endless-line",
    "smallChunkLine": "endless-line-small-chunks",
    "bigLines": "limit-lines-every-slot",
    "discourage": "five-violations",
    "pingFlood": "ping-flood",
    "addrFlood": "addr-flood",
    "addrFloodMany": "addr-flood-many",
    "getaddrFlood": "getaddr-repeated",
    "connectionFloodOne": "conn-flood-one-addr",
    "connectionFloodMany": "conn-flood-many-addrs",
    "nonReader": "never-reads",
    "dribble": "byte-per-second",
    "selfConnection": "self-connection",
    "duplicateId": "duplicate-node-id",
}


def caseName(case) -> str:
    return CASE_NAMES.get(case.__name__, case.__name__)


# -- running ------------------------------------------------------------------------


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def runCase(bench: Bench, index: int, case) -> dict:
    victim = bench.victim
    bench.newCase(index)
    settle = bench.size("settle_seconds")
    wait_for(lambda: bench.settled(1), settle)
    pid = victim.pid
    resetOk = resetPeak(pid)
    rss0, fds0 = proc_status(pid, "VmRSS"), descriptors(pid)
    bench.peakKiB = rss0
    figures0 = victim.metrics()
    cpu0 = cpu_seconds(pid)
    victim.newLog()
    row = {"case": caseName(case)}
    try:
        sent, seen, expected = case(bench)
    except Exception as e:  # the case itself broke: report it, go on
        sent, seen, expected = "(case failed)", f"{type(e).__name__}: {e}", False
    ended = time.perf_counter()
    alive = victim.alive
    row["alive"] = alive
    if not alive:
        row.update(sent=sent, did=seen + "; THE NODE DIED", expected=False, kept=False,
                   recover=None, rss="", fds="")
        return row
    try:
        probeStart = time.perf_counter()
        recover = bench.probe()
        if recover is not None:
            recover += (probeStart - ended) * 1000  # from the end of the attack
        cpu = cpu_seconds(pid) - cpu0
        wait_for(lambda: bench.settled(1), settle)
        bench.tick()
        rss1, fds1 = proc_status(pid, "VmRSS"), descriptors(pid)
        peak = max(bench.peakKiB, proc_status(pid, "VmHWM") if resetOk else 0, rss1)
        figures1 = victim.metrics()
        logLines = victim.newLog()
        logged, errors = summarizeLog(logLines, bench.honest.node_id)
        kept, why = bench.honestKept()
        delta = {
            "violations": figures1["bitp2p_protocol_violations_total"]
            - figures0["bitp2p_protocol_violations_total"],
            "handshake failures": figures1["bitp2p_handshake_failures_total"]
            - figures0["bitp2p_handshake_failures_total"],
        }
        counters = ", ".join(
            f"+{n:.0f} {what if n > 1 else what[:-1]}" for what, n in delta.items() if n
        )
        did = "; ".join(
            part
            for part in (
                seen if expected else f"UNEXPECTED: {seen}",
                counters or "counters unchanged",
                logged,
                f"CPU {cpu:.2f} s",
                why,
            )
            if part
        )
        row.update(
            sent=sent,
            did=did,
            expected=expected,
            kept=kept,
            recover=recover,
            rss=f"{mib(rss0)} -> {mib(rss1)} ({mib(peak)})",
            fds=f"{fds0} -> {fds1}",
            errors=errors,
        )
    except Exception as e:  # the node died meanwhile, or answers no more
        alive = victim.alive
        row.update(
            alive=alive, sent=sent, expected=False, kept=False, recover=None, rss="", fds="",
            did=f"{seen}; measuring after the attack failed: {type(e).__name__}: {e}"
            + ("" if alive else "; THE NODE DIED"),
        )
        return row
    if not kept:
        # Let the honest node come back, for the next cases.
        if wait_for(lambda: bench.honestOnVictim() is not None, 30, 0.2):
            bench.honestConnection = bench.honestOnVictim()
    return row


def rstTable(rows: list[dict]) -> str:
    headers = [
        "case", "what was sent", "what the node did", "RSS before -> after (peak) MiB",
        "fds before -> after", "honest peer kept", "time to recover ms",
    ]
    widths = [max([22] + [len(row["case"]) for row in rows]), 44, 60, 16, 9, 7, 9]
    cells = []
    for row in rows:
        recover = "" if row.get("recover") is None else f"{row['recover']:.0f}"
        if row.get("recover") is None and row.get("alive", True):
            recover = "never"
        cells.append([
            row["case"], row["sent"], row["did"], row.get("rss", ""), row.get("fds", ""),
            "yes" if row.get("kept") else "NO", recover,
        ])

    def wrap(text: str, width: int) -> list[str]:
        # Escaped for RST: inline markup characters, and an underscore that
        # would end a reference name ("0-9_-" in a logged reason).
        text = re.sub(r"([\\*`|])", r"\\\1", text)
        text = re.sub(r"(?<=\w)_(?!\w)", r"\\_", text)
        return textwrap.wrap(text, width, break_on_hyphens=False) or [""]

    wrappedHeaders = [wrap(h, w) for h, w in zip(headers, widths)]
    wrappedRows = [[wrap(c, w) for c, w in zip(cells_, widths)] for cells_ in cells]
    widths = [
        max([w] + [len(x) for r in [wrappedHeaders] + wrappedRows for x in r[i]])
        for i, w in enumerate(widths)
    ]

    def border(char: str) -> str:
        return "+" + "+".join(char * (w + 2) for w in widths) + "+"

    def render(wrapped: list[list[str]]) -> list[str]:
        height = max(len(c) for c in wrapped)
        out = []
        for i in range(height):
            out.append(
                "|" + "|".join(
                    f" {(c[i] if i < len(c) else ''):<{w}} " for c, w in zip(wrapped, widths)
                ) + "|"
            )
        return out

    lines = [border("-"), *render(wrappedHeaders), border("=")]
    for wrapped in wrappedRows:
        lines += render(wrapped)
        lines.append(border("-"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of < 30 s")
    parser.add_argument("--only", nargs="+", metavar="CASE", help="run only these cases")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    if args.list:
        for case in CASES:
            print(caseName(case))
        return
    cases = CASES
    if args.only:
        unknown = set(args.only) - {caseName(c) for c in CASES}
        if unknown:
            parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
        cases = [c for c in CASES if caseName(c) in args.only]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 16384) if hard != resource.RLIM_INFINITY else 16384
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

    bench = Bench(args.quick)
    rows: list[dict] = []
    startedAt = time.monotonic()
    try:
        bench.start()
        print(
            f"attacks: victim pid {bench.victim.pid} on {LOOPBACK}:{bench.victim.port} "
            f"(node {bench.victim.node_id[:12]}), honest pid {bench.honest.pid} "
            f"(node {bench.honest.node_id[:12]}) connected; "
            f"{'quick' if args.quick else 'full'} run of {len(cases)} cases",
            flush=True,
        )
        for index, case in enumerate(cases):
            row = runCase(bench, index, case)
            rows.append(row)
            recover = "never" if row["recover"] is None else f"{row['recover']:.0f} ms"
            print(
                f"{row['case']}: {row['sent']} | {row['did']} | RSS {row['rss']} MiB | "
                f"fds {row['fds']} | honest kept: {'yes' if row['kept'] else 'NO'} | "
                f"recovered in {recover}",
                flush=True,
            )
            for error in row.get("errors", [])[:5]:
                print(f"    log: {error}", flush=True)
            if not row["alive"]:
                break
        up = bench.victim.alive and bench.victim.ready() and bench.probe(10) is not None
    finally:
        bench.close()
    print()
    print(rstTable(rows))
    print()
    kept = sum(bool(r.get("kept")) for r in rows)
    unexpected = [r["case"] for r in rows if not r.get("expected")]
    print(
        f"attacks: {len(rows)} cases, node up after all: {'yes' if up else 'NO'}, "
        f"honest peer kept in {kept} of {len(rows)}"
        + (f"; unexpected outcomes: {', '.join(unexpected)}" if unexpected else "")
        + f"; {time.monotonic() - startedAt:.0f} s"
    )
    sys.exit(0 if up and kept == len(rows) and len(rows) == len(cases) else 1)


if __name__ == "__main__":
    main()
