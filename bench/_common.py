"""
Shared pieces of the benchmarks: a load process that speaks the protocol
with plain sockets, medians, and one-line reports.

Each benchmark measures bitp2p and a bare-Twisted baseline in the same run,
alternating, and reports medians and their ratio: the machines here are
shared and noisy, so absolute figures vary while ratios hold.

C{--reactor {default,asyncio,uvloop}} (L{addReactorOption}, L{useReactor})
runs every process of a benchmark on the same reactor: the bitp2p side, the
bare Twisted side and the load generators alike. The choice travels to the
child processes in C{BITP2P_BENCH_REACTOR}, and each process installs it when
it imports this module, before anything imports C{twisted.internet.reactor}.
(The same choice as C{bitp2p.ops.uvloopreactor}'s, written again here so
that the bare Twisted side imports nothing of bitp2p.)
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

if os.environ.get("BITP2P_BENCH_STDLIB_JSON"):
    # Hide orjson from this process (bitp2p's codec included).
    sys.modules["orjson"] = None  # type: ignore[assignment]

try:
    from orjson import loads

    JSON_LIBRARY = "orjson"
except ImportError:
    from json import loads

    JSON_LIBRARY = "json (standard library)"

REACTORS = ("default", "asyncio", "uvloop")
REACTOR_VARIABLE = "BITP2P_BENCH_REACTOR"


def installReactor(name: str) -> None:
    """
    Install reactor C{name} in this process: C{default} leaves it to
    Twisted (epoll on Linux); C{asyncio} is Twisted's asyncio reactor on a
    new standard asyncio event loop; C{uvloop} the same on a new uvloop loop.
    It must run before anything imports C{twisted.internet.reactor}.
    """
    if name == "default":
        return
    if name not in REACTORS:
        raise ValueError(f"unknown reactor {name!r}: one of {', '.join(REACTORS)}")
    import asyncio

    from twisted.internet import asyncioreactor

    if name == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)


def addReactorOption(parser) -> None:
    """
    Give an C{argparse} parser the C{--reactor} option.
    """
    parser.add_argument(
        "--reactor",
        choices=REACTORS,
        default=os.environ.get(REACTOR_VARIABLE) or "default",
        help="the reactor of every process of the benchmark: Twisted's default (epoll), "
        "Twisted's asyncio reactor, or that on uvloop (default: %(default)s)",
    )


def useReactor(name: str) -> None:
    """
    Run this process and the ones it starts from now on with reactor
    C{name} (this process's own is installed at once, if it has none yet).
    """
    os.environ[REACTOR_VARIABLE] = name
    if "twisted.internet.reactor" not in sys.modules:
        installReactor(name)


def reactorDescription() -> str:
    """
    The reactor this process runs on, and its asyncio loop if it has one:
    C{"EPollReactor"}, C{"AsyncioSelectorReactor on uvloop.Loop"}, ...
    """
    from twisted.internet import reactor

    text = type(reactor).__name__
    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is not None:
        text += f" on {type(loop).__module__}.{type(loop).__qualname__}"
    return text


# A child process of a benchmark: install the parent's choice before the
# script goes on to import the reactor.
if os.environ.get(REACTOR_VARIABLE, "default") != "default":
    installReactor(os.environ[REACTOR_VARIABLE])

MESSAGE = {"type": "bench", "seq": 0, "payload": "x" * 60, "from": "bench-sender"}


def message_line(seq: int = 0) -> bytes:
    """
    A ~100-byte application message, encoded as on the wire.
    """
    return json.dumps({**MESSAGE, "seq": seq}, separators=(",", ":")).encode() + b"\n"


def handshake(sock: socket.socket, node_id: str = "bench-load") -> None:
    """
    Do the version/verack handshake on a connected socket, by hand.
    """
    sock.sendall(
        json.dumps({"type": "version", "node_id": node_id, "port": 0}).encode() + b"\n"
    )
    buffer = b""
    seen = set()
    while not {"version", "verack"} <= seen:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        seen.update(json.loads(line)["type"] for line in lines if line)
    sock.sendall(b'{"type":"verack"}\n')


def spawn(*args: str) -> subprocess.Popen:
    """
    Run this benchmark's load side in another process.
    """
    return subprocess.Popen([sys.executable, *args], env={**os.environ, "PYTHONHASHSEED": "0"})


HOG_CODE = "while True: pass"


def add_hog_option(parser) -> None:
    """
    Add C{--hog} to a benchmark's C{argparse} parser.
    """
    parser.add_argument(
        "--hog",
        action="store_true",
        help="run with a CPU hog (a busy Python loop) pinned to one core, to "
        "measure on a busy machine",
    )


@contextlib.contextmanager
def cpu_hog(enabled: bool = True, core: int | None = None):
    """
    While the block runs, keep one core busy with a C{while True: pass}
    subprocess pinned to it (C{os.sched_setaffinity}; the last core unless
    C{core} is given), as other work on a shared machine would; it is killed
    at the end. Nothing else is pinned: the benchmark's own processes go
    where the scheduler puts them. Does nothing when not C{enabled}.
    """
    if not enabled:
        yield None
        return
    if core is None:
        core = max(os.sched_getaffinity(0))
    hog = subprocess.Popen([sys.executable, "-c", HOG_CODE])
    try:
        os.sched_setaffinity(hog.pid, {core})
        print(f"CPU hog: pid {hog.pid} pinned to core {core}", flush=True)
        yield hog
    finally:
        hog.kill()
        hog.wait()


def alternating_runs(runs: int, argv_of) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """
    Run C{argv_of(side)} (a child process that prints C{"<rate> <rate per
    CPU second>"} on its last line) C{runs} times for each side, bitp2p and
    bare, alternating which goes first so that neither always meets a
    machine that has just been busy (or idle).

    @return: the rates and the rates per CPU second, by side.
    """
    results: dict[str, list[float]] = {"bitp2p": [], "bare": []}
    perCPU: dict[str, list[float]] = {"bitp2p": [], "bare": []}
    for run in range(runs):
        for side in list(results)[:: 1 if run % 2 else -1]:
            out = subprocess.run(
                argv_of(side), check=True, capture_output=True, text=True, timeout=600
            ).stdout
            wall, cpu = out.strip().splitlines()[-1].split()
            results[side].append(float(wall))
            perCPU[side].append(float(cpu))
    return results, perCPU


def report(name: str, unit: str, ours: list[float], bare: list[float], target: float) -> None:
    """
    Print medians, the ratio of medians and whether it meets the target.
    """
    m_ours, m_bare = statistics.median(ours), statistics.median(bare)
    ratio = m_ours / m_bare
    verdict = "meets" if ratio >= target else "misses"
    print(
        f"{name}: bitp2p {m_ours:,.0f} {unit}, bare Twisted {m_bare:,.0f} {unit}, "
        f"ratio {ratio:.2f} ({verdict} the target {target}); "
        f"medians of {len(ours)} runs each"
    )


def report_informational_per_cpu(per: str, unit: str, perCPU: dict[str, list[float]]) -> None:
    """
    Print the medians of C{perCPU} (C{"bitp2p"} and C{"bare"}: C{unit} per
    second of the C{per} process's CPU time) and their ratio, which no
    target is set for.
    """
    ours, bare = statistics.median(perCPU["bitp2p"]), statistics.median(perCPU["bare"])
    print(
        f"  per {per} CPU second (informational): bitp2p {ours:,.0f} {unit}, "
        f"bare Twisted {bare:,.0f} {unit}, ratio {ours / bare:.2f}"
    )


def rpc_get(port: int, password: str, path: str = "/", body: bytes | None = None,
            timeout: float = 10.0) -> bytes:
    """
    One request to the control API of a node on 127.0.0.1:C{port} (user
    C{bitp2p}): a POST of C{body}, or a GET without one; the answer's body.

    @raise OSError: when the node cannot be reached or answers an error.
    """
    auth = base64.b64encode(f"bitp2p:{password}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers={"Authorization": f"Basic {auth}"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def rpc(port: int, password: str, method: str, params=(), timeout: float = 10.0) -> object:
    """
    Call a control API method of the node on 127.0.0.1:C{port}; its result.
    """
    body = json.dumps({"method": method, "params": list(params)}).encode()
    return json.loads(rpc_get(port, password, body=body, timeout=timeout))["result"]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """
    C{count} TCP ports free on C{host} just now (bound together, so all
    different, then released for the caller's processes to take).
    """
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind((host, 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def proc_status(pid: int, field: str) -> int:
    """
    A number of C{/proc/PID/status} (Linux), such as C{VmRSS} or C{VmHWM}
    in KiB; 0 if absent.
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def descriptors(pid: int) -> int:
    """
    The file descriptors process C{pid} has open (Linux).
    """
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(predicate, seconds: float, step: float = 0.05) -> bool:
    """
    Poll C{predicate} every C{step} seconds until it is true or C{seconds}
    have passed (an C{OSError} from it counts as false: a process still
    starting); whether it came true.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(step)
    try:
        return bool(predicate())
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """
    CPU time (user + system) used so far by process C{pid}, from
    C{/proc/PID/stat} (Linux), in seconds; its resolution is one clock tick
    (C{os.sysconf("SC_CLK_TCK")}, usually 1/100 s).
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces and parentheses: count the
    # fields from the last ")". utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def report_per_cpu(
    name: str,
    unit: str,
    ours_wall: list[float],
    bare_wall: list[float],
    ours_cpu: list[float],
    bare_cpu: list[float],
    target: float,
) -> None:
    """
    Print two figures for a server benchmark: C{unit} per wall-clock second
    (informational: it is bounded by the load generator as much as by the
    server) and C{unit} per second of the server process's CPU time, whose
    ratio of medians is judged against the target.
    """
    median = statistics.median
    w_ours, w_bare = median(ours_wall), median(bare_wall)
    c_ours, c_bare = median(ours_cpu), median(bare_cpu)
    ratio = c_ours / c_bare
    verdict = "meets" if ratio >= target else "misses"
    print(
        f"{name} per wall-clock second (informational, load-bound): "
        f"bitp2p {w_ours:,.0f} {unit}/s, bare Twisted {w_bare:,.0f} {unit}/s, "
        f"ratio {w_ours / w_bare:.2f}"
    )
    print(
        f"{name} per server CPU second (judged): "
        f"bitp2p {c_ours:,.0f} {unit}, bare Twisted {c_bare:,.0f} {unit}, "
        f"ratio {ratio:.2f} ({verdict} the target {target}); "
        f"medians of {len(ours_cpu)} runs each"
    )
