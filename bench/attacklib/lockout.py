"""
The slow-handshake lockout of issue 16, item 2, for C{bench/attacks.py}:
connections that never finish their handshake, from several sockets in
each of 18 loopback /16s, each reconnecting 1 s after the node closes it,
while honest newcomers try to get in.

Owns the attacker (L{Churners}, a selector loop in a thread of its own, so
that the honest tries run meanwhile from this script's main thread) and the
honest tries (L{honestTries}); L{lockout} runs both against one daemon. It
knows nothing of the report, nor of how the harness measures a case.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections import Counter

from attacklib.harness import LOOPBACK, Client, Daemon, connecting, version

DRIBBLE = "dribble"  # one byte of a version every DRIBBLE_EVERY_S, never finished
NO_VERACK = "no-verack"  # a whole version at once, never a verack
DRIBBLE_EVERY_S = 5.0
RECONNECT_S = 1.0
GROUPS = 18
HONEST_DEADLINE_S = 10.0
HONEST_DIALS_S = (0.0, 2.0, 6.0)  # a node's first dial and redials after refusals


class Churners:
    """
    C{perGroup} sockets in each of L{GROUPS} /16s (127.G.0.K, G from
    C{firstGroup}), each connecting to C{port}, holding its connection in
    the handshake the way C{how} says, and reconnecting L{RECONNECT_S}
    after it is closed or refused.
    """

    def __init__(self, port: int, firstGroup: int, perGroup: int, how: str):
        self.port, self.how = port, how
        self.hosts = [
            f"127.{firstGroup + g}.0.{k + 1}" for g in range(GROUPS) for k in range(perGroup)
        ]
        self.connections = 0  # connections the node accepted
        self.closed = 0  # of those, closed by the node
        self.open = 0
        self.failures: Counter = Counter()  # sockets that could not connect, by error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        due = {host: 0.0 for host in self.hosts}  # host -> when to connect
        state: dict[socket.socket, list] = {}  # socket -> [host, bytes sent, next send]
        # A node id of each host's own: one shared id would be closed as a
        # duplicate by nodes before issue 16 (item 3), hiding the lockout.
        payloads = {host: version("mallory-" + host.replace(".", "-")) for host in self.hosts}

        def drop(s: socket.socket, counted: bool) -> None:
            host = state.pop(s)[0]
            selector.unregister(s)
            s.close()
            if counted:
                self.closed += 1
                self.open -= 1
            due[host] = time.monotonic() + RECONNECT_S

        try:
            while not self._stop.is_set():
                now = time.monotonic()
                for host, at in list(due.items()):
                    if at > now:
                        continue
                    del due[host]
                    s = connecting(host, (LOOPBACK, self.port), self.failures)
                    if s is None:
                        due[host] = now + RECONNECT_S
                        continue
                    state[s] = [host, 0, now]
                    selector.register(s, selectors.EVENT_WRITE, "connecting")
                for key, _ in selector.select(0.05):
                    s = key.fileobj
                    if key.data == "connecting":
                        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            drop(s, False)
                            continue
                        self.connections += 1
                        self.open += 1
                        selector.modify(s, selectors.EVENT_READ, "open")
                        if self.how == NO_VERACK:
                            payload = payloads[state[s][0]]
                            s.send(payload)
                            state[s][1] = len(payload)
                        continue
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        drop(s, True)
                if self.how == DRIBBLE:
                    for s, entry in list(state.items()):
                        host, sent, nextAt = entry
                        if selector.get_key(s).data != "open" or now < nextAt:
                            continue
                        payload = payloads[host]
                        try:
                            s.send(payload[sent % len(payload):][:1])
                        except OSError:
                            continue  # the read side sees the close
                        entry[1], entry[2] = sent + 1, now + DRIBBLE_EVERY_S
        finally:
            for s in list(state):
                s.close()
            selector.close()


def honestTries(daemon: Daemon, tries: int, pause: float) -> list[float | None]:
    """
    C{tries} honest newcomers from 127.0.0.1, one after the other, each a
    fresh client that sends its version at once, and dials again 2 and 6 s
    after its first dial if refused, as a node's redials do.

    @return: per try, the seconds from its first dial to a pong after its
        handshake, or L{None} if that did not happen within
        L{HONEST_DEADLINE_S}.
    """
    results: list[float | None] = []
    for i in range(tries):
        started = time.monotonic()
        done = None
        for offset in HONEST_DIALS_S:
            time.sleep(max(0.0, started + offset - time.monotonic()))
            left = started + HONEST_DEADLINE_S - time.monotonic()
            if left <= 0:
                break
            try:
                client = Client(daemon.port, LOOPBACK, timeout=min(left, 5))
            except OSError:
                continue
            try:
                if client.handshake(f"honest-newcomer-{i}", left) and client.ping(i + 1, 2):
                    done = time.monotonic() - started
            finally:
                client.close()
            if done is not None:
                break
        results.append(done if done is not None and done <= HONEST_DEADLINE_S else None)
        time.sleep(pause)
    return results


def lockout(
    daemon: Daemon, firstGroup: int, perGroup: int, how: str, warmup: float, tries: int
) -> tuple[str, str, list[float | None]]:
    """
    Run the attack on C{daemon} for C{warmup} seconds, then the honest
    tries while it goes on.

    @return: what was sent, what was seen, and the honest tries' results.
    """
    churners = Churners(daemon.port, firstGroup, perGroup, how)
    churners.start()
    try:
        time.sleep(warmup)
        held = churners.open
        results = honestTries(daemon, tries, 1.0)
        accepted = churners.connections
    finally:
        churners.stop()
    served = [r for r in results if r is not None]
    what = (
        "one byte of a version every 5 s" if how == DRIBBLE else "a whole version, never a verack"
    )
    sent = (
        f"{len(churners.hosts)} sockets ({perGroup} in each of {GROUPS} /16s), each {what}, "
        f"reconnecting {RECONNECT_S:g} s after it is closed"
    )
    seen = (
        f"attacker held {held} connections after {warmup:g} s, {accepted} accepted in all; "
        f"honest newcomers in within {HONEST_DEADLINE_S:g} s: {len(served)}/{len(results)}"
        + (f" (slowest {max(served):.1f} s)" if served else "")
    )
    return sent, seen, results


__all__ = ["DRIBBLE", "NO_VERACK", "Churners", "honestTries", "lockout"]
