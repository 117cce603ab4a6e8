"""
The attack cases of C{bench/attacks.py}: one function per attack, each
taking the L{Bench} and returning C{(what was sent, what the attacker saw,
whether that was the expected outcome)}.

Owns what each attack sends, from plain sockets, and what it counts as the
expected outcome: malformed input (L{MALFORMED}, through L{malformedCase}),
endless and limit-sized lines, floods of pings, addr, getaddr and
connections, slow peers and handshakes held by reconnecting sockets,
claimed identities, connection churn that fills the log, and the control
API's batches and slow requests; L{CASES} in the order they
run, and their names (L{caseName}). It does not start processes or measure
the victim around a case (L{attacklib.harness}), nor print anything
(L{attacklib.report}).
"""

from __future__ import annotations

import errno
import itertools
import json
import select
import selectors
import socket
import time
import urllib.error
from collections import Counter

from _common import free_ports, rpc_get, wait_for

from attacklib.harness import (
    LIMIT,
    LOOPBACK,
    MAX_CONNECTIONS,
    PASSWORD,
    RST_LINGER,
    VERACK,
    Bench,
    connecting,
    Daemon,
    line,
    padded,
    ping,
    version,
)
from attacklib.lockout import DRIBBLE, NO_VERACK, lockout
from bitp2p.constants import (
    ADDR_RATE_PER_S,
    HANDSHAKE_TIMEOUT_S,
    MAX_ADDR_ENTRIES,
    MAX_SEND_BUFFER_BYTES,
    PING_TIMEOUT_S,
    RELAY_MAX_ENTRIES,
)

try:
    from bitp2p.constants import ADDR_INITIAL_TOKENS
except ImportError:  # a tree before issue 16, item 5 (the "before" runs): 10
    ADDR_INITIAL_TOKENS = RELAY_MAX_ENTRIES

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
        "unknown-and-blank", "an unknown type; blank lines, and lines of spaces and tabs",
        [line({"type": "hello", "x": [1, {"y": None}]}), b"\n\r\n\n", b"   \n\t\n \t \r\n"],
        "tolerated",
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


def oneByteLine(bench: Bench):
    """
    Issue 16, item 6: a line sent one byte per write, never finished, on
    several connections at once. Each chunk of an unfinished line used to be
    kept as its own bytes object (8 to 17 times the line over real sockets);
    now the line is held in one bytearray of about its size.
    """
    size = bench.size("one_byte_line_bytes")
    clients = [bench.client() for _ in range(4)]
    try:
        for i, client in enumerate(clients):
            client.handshake(f"mallory{i}")
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.send(b'{"type":"junk","pad":"')
        for _ in range(size):
            for client in clients:
                client.send(b"x")
            bench.tick()
        for client in clients:
            client.readOnce(0.1)
        kept = not any(client.closed for client in clients)
    finally:
        for client in clients:
            client.close()
    seen = f"4 unfinished lines of {size // 1024} KiB each, held open: {'yes' if kept else 'NO'}"
    sent_ = f"4 connections, each a line of {size // 1024} KiB sent one byte per write, never ended"
    return sent_, seen, kept


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
    allowed = ADDR_INITIAL_TOKENS + int(ADDR_RATE_PER_S * seconds) + 1
    seen = (
        f"ping answered after it: {'yes' if answered else 'NO'}; victim's book +{grown} "
        f"(token bucket allows {ADDR_INITIAL_TOKENS} + {ADDR_RATE_PER_S:g}/s); "
        f"honest node's book +{honestGrown} (relayed)"
    )
    sent_ = f"{messages} addr of 10 fresh routable addresses each ({messages * 10}), after a handshake"
    return sent_, seen, answered and 0 < grown <= allowed


