"""
The harness of C{bench/attacks.py}: the victim and honest node processes,
plain-socket clients, and the measurements around each case.

Owns starting and stopping the two C{twistd -n bitp2p} processes (L{Daemon})
and reading their control API, metrics and log; the blocking TCP L{Client}
bound to a loopback source address, with the few wire lines the cases
build on (L{line}, L{version}, L{ping}, L{padded}); the L{Bench} every case
gets (source addresses, RSS sampling, the honest peer's connection,
recovery probes); and L{runCase}, which measures RSS, descriptors, CPU,
counters, the log and recovery around one case.

It knows no attack (those are L{attacklib.cases}) and formats no report
(L{attacklib.report}).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter

from _common import (
    cpu_seconds,
    descriptors,
    free_ports,
    proc_status,
    rpc,
    rpc_get,
    wait_for,
)

from bitp2p.constants import MAX_MESSAGE_BYTES

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
    "reconnect_seconds": (3.0, 30.0),
    "huge_host_messages": (20, 300),
    "one_byte_line_bytes": (16 * 1024, 256 * 1024),
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
    "lockout_warmup_s": (3.0, 20.0),
    "lockout_tries": (2, 10),
    # rpc-slowloris: how long the slow requests are kept up (the full run
    # past twice the control API's request deadline, 10 s), and the pause
    # between their bytes (well under the old idle timeout, 60 s).
    "rpc_slowloris_seconds": (4.0, 22.0),
    "rpc_slowloris_byte_every": (1.0, 5.0),
    "churn_seconds": (2.0, 10.0),
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
        The log lines written since the last call.
        """
        return self._readLog(consume=True).decode("utf-8", "replace").splitlines()

    def logWritten(self) -> int:
        """
        The bytes of log written since the last L{newLog} (whole lines),
        leaving them for the next L{newLog}.
        """
        return len(self._readLog(consume=False))

    def _readLog(self, consume: bool) -> bytes:
        """
        The log written since the last consuming read. twistd rotates its
        log file (to NAME.1, NAME.2, ...: every 1 MB before issue 16,
        every 10 MB now): the rest of the file read last is found by its
        inode among the rotated ones (lost if it was deleted: the daemon
        keeps only --log-max-files of them).
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
                if consume:
                    self._logInode, self._logOffset = inode, offset + end
                data = data[:end]
            chunks.append(data)
            offset = 0
        return b"".join(chunks)


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


# -- plain sockets -------------------------------------------------------------------


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


RST_LINGER = struct.pack("ii", 1, 0)
"""C{SO_LINGER} on, 0 s: C{close()} resets, no C{TIME_WAIT}."""


def connecting(source: str, target: tuple[str, int], stats: Counter) -> socket.socket | None:
    """
    A non-blocking socket bound to C{source} whose connection to C{target}
    is under way (it resets when closed), or L{None}, the failure counted
    in C{stats} (C{"bind EADDRNOTAVAIL"}, C{"connect ECONNREFUSED"}, ...).
    """
    s = socket.socket()
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
    try:
        s.bind((source, 0))
    except OSError as e:
        stats[f"bind {errno.errorcode.get(e.errno, e.errno)}"] += 1
        s.close()
        return None
    err = s.connect_ex(target)
    if err not in (0, errno.EINPROGRESS):
        stats[f"connect {errno.errorcode.get(err, err)}"] += 1
        s.close()
        return None
    return s


class Client:
    """
    A blocking TCP client bound to a chosen loopback source address, that
    collects the lines it receives.
    """

    def __init__(self, port: int, source: str, rcvbuf: int | None = None, timeout: float = 5.0):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
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
# A summary of repeated events (bitp2p.logs.RepeatedEvents, issue 16).
_SUMMARY = re.compile(r"\] ([^\]]+?): ([\d,]+) more in the last ")


def summarizeLog(lines: list[str], honestId: str, honestAt: str = "") -> tuple[str, list[str]]:
    """
    A short account of the log lines of one case, and the error lines.

    @param honestAt: where the victim sees the honest peer (C{host:port}):
        without TLS a node id is only a claim, and an attacker on another
        host may hold the honest peer's id too.
    """
    counts: Counter = Counter()
    reasons: Counter = Counter()
    summarised: Counter = Counter()
    errors = []
    for text in lines:
        if _ERRORS.search(text):
            errors.append(text)
        summary = _SUMMARY.search(text)
        if summary:
            summarised[summary.group(1)] += int(summary.group(2).replace(",", ""))
            continue
        if honestId and f"Disconnected from {honestId} at {honestAt}" in text:
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
    if summarised:
        parts.append(
            "summarised: " + ", ".join(f"{n} {kind.lower()}" for kind, n in summarised.items())
        )
    if errors:
        parts.append(f"{len(errors)} ERROR line(s)")
    if reasons:
        shown = "; ".join(
            f"{r!r}" + (f" x{n}" if n > 1 else "") for r, n in reasons.most_common(3)
        )
        more = len(reasons) - 3
        parts.append(f"({shown}{f'; +{more} more' if more > 0 else ''})")
    return ("logged: " + ", ".join(parts)) if parts else "logged nothing", errors


# -- running a case ------------------------------------------------------------------------


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def runCase(bench: Bench, index: int, name: str, case) -> dict:
    """
    Run C{case} (named C{name}) as the C{index}-th, and measure it: the
    victim's RSS and descriptors before and after, its peak RSS, CPU,
    counters and log during it, whether the honest peer was kept, and the
    time for a fresh client to be served after it.

    @return: the row of the report: C{case}, C{sent}, C{did}, C{expected},
        C{alive}, C{kept}, C{recover} (ms or L{None}), C{rss}, C{fds} and
        C{errors} (log lines).
    """
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
    row = {"case": name}
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
        logged, errors = summarizeLog(
            logLines, bench.honest.node_id, f"{LOOPBACK}:{bench.honest.port}"
        )
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
