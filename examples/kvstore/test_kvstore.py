"""
Tests of the replicated key-value store (examples/kvstore/kvstore.py).

All but the last ones run many nodes in memory, on the simulated clock of
bitp2p.testing.TestNetwork; the end-to-end tests run the script itself.
"""

from __future__ import annotations

import itertools
import json
import queue
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from twisted.internet.testing import StringTransport

from bitp2p import ProtocolViolation
from bitp2p.testing import TestNetwork

sys.path.insert(0, str(Path(__file__).resolve().parent))  # kvstore.py, under any import mode
import kvstore  # noqa: E402
from kvstore import Console, Entry, Store  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCRIPT = HERE / "kvstore.py"


@pytest.fixture
def net():
    network = TestNetwork(seed=7)
    yield network
    network.stop()


def addStores(net: TestNetwork, count: int) -> list[Store]:
    """
    Add C{count} nodes, each with a store. No automatic outbound
    connections: the tests say exactly which links there are.
    """
    return [Store(node) for node in net.addNodes(count, max_outbound=0)]


def converged(stores: list[Store], expected: dict | None = None):
    def check() -> bool:
        first = stores[0].items() if expected is None else sorted(expected.items())
        return all(store.items() == first for store in stores)

    return check


# -- replication ------------------------------------------------------------------------


def test_writes_reach_every_node(net):
    """
    In a random graph of 20 nodes (degree 3), writes made on 5 nodes (a
    delete and a value over the 4096 bytes gossip pushes among them) reach
    all 20.
    """
    stores = addStores(net, 20)
    net.start()
    net.linkRandom(degree=3)
    assert net.isConnected()
    expected = {}
    for i, writer in enumerate(stores[::4]):
        writer.set(f"key{i}", i)
        expected[f"key{i}"] = i
    stores[4].set("greeting", "hello world")
    stores[8].delete("key0")  # before key0 reached it: still the later write
    del expected["key0"]
    big = "x" * 20_000  # announced with inv/getdata, not pushed
    stores[12].set("big", big)
    expected.update(greeting="hello world", big=big)
    assert net.runUntil(converged(stores, expected), timeout=30)
    assert all(store.entry("key0").value is None for store in stores)


def winner(*entries: Entry) -> Entry:
    """
    The write that must win: the greatest (version, origin, value as JSON).
    """
    return max(
        entries,
        key=lambda e: (e.version, e.origin, json.dumps(e.value, separators=(",", ":"), ensure_ascii=False)),
    )


def test_concurrent_writes_converge_to_one_winner(net):
    """
    Writes to one key made at once on different nodes end with the same
    winner everywhere: the greatest (version, origin, value). In even
    rounds the writers' clocks agree, so the versions tie and the origin
    decides; in odd ones a writer's clock is ahead, and its version decides.
    """
    stores = addStores(net, 10)
    net.start()
    net.linkRandom(degree=3)
    rng = random.Random(3)
    for round in range(6):
        writers = rng.sample(stores, 3)
        if round % 2:
            writers[0].set("warmup", round)
        entries = [w.set("color", f"{w.node.node_id}-{round}") for w in writers]
        if round % 2 == 0:
            assert len({e.version for e in entries}) == 1
        else:
            assert entries[0].version > entries[1].version
        best = winner(*entries)
        assert net.runUntil(
            lambda: all(s.entry("color") == best for s in stores), timeout=30
        ), f"round {round}: not every node holds {best}"
    net.advance(10)
    assert all(s.entry("color") == best for s in stores)


def test_merge_order_does_not_matter(net):
    """
    The same writes merged in any order, repeated or not, give the same map.
    """
    node = net.addNode()
    writes = [
        ("k", Entry("a", 1, "n1")),
        ("k", Entry("b", 1, "n2")),
        ("k", Entry("c", 2, "n0")),
        ("k", Entry(None, 2, "n0")),
        ("j", Entry(1, 5, "n3")),
        ("j", Entry(True, 5, "n3")),
    ]
    results = set()
    for order in itertools.permutations(writes):
        store = Store(node)
        store.merge(order + order[:2])
        results.add((store.entry("k"), store.entry("j"), store.clock))
        store.close()
    assert len(results) == 1
    k, j, clock = results.pop()
    assert k == Entry(None, 2, "n0")  # ties go by the JSON text: 'null' > '"c"'
    assert j == Entry(True, 5, "n3")  # 'true' > '1'
    assert clock == 5