def hugeHosts(bench: Bench):
    """
    addr entries whose host is half a megabyte, each different (issue 16,
    item 1): before the fix each was remembered by the parse cache, about
    1 MB a message, 340 MB after 300, and never freed.
    """
    messages = bench.size("huge_host_messages")
    client = bench.client()
    try:
        client.handshake("mallory")
        for n in range(messages):
            host = f"198.51.100.1%{n}" + "A" * 500_000
            client.send(line({"type": "addr", "peers": [f"{host}:80"]}))
            bench.tick()
        answered = client.ping(78, 15)
    finally:
        client.close()
    seen = f"ping answered after them: {'yes' if answered else 'NO'} (each entry dropped, not a violation)"
    sent_ = f"{messages} addr of one entry each, a 500 KB host with a zone on IPv4, each different"
    return sent_, seen, answered


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
    allowed = connections * (ADDR_INITIAL_TOKENS + int(ADDR_RATE_PER_S * seconds) + 1)
    seen = (
        f"{answered}/{connections} served; victim's book +{grown} "
        f"(at most {ADDR_INITIAL_TOKENS} per connection at once: "
        f"{connections * ADDR_INITIAL_TOKENS})"
    )
    sent_ = (
        f"{connections} connections from {connections} /16s, one after the other, "
        "each 10 addr of 10 fresh addresses"
    )
    return sent_, seen, answered == connections and grown <= allowed


ATTACKER_OCTETS = range(212, 224)  # addrReconnectFlood's addresses: 212.0.0.1 and on


def reconnectAddresses(connection: int, count: int) -> list[dict]:
    """
    The C{count} fresh routable addresses the C{connection}-th connection
    of addrReconnectFlood sends, seen now: its C{j}-th in /16 number
    C{(connection + j) mod 3000} (212.0/16 to 223.249/16), so that whatever
    first few a token bucket takes are each in a /16 of its own; the host
    part is the connection's number, so that no address is sent twice.
    """
    now = int(time.time())
    first = ATTACKER_OCTETS.start
    host = f"{connection // 250 % 250}.{connection % 250 + 1}"
    result = []
    for j in range(count):
        q = (connection + j) % 3000
        result.append({"addr": f"{first + q // 250}.{q % 250}.{host}:8333", "time": now})
    return result


def addrReconnectFlood(bench: Bench):
    """
    Issue 16, item 5: about 40 connections a second from 8 /16s, each
    doing a handshake, sending one addr of 1000 fresh addresses and
    closing. Before the fix each new connection's token bucket held 10
    tokens, so reconnecting placed 10 addresses per connection (the outside
    probe filled 98 % of the new table in 30 s); now it holds 1, as
    Bitcoin Core's. Then a fresh client asks getaddr: what share of the
    answer is the attacker's.
    """
    seconds, rate, groups = bench.size("reconnect_seconds"), 40.0, 8
    figures = bench.victim.metrics()
    new0 = figures['bitp2p_known_addresses{table="new"}']
    before = bookSize(bench.victim)
    connections = served = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        due = started + connections / rate
        if time.monotonic() < due:
            time.sleep(due - time.monotonic())
        g, n = connections % groups, connections // groups
        client = bench.client(f"127.{200 + g}.{n // 250 % 250}.{n % 250 + 1}")
        try:
            if client.handshake(f"mallory{connections}"):
                client.send(line({"type": "addr",
                                  "peers": reconnectAddresses(connections, 1000)}))
                served += client.ping(connections)
        finally:
            client.close()
        connections += 1
        bench.tick()
    elapsed = time.monotonic() - started
    time.sleep(0.3)
    figures = bench.victim.metrics()
    new1 = figures['bitp2p_known_addresses{table="new"}']
    grown = bookSize(bench.victim) - before
    # What a fresh getaddr now gets (a random sample of the table).
    client = bench.client()
    share, answer = 0.0, 0
    try:
        if client.handshake("asker") and client.send(line({"type": "getaddr"})):
            own = f"{LOOPBACK}:{bench.victim.port}"

            def entries() -> list[str]:
                for m in client.messages:
                    if m.get("type") == "addr":
                        found = [e["addr"] if isinstance(e, dict) else e for e in m["peers"]]
                        if found != [own]:
                            return found
                return []

            client.wait(lambda: bool(entries()), 5)
            found = entries()
            answer = len(found)
            ours = sum(1 for e in found if int(e.split(".", 1)[0]) in ATTACKER_OCTETS)
            share = ours / answer if answer else 0.0
    finally:
        client.close()
    allowed = connections * (ADDR_INITIAL_TOKENS + 1)
    seen = (
        f"{served}/{connections} served ({connections / elapsed:.0f} connections/s); "
        f"victim's book +{grown} ({grown / connections:.1f} per connection; bucket of a new "
        f"connection: {ADDR_INITIAL_TOKENS}); new table {new0:.0f} -> {new1:.0f} "
        f"({100 * grown / new1 if new1 else 0:.0f} % the attacker's); a fresh getaddr answer: "
        f"{answer} addresses, {100 * share:.1f} % the attacker's"
    )
    sent_ = (
        f"{connections} connections in {elapsed:.0f} s from {groups} /16s, each a handshake, one "
        "addr of 1000 fresh addresses, closed"
    )
    return sent_, seen, served == connections and 0 < grown <= allowed


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
                s = connecting(source, target, stats)
                if s is None:
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


