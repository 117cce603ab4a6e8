"""
A fleet on a real container engine: bitp2p's image (the C{Containerfile})
built with podman, ten nodes as containers on one podman network, each with
its own address and volume, seeded by one DNS name (a network alias every
container carries, answered by podman's DNS, aardvark-dns, with all their
addresses: a headless Service's way).

The scenario, each step bounded in time:

 1. ten nodes start; they form one network and every node comes to know
    every other's address; each answers its health check and C{/metrics};
 2. three are killed (SIGKILL) and three new ones start: the new ones are
    found by all;
 3. one is stopped (SIGTERM) and started again: same node id (its volume);
 4. half are disconnected from the network (partition): no link crosses,
    the cut-off ones have no peer; they are connected again (with their
    addresses) and the fleet is one network again.

The figures (seconds to one network, to full knowledge, to recovery) are
written to C{test-artifacts/fleet.json}; C{docs/robustness.rst} quotes a run.

It needs podman able to run containers as root (C{.ci/system-deps} installs
it) and says why it skips otherwise (L{tests.podman}). Pings every 5 s and a
10 s ping timeout, so that a cut link is noticed in seconds, not minutes;
everything else is the default.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bitp2p.ops import cli

from .podman import ROOT, Podman, PodmanUnusable
from .test_twistd import freePort

SEED_NAME = "bitp2p-seed"
P2P_PORT = 5000
RPC_PORT = 5332
PASSWORD = "fleet-" + uuid.uuid4().hex
NODES = 10
STEP_LIMIT_S = 180
FIGURES = ROOT / "test-artifacts" / "fleet.json"


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    engine = Podman(str(tmp_path_factory.mktemp("podman")))
    try:
        base = engine.usable()
    except PodmanUnusable as e:
        pytest.skip(str(e))
    try:
        engine.image = engine.buildImage(base)
        yield engine
    finally:
        engine.cleanUp()


class Fleet:
    """
    The containers of one podman network, and what their control APIs say.
    """

    def __init__(self, podman: Podman) -> None:
        self.podman = podman
        self.network = podman.name("net")
        podman.run("network", "create", self.network)
        self.ips: dict[str, str] = {}
        self.live: list[str] = []
        self.cut: set[str] = set()

    def start(self, name: str) -> str:
        container = self.podman.name(name)
        self.podman.run(
            "run", "--detach", "--name", container, "--hostname", name,
            "--network", self.network, "--network-alias", SEED_NAME,
            "--volume", f"{container}-data:/data",
            "--env", f"BITP2P_SEED={SEED_NAME}:{P2P_PORT}",
            "--env", f"BITP2P_RPC_PASSWORD={PASSWORD}",
            "--env", "BITP2P_PING_INTERVAL=5", "--env", "BITP2P_PING_TIMEOUT=10",
            self.podman.image,
        )
        self.lookUp(name)
        self.live.append(name)
        return name

    def lookUp(self, name: str) -> None:
        """
        Note the address the network gave C{name}'s container.
        """
        self.ips[name] = self.podman.out(
            "inspect", self.podman.name(name), "--format",
            "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % self.network,
        )

    def kill(self, name: str) -> None:
        self.podman.run("kill", "--signal", "KILL", self.podman.name(name))
        self.live.remove(name)

    def http(self, name: str, path: str, body: bytes | None = None) -> bytes:
        auth = base64.b64encode(f"bitp2p:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            f"http://{self.ips[name]}:{RPC_PORT}{path}", data=body,
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.read()

    def rpc(self, name: str, method: str, *params):
        body = json.dumps({"jsonrpc": "1.0", "id": "fleet", "method": method, "params": list(params)})
        answer = json.loads(self.http(name, "/", body.encode()))
        assert not answer.get("error"), answer
        return answer["result"]

    def scrapeAll(self) -> None:
        """
        Every live node's /metrics, as Prometheus reads it: its build, a
        peer at least (as /metrics counts them), the process collector.
        """
        for name in self.live:
            families = {
                f.name: f for f in text_string_to_metric_families(self.http(name, "/metrics").decode())
            }
            assert families["bitp2p_build_info"].samples[0].labels["version"]
            assert sum(s.value for s in families["bitp2p_peers"].samples) >= 1, name
            assert "process_cpu_seconds" in families, sorted(families)

    def printLogs(self, lines: int = 15) -> None:
        """
        The end of every container's log, for a failed run's report.
        """
        for name in sorted(self.ips):
            result = self.podman.run("logs", "--tail", str(lines), self.podman.name(name), check=False)
            print(f"--- {name} ({self.ips[name]}) ---")
            print((result.stdout + result.stderr).decode(errors="replace").rstrip())

    def inside(self, name: str, *args: str) -> str:
        """
        bitp2p-cli in the container (for a node the host cannot reach).
        """
        return self.podman.out("exec", self.podman.name(name), "bitp2p-cli",
                               "--rpc-password", PASSWORD, *args, timeout=60)

    def snapshot(self, names) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """
        Each reachable node's peers (by name) and known addresses (by name);
        a node that does not answer has neither.
        """
        byAddress = {f"{ip}:{P2P_PORT}": name for name, ip in self.ips.items()}
        peers, known = {}, {}
        for name in names:
            try:
                info = self.rpc(name, "getpeerinfo")
                addresses = self.rpc(name, "getnodeaddresses", 0)
            except (OSError, ValueError):
                continue
            peers[name] = {byAddress.get(p["addr"], p["addr"]) for p in info}
            known[name] = {byAddress.get(f"{a['address']}:{a['port']}", a["address"])
                           for a in addresses}
        return peers, known

    def connected(self, names) -> bool:
        """
        Whether C{names} are one network: every one answers, and the links
        among them reach from the first to all.
        """
        names = list(names)
        peers, _ = self.snapshot(names)
        if set(peers) != set(names):
            return False
        reached, todo = {names[0]}, [names[0]]
        while todo:
            for other in peers[todo.pop()] & set(names):
                if other not in reached:
                    reached.add(other)
                    todo.append(other)
        return reached == set(names)

    def everyoneKnows(self, names, whom) -> bool:
        _, known = self.snapshot(names)
        return set(known) == set(names) and all(
            set(whom) - {name} <= known[name] for name in names
        )


def waitFor(predicate, what: str, limit_s: float = STEP_LIMIT_S) -> float:
    """
    Poll C{predicate} about once a second until it holds; the seconds it took.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if predicate():
            return round(time.monotonic() - started, 1)
        time.sleep(1)
    pytest.fail(f"not within {limit_s:.0f} s: {what}")