def test_late_joiner_gets_the_whole_state(net):
    """
    A node that connects after the writes gets them all through kv.state
    (gossip does not send old messages again), deletes included.
    """
    stores = addStores(net, 6)
    net.start()
    net.linkRing()
    for i, store in enumerate(stores):
        store.set(f"k{i}", i * 10)
    stores[2].delete("k5")
    assert net.runUntil(converged(stores), timeout=30)
    late = Store(net.addNode(max_outbound=0))
    net.start()
    net.connect(late.node, stores[3].node)
    assert net.runUntil(converged(stores + [late]), timeout=10)
    assert late.items() == [(f"k{i}", i * 10) for i in range(5)]
    assert late.entry("k5") == stores[0].entry("k5")
    assert late.clock == stores[0].clock


def test_big_state_is_sent_in_chunks(net):
    """
    A state bigger than STATE_CHUNK_BYTES goes in several kv.state messages,
    each under the limit, and arrives whole.
    """
    first, second = addStores(net, 2)
    net.start()
    for i in range(1500):
        first.set(f"key-{i:04}", f"{i:04}" * 100)  # no peer yet: nothing sent
    messages = first.stateMessages()
    assert len(messages) >= 3
    for message in messages:
        assert len(json.dumps(message, separators=(",", ":")).encode()) <= kvstore.STATE_CHUNK_BYTES
    net.connect(second.node, first.node)
    assert net.runUntil(converged([first, second]), timeout=10)
    assert len(second.items()) == 1500


def test_state_waits_while_the_send_buffer_is_full(net):
    """
    A state is not written while the peer's send buffer is full (bitp2p
    would drop the peer past 4 MiB), and goes on once it has drained.
    """
    nodes = net.addNodes(2, max_outbound=0)
    paused = []

    def fill(peer) -> None:
        peer.wire.pauseProducing()  # what the transport does when its buffer fills
        paused.append(peer)

    nodes[0].observe(connected=fill)  # before the store's own observer
    first, second = Store(nodes[0]), Store(nodes[1])
    net.start()
    for i in range(1500):
        first.set(f"key-{i:04}", f"{i:04}" * 100)
    net.connect(second.node, first.node)
    net.advance(5)
    assert second.items() == []
    paused[0].wire.resumeProducing()
    assert net.runUntil(converged([first, second]), timeout=5)


def test_state_chunks_hold_at_most_max_entries(net):
    store = Store(net.addNode())
    store.merge((f"{i}", Entry(i, 1, "o")) for i in range(kvstore.MAX_STATE_ENTRIES + 1))
    sizes = [len(m["entries"]) for m in store.stateMessages()]
    assert sizes == [kvstore.MAX_STATE_ENTRIES, 1]


def test_partition_heals(net):
    """
    Two halves write while a partition separates them (one key on both
    sides); once one link comes back, every node of both halves converges.
    """
    stores = addStores(net, 10)
    left, right = stores[:5], stores[5:]
    net.start()
    net.linkRing([s.node for s in left])
    net.linkRing([s.node for s in right])
    net.connect(left[0].node, right[0].node)
    stores[1].set("shared", "before")
    assert net.runUntil(converged(stores), timeout=30)

    leftNodes, rightNodes = [s.node for s in left], [s.node for s in right]
    assert net.partition(leftNodes, rightNodes) == 1
    assert not net.isConnected()
    x1 = left[2].set("x", "left")
    x2 = right[3].set("x", "right")
    left[4].set("only-left", 1)
    right[1].set("only-right", 2)
    right[2].delete("shared")
    net.advance(30)
    assert all(s.get("only-right") is None and s.get("shared") == "before" for s in left)
    assert all(s.get("only-left") is None for s in right)

    net.heal(leftNodes, rightNodes)
    net.connect(left[0].node, right[0].node)
    assert net.runUntil(converged(stores), timeout=30)
    assert stores[0].items() == [
        ("only-left", 1),
        ("only-right", 2),
        ("x", winner(x1, x2).value),
    ]


def test_on_change(net):
    a, b = addStores(net, 2)
    seen = []
    stop = b.onChange(lambda key, value: seen.append((key, value)))
    net.start()
    net.connect(a.node, b.node)
    a.set("k", 1)
    a.set("k", 1)  # a newer write, the same value: no change
    a.delete("k")
    net.advance(1)
    stop()
    a.set("k", 2)
    net.advance(1)
    assert seen == [("k", 1), ("k", None)]
    assert b.get("k") == 2


# -- validation --------------------------------------------------------------------------