def rpcBatches(bench: Bench):
    """
    JSON-RPC batches to the control API (issue 16, item 8): 10,000
    getpeerinfo calls in one batch stalled the reactor for 2.1 s. Now a batch
    over the cap is refused whole, and one at the cap is served in slices of
    the reactor's time; a ping on another connection is timed meanwhile.
    """
    port = bench.victim.rpcPort

    def post(count: int) -> tuple[object, float]:
        calls = [{"id": i, "method": "getpeerinfo", "params": []} for i in range(count)]
        started = time.monotonic()
        try:
            answer = rpc_get(port, PASSWORD, body=json.dumps(calls).encode(), timeout=30)
        except urllib.error.HTTPError as e:
            answer = e.read()
        return json.loads(answer), time.monotonic() - started

    huge, hugeSeconds = post(10_000)
    refused = isinstance(huge, dict) and (huge.get("error") or {}).get("code") == -32600
    capped, cappedSeconds = post(100)
    served = isinstance(capped, list) and len(capped) == 100
    client = bench.client()
    try:
        client.handshake("mallory")
        started = time.monotonic()
        answered = client.ping(80, 5)
        pingMs = (time.monotonic() - started) * 1000
    finally:
        client.close()
    seen = (
        f"10,000 calls: {'refused whole' if refused else 'SERVED'} in {hugeSeconds * 1000:.0f} ms; "
        f"100 calls: {'answered' if served else 'NOT ANSWERED'} in {cappedSeconds * 1000:.0f} ms; "
        f"a ping after: {'%.0f ms' % pingMs if answered else 'NO'}"
    )
    sent_ = "a JSON-RPC batch of 10,000 getpeerinfo calls, then one of 100"
    return sent_, seen, refused and served and answered


# The start of a request, sent by each slow connection of rpc-slowloris
# (what the probe of issue 16 sent), then one byte at a time.
SLOW_REQUEST = b"POST / HTTP/1.1\r\nHost: x\r\n"