def test_aFleetOfTenFormsSurvivesChurnAndHealsAPartition(podman):
    fleet = Fleet(podman)
    try:
        scenario(podman, fleet)
    except BaseException:
        fleet.printLogs()
        raise


def scenario(podman: Podman, fleet: Fleet) -> None:
    figures = {"nodes": NODES}
    started = time.monotonic()
    for i in range(NODES):
        fleet.start(f"n{i}")
    figures["start_s"] = round(time.monotonic() - started, 1)

    # 1. One network, then full knowledge, both counted from the first start.
    waitFor(lambda: fleet.connected(fleet.live), "the ten nodes to form one network")
    figures["one_network_s"] = round(time.monotonic() - started, 1)
    knewAll: dict[str, float] = {}

    def everyoneKnows() -> bool:
        _, known = fleet.snapshot(fleet.live)
        for name, addresses in known.items():
            if set(fleet.live) - {name} <= addresses:
                knewAll.setdefault(name, round(time.monotonic() - started, 1))
        return len(knewAll) == len(fleet.live)

    waitFor(everyoneKnows, "every node to know every other's address")
    figures["full_knowledge_s"] = round(time.monotonic() - started, 1)
    # Who learnt last, and how many of its peers it had dialed itself.
    outbound = {name: sum(not p["inbound"] for p in fleet.rpc(name, "getpeerinfo"))
                for name in fleet.live}
    figures["knew_all_s"] = {name: [knewAll[name], outbound[name]] for name in fleet.live}
    peers, _ = fleet.snapshot(fleet.live)
    figures["peers_per_node"] = sorted(len(p) for p in peers.values())

    # Health (the image's HEALTHCHECK, run by podman) and /metrics.
    for name in fleet.live:
        check = podman.run("healthcheck", "run", podman.name(name), check=False)
        assert check.returncode == 0, (name, podman.errors(check))
        assert fleet.http(name, "/health") == b"up\n"
    fleet.scrapeAll()
    info = fleet.rpc("n0", "getnetworkinfo")
    assert f"{fleet.ips['n0']}:{P2P_PORT}" in [
        f"{a['address']}:{a['port']}" for a in info["localaddresses"]
    ], info["localaddresses"]

    # 2. Churn: three killed, three new; the new ones are found by all.
    for name in ("n7", "n8", "n9"):
        fleet.kill(name)
    newcomers = [fleet.start(f"n{i}") for i in range(NODES, NODES + 3)]
    churned = time.monotonic()
    waitFor(lambda: fleet.connected(fleet.live), "the fleet to be one network after the churn")
    figures["churn_one_network_s"] = round(time.monotonic() - churned, 1)
    waitFor(lambda: fleet.everyoneKnows(fleet.live, newcomers), "every node to know the newcomers")
    figures["churn_newcomers_known_s"] = round(time.monotonic() - churned, 1)

    # 3. An orderly stop and a start: the volume keeps the node's id.
    before = fleet.rpc("n1", "getnetworkinfo")["node_id"]
    podman.run("stop", "--time", "20", podman.name("n1"))
    stopped = podman.out("inspect", podman.name("n1"), "--format", "{{.State.ExitCode}}")
    assert stopped == "0", "SIGTERM: the node saves its tables and exits 0"
    podman.run("start", podman.name("n1"))
    fleet.lookUp("n1")
    waitFor(lambda: fleet.connected(fleet.live), "n1 back in the network")
    assert fleet.rpc("n1", "getnetworkinfo")["node_id"] == before

    # 4. Partition: half the nodes cut off, then connected again.
    cut = fleet.live[: len(fleet.live) // 2]
    rest = [n for n in fleet.live if n not in cut]
    cutAt = time.monotonic()
    for name in cut:
        podman.run("network", "disconnect", fleet.network, podman.name(name))
    figures["partition_commands_s"] = round(time.monotonic() - cutAt, 1)
    waitFor(
        lambda: (lambda peers: set(peers) == set(rest)
                 and all(not (peers[n] & set(cut)) for n in rest))(fleet.snapshot(rest)[0]),
        "the rest to drop its links to the cut-off half")
    waitFor(lambda: all(fleet.inside(name, "getconnectioncount") == "0" for name in cut),
            "the cut-off nodes to drop all their links (they have no network)")
    figures["partition_noticed_s"] = round(time.monotonic() - cutAt, 1)
    assert fleet.connected(rest), "the half left on the network stays one network"
    healed = time.monotonic()
    for name in cut:
        podman.run("network", "connect", "--ip", fleet.ips[name], "--alias", SEED_NAME,
                   fleet.network, podman.name(name))
    figures["heal_commands_s"] = round(time.monotonic() - healed, 1)
    waitFor(lambda: fleet.connected(fleet.live), "the two halves to be one network again")
    figures["heal_one_network_s"] = round(time.monotonic() - healed, 1)
    fleet.scrapeAll()

    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
    print("fleet figures:", json.dumps(figures))


def test_theStatefulSetsPodRunsUnderKubePlay(podman, tmp_path):
    """
    The pod of C{deploy/kubernetes/statefulset.yaml}, with the ConfigMap, run
    by C{podman kube play}: it runs as the image's user on a read-only root,
    keeps its data in the claimed volume, answers /health without
    credentials and /metrics only with the Secret's password, and stops
    cleanly (SIGTERM, exit 0).

    What differs from a cluster, each because of podman 4.3 (Debian's):
    kube play runs Pods, not StatefulSets, so the Pod is the template with
    the claim as a named volume; a Secret is read from podman's secret store
    as JSON of base64 values, under this run's name; podman publishes every
    containerPort on the host's same port, so free host ports are given;
    the seed name, the headless Service's, resolves to nothing here.
    """
    yaml = pytest.importorskip("yaml", reason="PyYAML (with kubernetes-validate) is not installed")
    deploy = ROOT / "deploy" / "kubernetes"
    statefulset = yaml.safe_load((deploy / "statefulset.yaml").read_text())
    configmap = yaml.safe_load((deploy / "configmap.yaml").read_text())
    template = statefulset["spec"]["template"]
    name = podman.name("kube")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **{k: template["metadata"][k] for k in ("labels", "annotations")}},
        "spec": template["spec"],
    }
    spec = pod["spec"]
    spec["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}})
    [container] = spec["containers"]
    container["image"] = podman.image
    hostPorts = {}
    for port in container["ports"]:
        port["hostPort"] = hostPorts[port["name"]] = freePort()
    secret = podman.name("rpc")
    password = "kube-" + uuid.uuid4().hex
    [variable] = container["env"]
    variable["valueFrom"]["secretKeyRef"]["name"] = secret
    podman.run("secret", "create", secret, "-",
               input=json.dumps({"password": base64.b64encode(password.encode()).decode()}).encode())
    network = podman.name("kubenet")
    podman.run("network", "create", network)
    played = tmp_path / "pod.yaml"
    played.write_text(yaml.safe_dump_all([configmap, pod]))
    podman.run("kube", "play", "--network", network, str(played), timeout=180)
    member = f"{name}-{container['name']}"

    control = f"http://127.0.0.1:{hostPorts['control']}"

    def up() -> bool:
        # bitp2p-cli -health's check: 200 and "up".
        try:
            return cli.health("127.0.0.1", hostPorts["control"]) == "up"
        except cli.CLIError:
            return False

    waitFor(up, "the pod's /health to answer up", 60)
    with urllib.request.urlopen(f"{control}/health", timeout=3) as response:
        assert response.read() == b"up\n"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{control}/metrics", timeout=3)
    assert refused.value.code == 401
    auth = base64.b64encode(f"bitp2p:{password}".encode()).decode()
    request = urllib.request.Request(f"{control}/metrics", headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(request, timeout=3) as response:
        families = {f.name for f in text_string_to_metric_families(response.read().decode())}
    assert {"bitp2p_peers", "bitp2p_build_info"} <= families

    def inside(*command: str) -> subprocess.CompletedProcess:
        return podman.run("exec", member, *command, check=False, timeout=60)

    assert inside("id", "-u").stdout.strip() == b"10001"
    assert b"Read-only file system" in inside("touch", "/written").stderr
    assert inside("test", "-s", "/data/node_id").returncode == 0
    logged = podman.run("logs", member).stdout.decode()
    records = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert any(r["message"].startswith("Node ") and "listening on 0.0.0.0:5000" in r["message"]
               for r in records), logged
    assert [r["host"] for r in records if "resolved to no address" in r["message"]] == ["bitp2p-headless"]

    podman.run("pod", "stop", "--time", "20", name)
    assert podman.out("inspect", member, "--format", "{{.State.ExitCode}}") == "0"
    podman.run("kube", "down", str(played))


def test_whyItSkipsIsSaid(tmp_path, monkeypatch):
    """
    Where podman cannot run the fleet, the skip says why, in one line: no
    podman, not root, a base image named but missing.
    """
    import shutil

    from . import podman as podmanModule

    engine = Podman(str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(PodmanUnusable, match=r"^podman is not installed \(as root: bash .ci/system-deps"):
        engine.usable()
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(podmanModule.os, "geteuid", lambda: 1000)
    with pytest.raises(PodmanUnusable, match="^the fleet test runs podman as root"):
        engine.usable()
