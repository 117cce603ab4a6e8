"""
Multi-host: bitp2p nodes on hosts of their own, a network partition, and
its heal.

Each node is a real process in its own Linux network namespace, with its
own address, so that its traffic really crosses network interfaces: a veth
pair into a bridge, and from one bridge to the other over one more veth
pair. The test makes all of it with C{ip} (tests/netns.py) and removes all
of it in its cleanups (every name starts with C{bpmh<pid>}); without root,
without C{ip}, or where C{ip netns add} is refused (an unprivileged
container), it is skipped::

         site A (bridge bA)                         site B (bridge bB)
    a0    a1    a2   (a3, later)               b0    b1    b2   (b3, later)
    |     |     |     |                        |     |     |     |
    +-----+-----+-----+-- bA == xA ~~~ xB == bB --+-----+-----+-----+
                          the inter-site link

All addresses are in one /24 of 10/8 (picked not to overlap anything the
root namespace has): site A's hosts are .1 to .4, site B's .101 to .104;
every node listens on port 5000 of its address and has its control API on a
UNIX socket in the test's temporary directory, which the test, in the root
namespace, reaches whatever the links do. Every namespace has C{lo} up.

The nodes run tests/multihost_node.py: C{twistd -n bitp2p} (the same options
and service) with a maintenance round every 0.5 s, which the daemon has no
option for (it is 5 s). Pings go every 0.5 s and time out after 2 s
(C{--ping-interval}, C{--ping-timeout}: by default 30 and 90 s, and a cut
link would take a minute and a half to be noticed); everything else is
bitp2p's default, C{--max-outbound} 8 included, so with 8 nodes in all every
node keeps dialing until it is connected to every other node it knows.

Seeds: a1 and a2 start from a0, b1 and b2 from b0, and a0 and b0 from each
other: each side knows one address on the other side at start.

What is checked, with every wait bounded:

  1. Joined: all six nodes form one component (the graph of the peers
     C{getpeerinfo} lists), so does each side on its own, and at least one
     connection crosses the sites.
  2. Partition (both ends of the inter-site link set down): every
     cross-site connection ends, each by the ping timeout (each node that
     had a cross-site peer logs "no pong within 2 s" for it); each side
     stays one component; every process stays up and answers.
  3. During the partition a new node starts on each side, seeded from its
     own side only (a3 from a0, b3 from b0): it joins its side, and the
     address books diverge: side A knows a3, no node of B does, and the
     other way round. The link stays down 20 s in all, so that the dials
     across it fail and back off a few times (see below).
  4. Heal (both ends set up): a connection crosses the sites again, all
     eight nodes form one component, and the address books merge: every
     node of side A (a3 included) has b3 in C{getnodeaddresses 0}, every
     node of side B has a3.

How soon the heal is noticed depends on bitp2p's retry backoff: a node
dials an address again C{2 * 2**(failures - 1)} s (at most 10 min) after
its last try, spread down to as little as half by a factor of its own for
each try. Every dial across the cut fails from the moment of the cut, on
every node at once: without the spread the tries across came in waves
further and further apart, and a heal just after a wave waited for the
next (10.3 s after a 120 s partition; after 300 s, 44 of the 46 tries
were 215 to 240 s away). With it, the tries of all the nodes are spread
out: the sites reconnected 0.9 s after the heal of a 120 s and of a
300 s partition (one run each, PARTITION_S changed by hand). C{HEAL_S}
allows for the 20 s partition of the test.

The timings (from the start of the processes to the first cross-site
connection; from link down to no cross-site connection left; from link up
to the first cross-site connection, to one component, and to merged address
books) are in every failure message, and written with a survey of every node
to C{multihost.json} in BITP2P_ARTIFACTS (default: test-artifacts/); the
nodes' logs are copied to C{multihost-logs/} beside it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from . import netns
from .helpers import tempDir

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "tests" / "multihost_node.py"
PORT = 5000
PASSWORD = "multihost"
AUTH = "Basic " + base64.b64encode(f"bitp2p:{PASSWORD}".encode()).decode()

PING_INTERVAL_S = 0.5
PING_TIMEOUT_S = 2.0
MAINTENANCE_S = 0.5

POLL_S = 0.2
RPC_TIMEOUT_S = 5.0
STOP_S = 10.0
START_S = 20.0  # every control API answers
JOIN_S = 30.0  # one component across both sites
DROP_S = 15.0  # no cross-site connection left after link down
SIDE_S = 20.0  # a new node has joined its side
PARTITION_S = 20.0  # the link stays down this long (at least)
HEAL_S = 45.0  # cross-site again, one component, after link up
MERGE_S = 45.0  # address books merged, after link up
LOGS = "multihost-logs"


def _artifacts() -> Path:
    path = Path(os.environ.get("BITP2P_ARTIFACTS") or ROOT / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


class UnixHTTPConnection(http.client.HTTPConnection):
    """
    HTTP over a UNIX socket (the nodes' control API endpoints).
    """

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class NodeProcess:
    """
    One node: its namespace, address, data directory, log, control socket
    and process.
    """

    def __init__(self, name: str, namespace: str, host: str, root: str) -> None:
        self.name = name
        self.site = name[0]
        self.namespace = namespace
        self.host = host
        self.address = f"{host}:{PORT}"
        self.datadir = os.path.join(root, name)
        os.mkdir(self.datadir)
        self.socket = os.path.join(root, f"{name}.sock")
        self.log = os.path.join(root, f"{name}.log")
        self.process: subprocess.Popen | None = None
        self.node_id: str | None = None

    def start(self, seeds: list[str]) -> None:
        args = [
            *netns.Network.execPrefix(self.namespace),
            sys.executable,
            str(LAUNCHER),
            "--maintenance-interval",
            str(MAINTENANCE_S),
            "--",
            "--port",
            str(PORT),
            "--interface",
            self.host,
            "--datadir",
            self.datadir,
            "--rpc-port",
            f"unix:{self.socket}",
            "--rpc-password",
            PASSWORD,
            "--ping-interval",
            str(PING_INTERVAL_S),
            "--ping-timeout",
            str(PING_TIMEOUT_S),
        ]
        for seed in seeds:
            args += ["--seed", seed]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def call(self, method: str, *params) -> object:
        connection = UnixHTTPConnection(self.socket, RPC_TIMEOUT_S)
        try:
            body = json.dumps({"id": 1, "method": method, "params": list(params)})
            connection.request(
                "POST",
                "/",
                body=body,
                headers={"Authorization": AUTH, "Content-Type": "application/json"},
            )
            reply = json.loads(connection.getresponse().read())
        finally:
            connection.close()
        if reply.get("error"):
            raise RuntimeError(f"{self.name}: {method}: {reply['error']}")
        return reply["result"]

    def logText(self, offset: int = 0) -> str:
        with open(self.log, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def logSize(self) -> int:
        return os.path.getsize(self.log)


def stopAll(nodes: list[NodeProcess]) -> None:
    """
    SIGTERM to every node still running, then wait for each; SIGKILL for
    any that has not stopped within C{STOP_S}.
    """
    running = [n for n in nodes if n.process is not None]
    for node in running:
        if node.process.poll() is None:
            node.process.terminate()
    deadline = time.monotonic() + STOP_S
    for node in running:
        try:
            node.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait(STOP_S)


class Survey:
    """
    What every started node says at one moment: its peers (by node name;
    an unknown node id as itself) and the addresses in its book.
    """

    def __init__(self, nodes: list[NodeProcess]) -> None:
        self.nodes = [n for n in nodes if n.process is not None]
        names = {n.node_id: n.name for n in self.nodes}
        self.peers: dict[str, set[str]] = {}
        self.known: dict[str, set[str]] = {}
        self.errors: dict[str, str] = {}
        for node in self.nodes:
            try:
                peers = node.call("getpeerinfo")
                known = node.call("getnodeaddresses", 0)
            except (OSError, RuntimeError, ValueError, http.client.HTTPException) as e:
                self.errors[node.name] = f"{type(e).__name__}: {e}"
                self.peers[node.name], self.known[node.name] = set(), set()
                continue
            self.peers[node.name] = {names.get(p["node_id"], p["node_id"]) for p in peers}
            self.known[node.name] = {f"{a['address']}:{a['port']}" for a in known}

    def crossing(self) -> set[tuple[str, str]]:
        """
        The connections between the sites, each as a sorted pair of names.
        """
        return {
            tuple(sorted((a, b)))
            for a, peers in self.peers.items()
            for b in peers
            if b in self.peers and b[0] != a[0]
        }

    def component(self, names: list[str]) -> set[str]:
        """
        The nodes among C{names} reachable from the first one over
        connections between nodes among C{names}.
        """
        among = set(names)
        seen, todo = {names[0]}, [names[0]]
        while todo:
            here = todo.pop()
            # A connection counts if either end lists it.
            linked = {b for b in self.peers.get(here, ())} | {
                a for a, peers in self.peers.items() if here in peers
            }
            for other in linked & among:
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return seen

    def connected(self, names: list[str]) -> bool:
        return self.component(names) == set(names)

    def knowers(self, address: str) -> set[str]:
        return {name for name, known in self.known.items() if address in known}

    def describe(self, addresses: dict[str, str]) -> str:
        lines = []
        for node in self.nodes:
            known = sorted(addresses.get(a, a) for a in self.known.get(node.name, ()))
            state = "up" if node.alive else f"EXITED {node.process.returncode}"
            lines.append(
                f"  {node.name} ({node.address}, {state}): peers "
                f"{','.join(sorted(self.peers.get(node.name, ()))) or '-'}; knows "
                f"{','.join(known) or '-'}"
                + (
                    f"; control API error: {self.errors[node.name]}"
                    if node.name in self.errors
                    else ""
                )
            )
        return "\n".join(lines)

    def asJSON(self) -> dict:
        return {
            name: {"peers": sorted(self.peers[name]), "known": sorted(self.known[name])}
            for name in self.peers
        }


class PartitionTests(SynchronousTestCase):
    """
    Two sites of nodes in network namespaces, cut apart and joined again.
    """

    def setUp(self) -> None:
        reason = netns.unavailable()
        if reason is not None:
            raise SkipTest(f"cannot make network namespaces: {reason}")
        netns.removeLeftovers()
        self.figures: dict[str, float] = {}
        self.nodes: list[NodeProcess] = []
        self.root = tempDir(self)
        self.addCleanup(self.keepLogs)  # once the nodes are stopped, before rmtree
        self.network = netns.Network(self.addCleanup)
        subnet = netns.freeSubnet(os.getpid())
        hosts = list(subnet.hosts())
        self.bridges = {"a": self.network.bridge("bA"), "b": self.network.bridge("bB")}
        self.link = self.network.join(self.bridges["a"], self.bridges["b"], "xA", "xB")
        for site, first in (("a", 0), ("b", 100)):
            for i in range(4):
                name = f"{site}{i}"
                namespace = self.network.namespace(name)
                host = hosts[first + i]
                self.network.attach(
                    namespace, self.bridges[site], f"{site}{i}", f"{host}/{subnet.prefixlen}"
                )
                self.nodes.append(NodeProcess(name, namespace, str(host), self.root))
        self.addCleanup(stopAll, self.nodes)
        self.byName = {n.name: n for n in self.nodes}
        self.addresses = {n.address: n.name for n in self.nodes}
        self.subnet = subnet
        a0, b0 = self.byName["a0"], self.byName["b0"]
        if not netns.reachable(a0.namespace, b0.namespace, b0.host, PORT):
            raise SkipTest(
                "the bridges here do not carry traffic between namespaces (plain TCP from "
                "a0 to b0 failed: a firewall on bridged traffic, such as br_netfilter with "
                "iptables FORWARD DROP?)"
            )

    # -- helpers --

    def keepLogs(self) -> None:
        """
        Copy the nodes' logs to the artifacts directory.
        """
        logs = _artifacts() / LOGS
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        for node in self.started():
            shutil.copy(node.log, logs / f"{node.name}.log")

    def started(self) -> list[NodeProcess]:
        return [n for n in self.nodes if n.process is not None]

    def names(self, site: str | None = None) -> list[str]:
        return [n.name for n in self.started() if site is None or n.site == site]

    def failWith(self, message: str, survey: Survey | None = None) -> None:
        """
        Fail with the message, the figures so far and a survey of every
        node; copy the nodes' logs to the artifacts directory.
        """
        if survey is None:
            survey = Survey(self.nodes)
        figures = ", ".join(f"{k} {v:.1f} s" for k, v in self.figures.items()) or "none yet"
        raise self.failureException(
            f"{message}\ntimings: {figures}\nnodes (subnet {self.subnet}):\n"
            f"{survey.describe(self.addresses)}\nnode logs: {_artifacts() / LOGS}"
        )

    def waitFor(self, what: str, predicate, seconds: float) -> Survey:
        """
        Survey every node until C{predicate(survey)} holds; fail after
        C{seconds}. Every node must stay up.
        """
        deadline = time.monotonic() + seconds
        while True:
            survey = Survey(self.nodes)
            dead = [n.name for n in self.started() if not n.alive]
            if dead:
                self.failWith(f"node(s) {', '.join(dead)} exited while waiting for: {what}", survey)
            if predicate(survey):
                return survey
            if time.monotonic() >= deadline:
                self.failWith(f"not within {seconds:g} s: {what}", survey)
            time.sleep(POLL_S)

    def startNode(self, name: str, seeds: list[str]) -> None:
        self.byName[name].start([self.byName[s].address for s in seeds])

    def waitReady(self, names: list[str]) -> None:
        deadline = time.monotonic() + START_S
        for name in names:
            node = self.byName[name]
            while True:
                if not node.alive:
                    self.failWith(
                        f"{name} exited at start ({node.process.returncode}):\n"
                        f"{node.logText()[-3000:]}"
                    )
                try:
                    node.node_id = node.call("getnetworkinfo")["node_id"]
                    break
                except (OSError, http.client.HTTPException):
                    if time.monotonic() >= deadline:
                        self.failWith(f"{name}'s control API does not answer within {START_S:g} s")
                    time.sleep(POLL_S)

    def setLink(self, up: bool) -> None:
        self.network.setLinks(self.link, up)

    # -- the test --

    def test_partitionAndHeal(self):
        byName = self.byName
        a3, b3 = byName["a3"].address, byName["b3"].address

        # 1. Start: one component across both sites.
        began = time.monotonic()
        self.startNode("a0", ["b0"])
        self.startNode("b0", ["a0"])
        for name in ("a1", "a2"):
            self.startNode(name, ["a0"])
        for name in ("b1", "b2"):
            self.startNode(name, ["b0"])
        self.waitReady(self.names())
        self.waitFor(
            "a connection between the sites",
            lambda s: s.crossing(),
            JOIN_S - (time.monotonic() - began),
        )
        self.figures["first cross-site connection after start"] = time.monotonic() - began
        # Each side connected on its own too, so that "stays connected" below
        # means something.
        before = self.waitFor(
            "all six nodes in one component, and each side in one",
            lambda s: s.connected(self.names())
            and s.connected(self.names("a"))
            and s.connected(self.names("b"))
            and s.crossing(),
            JOIN_S - (time.monotonic() - began),
        )
        self.figures["one component after start"] = time.monotonic() - began

        # 2. Partition.
        # (Only the connections both ends list: one made in the very last
        # moment may be established at one end only.)
        crossed = {
            (a, b) for a, b in before.crossing() if a in before.peers[b] and b in before.peers[a]
        }
        offsets = {n.name: n.logSize() for n in self.started()}
        cut = time.monotonic()
        self.setLink(False)
        during = self.waitFor(
            "no connection between the sites after the link went down",
            lambda s: not s.crossing(),
            DROP_S,
        )
        self.figures["cross-site connections gone after link down"] = time.monotonic() - cut
        for site in "ab":
            if not during.connected(self.names(site)):
                self.failWith(f"site {site.upper()} is not one component after the cut", during)
        # Each end of each cut connection noticed by the ping timeout.
        for pair in crossed:
            for here, there in (pair, pair[::-1]):
                wanted = f"Disconnected from {byName[there].node_id} at "
                lines = [
                    line
                    for line in byName[here].logText(offsets[here]).splitlines()
                    if wanted in line
                ]
                if not any(f"no pong within {PING_TIMEOUT_S:g} s" in line for line in lines):
                    self.failWith(
                        f"{here} did not drop its connection to {there} by the ping "
                        f"timeout; its disconnection lines: {lines}",
                        during,
                    )

        # 3. A new node on each side, seeded from its own side only.
        self.startNode("a3", ["a0"])
        self.startNode("b3", ["b0"])
        self.waitReady(["a3", "b3"])
        diverged = self.waitFor(
            "a3 and b3 each connected to its side, and known to their seeds",
            lambda s: s.connected(self.names("a"))
            and s.connected(self.names("b"))
            and "a0" in s.knowers(a3)
            and "b0" in s.knowers(b3),
            SIDE_S,
        )
        hold = PARTITION_S - (time.monotonic() - cut)
        if hold > 0:
            time.sleep(hold)
            diverged = self.waitFor("a survey", lambda s: True, 0)
        if diverged.crossing():
            self.failWith("a connection crosses the cut link", diverged)
        for address, other in ((a3, "b"), (b3, "a")):
            leaked = diverged.knowers(address) & set(self.names(other))
            if leaked:
                self.failWith(
                    f"{', '.join(sorted(leaked))} know {address} across the cut", diverged
                )
        self.figures["partition lasted"] = time.monotonic() - cut

        # 4. Heal.
        healed = time.monotonic()
        self.setLink(True)
        self.waitFor(
            "a connection between the sites after the link came back up",
            lambda s: s.crossing(),
            HEAL_S,
        )
        self.figures["first cross-site connection after link up"] = time.monotonic() - healed
        self.waitFor(
            "all eight nodes in one component after the link came back up",
            lambda s: s.connected(self.names()),
            HEAL_S - (time.monotonic() - healed),
        )
        self.figures["one component after link up"] = time.monotonic() - healed

        def merged(s: Survey) -> bool:
            return set(self.names("a")) <= s.knowers(b3) and set(self.names("b")) <= s.knowers(a3)

        after = self.waitFor(
            "every node of A knowing b3 and every node of B knowing a3",
            merged,
            MERGE_S - (time.monotonic() - healed),
        )
        self.figures["address books merged after link up"] = time.monotonic() - healed
        if not after.connected(self.names()):
            self.failWith("not one component once the address books merged", after)

        record = {
            "subnet": str(self.subnet),
            "timings_s": {k: round(v, 2) for k, v in self.figures.items()},
            "before_cut": before.asJSON(),
            "during_cut": diverged.asJSON(),
            "after_heal": after.asJSON(),
            "addresses": self.addresses,
        }
        (_artifacts() / "multihost.json").write_text(json.dumps(record, indent=2) + "\n")