def rpcSlowloris(bench: Bench, sources, label: str):
    """
    Slow requests on the control API (issue 16, item 4): 70 connections
    that send the start of a request, then a byte every few seconds and
    never finish it; one closed by the node is opened again a second later.
    Meanwhile an authenticated call every second, from 127.0.0.1 (as
    bitp2p-cli's): how many are answered. Before the fix, each byte reset
    the idle timeout (60 s) and the slow connections held all 64 slots.
    """
    port = bench.victim.rpcPort
    count = 70
    seconds = bench.size("rpc_slowloris_seconds")
    every = bench.size("rpc_slowloris_byte_every")
    selector = selectors.DefaultSelector()
    stats: Counter = Counter()
    live: dict = {}  # socket -> when it sends its next byte
    reopen: list[float] = []  # when to open one again
    addresses: set = set()
    opened = 0

    def open_() -> None:
        nonlocal opened
        source = sources(opened)
        opened += 1
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
        s.settimeout(2)
        try:
            s.bind((source, 0))
            s.connect((LOOPBACK, port))
            s.sendall(SLOW_REQUEST)
        except OSError as e:
            stats[f"connect {errno.errorcode.get(e.errno, e.errno)}"] += 1
            s.close()
            reopen.append(time.monotonic() + 1)
            return
        addresses.add(source)
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
        live[s] = time.monotonic() + every

    def closed(s) -> None:
        selector.unregister(s)
        del live[s]
        s.close()
        stats["closed by the node"] += 1
        reopen.append(time.monotonic() + 1)

    def serve(timeout: float) -> None:
        for key, _ in selector.select(timeout):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 408"):
                stats["408"] += 1
            elif data:
                stats["other answers"] += 1
            if not data or b"408" in data:
                closed(s)
        now = time.monotonic()
        for s, due in list(live.items()):
            if due <= now:
                try:
                    s.send(b"X")
                    live[s] = now + every
                except OSError:
                    closed(s)
        while reopen and reopen[0] <= now:
            reopen.pop(0)
            open_()

    call = json.dumps({"method": "getconnectioncount", "params": []}).encode()
    answered = failed = 0
    slowest = 0.0
    failures: Counter = Counter()
    try:
        for _ in range(count):
            open_()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            before = time.monotonic()
            try:
                json.loads(rpc_get(port, PASSWORD, body=call, timeout=3))["result"]
                answered += 1
                slowest = max(slowest, time.monotonic() - before)
            except (OSError, ValueError, KeyError) as e:
                failed += 1
                failures[type(e).__name__] += 1
            bench.tick()
            pause = before + 1.0
            while time.monotonic() < pause:
                serve(max(0.0, min(0.1, pause - time.monotonic())))
    finally:
        for s in list(live):
            selector.unregister(s)
            s.close()
        selector.close()
    calls = answered + failed
    why = ", ".join(f"{n} {what}" for what, n in failures.most_common())
    seen = (
        f"{answered} of {calls} authenticated calls answered"
        + (f" (slowest {slowest * 1000:.0f} ms)" if answered else "")
        + (f", {failed} failed ({why})" if failed else "")
        + f"; {stats['closed by the node']} slow connections closed by the node"
        f" ({stats['408']} after a 408)"
        + "".join(f", {n} {what}" for what, n in stats.items()
                  if what not in ("closed by the node", "408"))
    )
    sent_ = (
        f"{count} connections {label(addresses)}, each the start of a POST then a byte every "
        f"{every:g} s for {seconds:g} s, each reopened 1 s after the node closed it "
        f"({opened} in all); an authenticated call every second from {LOOPBACK}"
    )
    return sent_, seen, answered == calls


def rpcSlowlorisMany(bench: Bench):
    def label(used: set) -> str:
        return f"from {len(used)} addresses of 127.{bench.group}/16"

    return rpcSlowloris(bench, lambda i: bench.source(), label)


def rpcSlowlorisOne(bench: Bench):
    return rpcSlowloris(
        bench, lambda i: LOOPBACK, lambda used: f"from {LOOPBACK}, the operator's own address"
    )