GOOD_SET = {"type": "kv.set", "key": "k", "value": "v", "version": 1, "origin": "n0"}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"key": ""}, "key must be"),
        ({"key": "k" * 257}, "key must be"),
        ({"key": 5}, "key must be"),
        ({"value": [1, 2]}, "value must be"),
        ({"value": {"a": 1}}, "value must be"),
        ({"value": "x" * (64 * 1024)}, "value is over"),
        ({"version": -1}, "version must be"),
        ({"version": 2**63}, "version must be"),
        ({"version": True}, "version must be"),
        ({"version": 1.0}, "version must be"),
        ({"origin": ""}, "origin must be"),
        ({"origin": "o" * 65}, "origin must be"),
        ({"origin": None}, "origin must be"),
    ],
)
def test_invalid_set(change, reason):
    with pytest.raises(ValueError, match=reason) as e:
        kvstore.validateSet({**GOOD_SET, **change})
    assert "\n" not in str(e.value)


def test_valid_set():
    for value in ("x" * 60_000, 0, -1.5, 2**70, True, False, None, ""):
        assert kvstore.validateSet({**GOOD_SET, "value": value}) is None
    missing = dict(GOOD_SET)
    del missing["origin"]
    with pytest.raises(ValueError, match="origin is missing"):
        kvstore.validateSet(missing)


@pytest.mark.parametrize(
    "entries, reason",
    [
        ("nope", "entries must be a list"),
        ([["k", 1, 1]], "entry 0 must be"),
        ([["k", 1, 1, "o"], ["", 1, 1, "o"]], "entry 1: key must be"),
        ([["k", 1, -5, "o"]], "entry 0: version must be"),
        ([["k", 1, 1, "o"]] * 10_001, "more than 10000"),
    ],
)
def test_invalid_state(entries, reason):
    with pytest.raises(ValueError, match=reason):
        kvstore.validateState({"type": "kv.state", "entries": entries})


def test_local_writes_are_checked(net):
    store = Store(net.addNode())
    for key, value in (("", 1), ("k", float("nan")), ("k", [1]), ("k", "x" * 70_000)):
        with pytest.raises(ValueError):
            store.set(key, value)
    assert store.clock == 0 and store.items() == []


@pytest.mark.parametrize(
    "how, message",
    [
        ("broadcast", {"type": "kv.set", "key": "", "value": 1, "version": 1, "origin": "x"}),
        ("broadcast", {"type": "kv.set", "key": "k", "value": 1, "version": -1, "origin": "x"}),
        ("send", {"type": "kv.set", "key": "k", "value": [1], "version": 1, "origin": "x"}),
        ("send", {"type": "kv.state", "entries": [["k", 1, "one", "x"]]}),
    ],
)
def test_invalid_message_closes_only_that_peer(net, how, message):
    """
    A peer that sends an invalid kv.set or kv.state is disconnected for a
    protocol violation; the write goes no further, and the node goes on
    serving its other peers.
    """
    a, c = addStores(net, 2)
    rogue = net.addNode(max_outbound=0)  # a bare bitp2p node, with no store
    net.start()
    net.connect(c.node, a.node)
    net.connect(rogue, a.node)
    lost = []
    a.node.observe(disconnected=lambda peer, reason: lost.append((peer.node_id, reason)))
    if how == "broadcast":
        rogue.broadcast(message)
    else:
        rogue.send(a.node.node_id, message)
    net.advance(1)
    assert [node_id for node_id, _ in lost] == [rogue.node_id]
    reason = lost[0][1]
    assert isinstance(reason, ProtocolViolation)
    assert f"invalid {message['type']!r} message" in str(reason)
    assert [p.node_id for p in a.node.peers()] == [c.node.node_id]
    assert a.items() == [] and c.items() == [] and a.clock == 0
    c.set("after", 1)
    a.set("back", 2)
    assert net.runUntil(converged([a, c], {"after": 1, "back": 2}), timeout=5)


# -- the console ----------------------------------------------------------------------------


def test_console_commands(net):
    a, b = addStores(net, 2)
    net.start()
    quits = []
    console = Console(a, lambda: quits.append(True))
    transport = StringTransport()
    console.makeConnection(transport)

    def run(*lines: str) -> list[str]:
        transport.clear()
        for line in lines:
            console.dataReceived(line.encode() + b"\n")
        return transport.value().decode().splitlines()

    assert run("wait 5") == []  # no peer: reading paused until one comes
    assert transport.producerState == "paused"
    run("get n")  # typed while waiting: kept for later
    net.connect(b.node, a.node)
    assert transport.value().decode().splitlines() == [f"connected to {b.node.node_id[:16]}", "(not set)"]
    assert run("set n 42", "set s hello  world", 'set q "7"', "get n", "get s", "get q") == [
        "ok (version 1)", "ok (version 2)", "ok (version 3)", "42", '"hello  world"', '"7"',
    ]
    assert run("set z null", "set", "frob") == [
        "error: null deletes: use del KEY", "usage: set KEY VALUE", "unknown command 'frob'; type help",
    ]
    assert run("del n", "keys") == ["ok (version 4)", "q", "s"]
    assert run("peers")[0].startswith(b.node.node_id[:16])
    net.advance(1)
    assert b.items() == [("q", "7"), ("s", "hello  world")]
    b.set("remote", True)
    transport.clear()
    net.advance(1)
    assert transport.value() == b"* remote = true\n"
    console.readConnectionLost()  # end of input
    assert transport.disconnecting
    console.connectionLost(None)
    assert quits == [True]