def logChurn(bench: Bench):
    """
    Connection churn as a way to fill the disk (issue 16, item 7): one
    client, from one address, connects, sends a version and a verack,
    waits for the node's verack and closes (a reset), again and again, a
    few connections at once (the node's cap for one /16), for
    C{churn_seconds}. Each handshake made the node write a "Connected" and
    a "Disconnected" line at info (19 MB in 60 s in the outside probe).
    Measured: the bytes of log the node wrote meanwhile.
    """
    seconds = bench.size("churn_seconds")
    source = bench.source()
    target = (LOOPBACK, bench.victim.port)
    selector = selectors.DefaultSelector()
    stats: Counter = Counter()
    inFlight = 4  # the per-/16 cap of inbound connections at these limits
    serial = itertools.count()

    def launch() -> None:
        # A node id of its own each time: the same one again would be
        # refused as a duplicate while the node has not yet seen the last
        # connection close.
        hello = version(f"churner-{next(serial)}") + VERACK
        s = connecting(source, target, stats)
        if s is None:
            return
        selector.register(s, selectors.EVENT_WRITE, [b"", hello])

    def done(s, outcome: str) -> None:
        stats[outcome] += 1
        selector.unregister(s)
        s.close()

    started = time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            while len(selector.get_map()) < inFlight:
                launch()
            for key, _ in selector.select(0.05):
                s, received = key.fileobj, key.data
                if key.events == selectors.EVENT_WRITE:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        done(s, "failed to connect")
                        continue
                    try:
                        s.sendall(received[1])
                    except OSError:
                        done(s, "closed by the node")
                        continue
                    selector.modify(s, selectors.EVENT_READ, received)
                    continue
                try:
                    chunk = s.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    done(s, "closed by the node")
                    continue
                received[0] += chunk
                if b'"verack"' in received[0]:
                    done(s, "handshakes")
            bench.tick()
        elapsed = time.perf_counter() - started
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
    # Let the node log the last closes, then read what it wrote (the lines
    # stay for the run's own account of the log).
    wait_for(lambda: bench.settled(1), bench.size("settle_seconds"))
    written = bench.victim.logWritten()
    made = sum(n for what, n in stats.items() if what in ("handshakes", "closed by the node"))
    rate = made / elapsed if elapsed else 0.0
    perHour = written / elapsed * 3600 if elapsed else 0.0
    details = ", ".join(f"{n} {what}" for what, n in stats.most_common() if what != "handshakes")
    seen = (
        f"{stats['handshakes']} handshakes done ({details or 'none refused'}); "
        f"the node wrote {written:,} bytes of log ({written / max(made, 1):.1f} per connection; "
        f"{perHour / 1e6:,.1f} MB an hour at this rate)"
    )
    sent_ = (
        f"{made} connections in {elapsed:.1f} s ({rate:,.0f}/s) from one address ({source}), "
        f"{inFlight} at a time: version + verack, the node's verack awaited, then a reset"
    )
    # Expected: the log grows by less than 10 bytes a connection (the lines
    # of the first and a summary, not two lines each).
    return sent_, seen, written < 10 * max(made, 1)


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
    """
    The honest peer's node id claimed from another host (the client's own
    /16). Without TLS an id is a claim (PROTOCOL.md, Handshake): the claimant
    is another peer, let in beside the honest one, which must keep its
    connection; before issue 16 the claimant was closed as a duplicate, and
    one that came first locked the real node out.
    """
    client = bench.client()
    try:
        client.handshake(bench.honest.node_id)
        answered = client.ping(79, 5)
    finally:
        client.close()
    seen = f"let in beside the honest peer (another host's claim); ping answered: {'yes' if answered else 'NO'}"
    return "a version carrying the honest peer's node_id, from another host", seen, answered


def _lockoutRow(bench: Bench, firstGroup: int, how: str):
    """
    L{lockout} on the victim (16 inbound slots, 4 per /16): 4 sockets in
    each of 18 /16s hold their handshakes and reconnect; the honest peer
    must stay, and 9 of 10 honest newcomers get in within 10 s.
    """
    sent_, seen, results = lockout(
        bench.victim, firstGroup, 4, how, bench.size("lockout_warmup_s"), bench.size("lockout_tries")
    )
    served = sum(r is not None for r in results)
    return sent_, seen, served * 10 >= 9 * len(results)


def slowHandshakes(bench: Bench):
    """
    Issue 16, item 2, the probe's attack: dribbled versions, never
    finished, reconnecting 1 s after each close.
    """
    return _lockoutRow(bench, 60, DRIBBLE)


def noVerack(bench: Bench):
    """
    The same with a whole version at once and never a verack: nothing to
    call slow, the handshake just never ends.
    """
    return _lockoutRow(bench, 80, NO_VERACK)


def slowHandshakesAtLimits(bench: Bench):
    """
    The probe's attack on two more victims of their own, at the limits the
    issue names: C{--max-connections 20} (12 inbound slots, 4 per /16) and
    the defaults (117 inbound slots, 14 per /16), each attacked up to its
    group cap in 18 /16s.
    """
    parts, ok = [], True
    for label, extra, perGroup in (
        ("--max-connections 20", ["--max-connections", "20"], 4),
        ("default limits", [], 14),
    ):
        port, rpcPort = free_ports(2)
        daemon = Daemon(f"limits-{perGroup}", bench.root, port, rpcPort, ["--no-seeds", *extra])
        daemon.start()
        try:
            if not wait_for(daemon.ready, 30, 0.2):
                return "(case failed)", f"the {label} victim did not come up", False
            _, seen, results = lockout(
                daemon, 100, perGroup, DRIBBLE, bench.size("lockout_warmup_s"),
                bench.size("lockout_tries"),
            )
        finally:
            daemon.stop()
        served = sum(r is not None for r in results)
        ok = ok and served * 10 >= 9 * len(results)
        parts.append(f"{label}: {seen}")
    sent_ = (
        "the probe's attack (dribbled versions from 18 /16s, up to the group cap, reconnecting)"
        " on a victim at --max-connections 20 and one at the default limits"
    )
    return sent_, "; ".join(parts), ok


CASES = [malformedCase(*spec) for spec in MALFORMED] + [
    slowLine,
    smallChunkLine,
    oneByteLine,
    bigLines,
    discourage,
    pingFlood,
    addrFlood,
    hugeHosts,
    addrFloodMany,
    addrReconnectFlood,
    getaddrFlood,
    connectionFloodOne,
    connectionFloodMany,
    nonReader,
    dribble,
    selfConnection,
    duplicateId,
    rpcBatches,
    slowHandshakes,
    noVerack,
    slowHandshakesAtLimits,
    rpcSlowlorisMany,
    rpcSlowlorisOne,
    logChurn,
]

CASE_NAMES = {
    "slowLine": "endless-line",
    "smallChunkLine": "endless-line-small-chunks",
    "oneByteLine": "line-one-byte-per-write",
    "bigLines": "limit-lines-every-slot",
    "discourage": "five-violations",
    "pingFlood": "ping-flood",
    "addrFlood": "addr-flood",
    "hugeHosts": "addr-huge-hosts",
    "addrFloodMany": "addr-flood-many",
    "addrReconnectFlood": "addr-reconnect-flood",
    "getaddrFlood": "getaddr-repeated",
    "connectionFloodOne": "conn-flood-one-addr",
    "connectionFloodMany": "conn-flood-many-addrs",
    "nonReader": "never-reads",
    "dribble": "byte-per-second",
    "selfConnection": "self-connection",
    "duplicateId": "duplicate-node-id",
    "rpcBatches": "rpc-batches",
    "slowHandshakes": "slow-handshakes-reconnecting",
    "noVerack": "no-verack-reconnecting",
    "slowHandshakesAtLimits": "slow-handshakes-at-limits",
    "rpcSlowlorisMany": "rpc-slowloris",
    "rpcSlowlorisOne": "rpc-slowloris-one-addr",
    "logChurn": "log-churn",
}


def caseName(case) -> str:
    return CASE_NAMES.get(case.__name__, case.__name__)