# -- the program, end to end --------------------------------------------------------------------


class Process:
    """
    The script run as a subprocess, its output lines read by a thread.
    """

    def __init__(self, *args: str, stdin=subprocess.DEVNULL) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            cwd=ROOT,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=self._read, args=(self.popen.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _read(self, stream, lines) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.output.append(line)
            lines.put(line)

    def _drain(self) -> None:
        for raw in self.popen.stderr:
            self.errors.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def expect(self, test, timeout: float = 10.0) -> str:
        """
        The next output line for which C{test(line)} is true.
        """
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no such line within {timeout} s; output: {self.output}; log: {self.errors}"
                ) from None
            if test(line):
                return line

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


@pytest.fixture
def processes():
    started: list[Process] = []
    yield lambda *args, **kw: started.append(Process(*args, **kw)) or started[-1]
    for process in started:
        process.kill()


def test_two_processes(processes, tmp_path):
    """
    A node serves; a second one reads "set a 1" and "wait" from a pipe and
    stops at the end of its input; the first one prints the change.
    """
    server = processes("--port", "0", "--interface", "127.0.0.1", "--no-seeds", "--serve")
    banner = server.expect(lambda line: "listening on" in line)
    port = banner.rsplit(":", 1)[1]
    client = processes(
        "--port", "0", "--interface", "127.0.0.1", "--seed", f"127.0.0.1:{port}",
        "--datadir", str(tmp_path / "client"),
        stdin=subprocess.PIPE,
    )
    client.popen.stdin.write(b"set a 1\nwait\n")
    client.popen.stdin.close()
    assert client.popen.wait(timeout=15) == 0
    client.expect(lambda line: line == "ok (version 1)")
    client.expect(lambda line: line.startswith("connected to "))
    server.expect(lambda line: line == "* a = 1")
    server.popen.terminate()
    assert server.popen.wait(timeout=10) == 0
    saved = json.loads((tmp_path / "client" / kvstore.STORE_FILE).read_text())
    assert saved["entries"] == [["a", 1, 1, saved["entries"][0][3]]]

    # The client's map was saved: a new run has it, with no peer at all.
    again = processes(
        "--port", "0", "--interface", "127.0.0.1", "--no-seeds",
        "--datadir", str(tmp_path / "client"),
        stdin=subprocess.PIPE,
    )
    again.popen.stdin.write(b"get a")  # a last line without a newline
    again.popen.stdin.close()
    assert again.popen.wait(timeout=15) == 0
    again.expect(lambda line: line == "1")


def test_big_state_between_processes(processes, tmp_path):
    """
    A state of 6 MB, more than bitp2p lets one write while a peer's send
    buffer is full, reaches a node that connects.
    """
    (tmp_path / "big").mkdir()
    entries = [[f"k{i:03}", f"{i:03}" * 20_000, i + 1, "origin"] for i in range(100)]
    saved = {"format": kvstore.STORE_FORMAT, "entries": entries}
    (tmp_path / "big" / kvstore.STORE_FILE).write_text(json.dumps(saved))
    server = processes(
        "--port", "0", "--interface", "127.0.0.1", "--no-seeds", "--serve",
        "--datadir", str(tmp_path / "big"),
    )
    port = server.expect(lambda line: "listening on" in line).rsplit(":", 1)[1]
    client = processes(
        "--port", "0", "--interface", "127.0.0.1", "--seed", f"127.0.0.1:{port}",
        stdin=subprocess.PIPE,
    )
    for i in range(100):
        client.expect(lambda line: line.startswith(f"* k{i:03} = "), timeout=15)
    assert not any("not reading" in line for line in server.errors)


def test_options():
    """
    --help works from the repository root; a bad option is one line on
    stderr and exit status 2.
    """

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=15
        )

    help = run("--help")
    assert help.returncode == 0 and "--seed HOST:PORT" in help.stdout
    for args, text in (
        (("--port", "70000"), "kvstore: argument --port: must be a whole number in 0..65535"),
        (("--seed", "nowhere"), "kvstore: expected HOST:PORT, got 'nowhere'"),
        (("--seed", "127.0.0.1:5000", "--no-seeds"), "kvstore: --seed and --no-seeds exclude"),
    ):
        result = run(*args)
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.startswith(text) and result.stderr.count("\n") == 1
