"""
The deployment files (C{deploy/}): the systemd unit, checked by
C{systemd-analyze verify} and read for its hardening, and the Kubernetes
manifests, validated offline against a fixed Kubernetes version's schemas
and checked to fit together.

A check whose tool is missing is skipped, saying so; a skip is not a pass.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from bitp2p.ops.container import commandLine, optionArguments
from bitp2p.ops.tap import Options

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT = DEPLOY / "systemd" / "bitp2p@.service"
# Where the unit expects bitp2p installed (a virtualenv; the unit says so).
INSTALLED_TWISTD = "/opt/bitp2p/venv/bin/twistd"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needsSystemdAnalyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed: the unit is not verified"
)

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service",
    "CapabilityBoundingSet": "",
    "DynamicUser": "yes",
}


def readUnit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # keys keep their case
    parser.read_string(text)
    return parser


def verify(tmp_path: Path, unitText: str) -> subprocess.CompletedProcess:
    """
    C{systemd-analyze verify} of instance C{bitp2p@5000.service} of
    C{unitText}, with C{ExecStart}'s twistd replaced by an executable in
    C{tmp_path} (verify insists the binary exists).
    """
    fake = tmp_path / "twistd"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "bitp2p@.service").write_text(unitText.replace(INSTALLED_TWISTD, str(fake)))
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(tmp_path / "bitp2p@5000.service")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )


@needsSystemdAnalyze
def test_unitVerifies(tmp_path):
    """
    The unit, instantiated for port 5000, passes C{systemd-analyze verify}
    with nothing to say about it (verify exits 0 on unknown keys and bad
    values, only warning: any line about the unit fails the test).
    """
    result = verify(tmp_path, UNIT.read_text())
    about = [line for line in result.stderr.splitlines() if "bitp2p@" in line]
    assert (result.returncode, about) == (0, []), result.stderr


@needsSystemdAnalyze
def test_verifyCatchesMistakes(tmp_path):
    """
    The check above can fail: a misspelt key, a bad value, a missing
    binary are all reported.
    """
    text = UNIT.read_text()
    broken = text.replace("ProtectSystem=strict", "ProtectSystem=strick\nProtectHomes=yes")
    result = verify(tmp_path, broken)
    assert "ProtectHomes" in result.stderr and "strick" in result.stderr, result.stderr
    missing = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(tmp_path / "bitp2p@5000.service")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert missing.returncode == 0  # the fake binary is there
    (tmp_path / "twistd").unlink()
    missing = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(tmp_path / "bitp2p@5000.service")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert missing.returncode != 0 and "not executable" in missing.stderr, missing.stderr


def test_unitHardening():
    """
    The unit runs as its own user, with the hardening options set, the
    data directory under StateDirectory=, restarts on failure, and reads
    its extra options from an optional file per instance.
    """
    unit = readUnit(UNIT.read_text())
    service = unit["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, key
    assert int(service["LimitNOFILE"]) >= 1024
    assert service["StateDirectory"] == "bitp2p/%i"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "-/etc/bitp2p/%i.env"
    assert service.get("KillSignal", "SIGTERM") == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unitCommandLine(tmp_path):
    """
    C{ExecStart} runs twistd in the foreground without a pid file, on the
    instance's port, with the data directory StateDirectory= makes; and
    the plugin's real options parser accepts its arguments.
    """
    service = readUnit(UNIT.read_text())["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[:4] == [INSTALLED_TWISTD, "--nodaemon", "--pidfile=", "bitp2p"]
    assert argv[-1] == "$BITP2P_OPTS"
    args = argv[4:-1]
    assert args[args.index("--port") + 1] == "%i"
    assert args[args.index("--datadir") + 1] == "/var/lib/" + service["StateDirectory"]
    # As systemd would run bitp2p@5000 (BITP2P_OPTS empty), with the data
    # directory moved to a temporary one.
    instance = [a.replace("%i", "5000") for a in args]
    instance[instance.index("--datadir") + 1] = str(tmp_path / "5000")
    options = Options()
    options.parseOptions(instance)
    assert options.config.port == 5000
    assert options.config.datadir == str(tmp_path / "5000")


# -- Kubernetes ---------------------------------------------------------------

KUBERNETES = DEPLOY / "kubernetes"
# The Kubernetes version whose schemas the manifests are validated against
# (kubernetes-validate ships them: no network).
KUBERNETES_VERSION = "1.34.0"
NOT_KUBERNETES = {"kustomization.yaml"}  # kustomize's, not an API object


def manifests() -> dict[str, dict]:
    """
    Every Kubernetes object of C{deploy/kubernetes/}, by file name (one
    object a file).
    """
    yaml = pytest.importorskip("yaml", reason="PyYAML (with kubernetes-validate) is not installed")
    found = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name in NOT_KUBERNETES:
            continue
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert len(docs) == 1, path.name
        found[path.name] = docs[0]
    return found


def kinds() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in manifests().values()}


def test_manifestsValidate():
    """
    Every manifest is valid against the schemas of Kubernetes
    L{KUBERNETES_VERSION}, strictly (no unknown field).
    """
    validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (the test extra)"
    ).validate
    found = manifests()
    assert set(found) == {
        "configmap.yaml", "service.yaml", "statefulset.yaml", "secret.example.yaml", "pdb.yaml"
    }
    for name, doc in found.items():
        assert validate(doc, KUBERNETES_VERSION, strict=True) == "1.34", name


def test_validationCatchesMistakes():
    """
    The validation above can fail: a misspelt field, a wrong type.
    """
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (the test extra)"
    )
    statefulset = kinds()["StatefulSet"]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kv.ValidationError):
        kv.validate(statefulset, KUBERNETES_VERSION, strict=True)
    statefulset = kinds()["StatefulSet"]
    statefulset["spec"]["replicas"] = "three"
    with pytest.raises(kv.ValidationError):
        kv.validate(statefulset, KUBERNETES_VERSION, strict=True)


def test_kustomizationListsTheManifests():
    """
    kustomization.yaml lists every manifest but the example Secret (which
    must never be applied as it is).
    """
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(
        name for name in manifests() if name != "secret.example.yaml"
    )


CONTAINERFILE = DEPLOY.parent / "Containerfile"


def imageEnvironment() -> dict[str, str]:
    """
    The variables the C{Containerfile} sets (its C{ENV} lines).
    """
    text = CONTAINERFILE.read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def podEnvironment(k: dict[str, dict]) -> dict[str, str]:
    """
    The BITP2P_ variables the StatefulSet's container runs with: the image's,
    then the ConfigMap's (envFrom), then its own (the example Secret's
    password), as the kubelet would set them.
    """
    container = k["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    env = {n: v for n, v in imageEnvironment().items() if n.startswith("BITP2P_")}
    env.update(k["ConfigMap"]["data"])
    for variable in container["env"]:
        ref = variable["valueFrom"]["secretKeyRef"]
        env[variable["name"]] = k["Secret"]["stringData"][ref["key"]]
    return env


def podOptions(k: dict[str, dict], datadir: str | None = None) -> Options:
    """
    The plugin's options, parsed by its real parser from the command line
    the image's entry point makes of the pod's variables.
    """
    env = podEnvironment(k)
    if datadir is not None:
        env["BITP2P_DATADIR"] = datadir
    line = commandLine(env, [])
    assert line[:4] == ["twistd", "--nodaemon", "--pidfile=", "bitp2p"]
    options = Options()
    options.parseOptions(line[4:])
    return options


def test_manifestsFitTogether(tmp_path):
    """
    The pieces name each other right: the StatefulSet's service is the
    headless Service, whose DNS name is the nodes' seed; selectors match
    the pods' labels (the Service's, the PDB's); the probes ask /health on
    the control API's port, the one Prometheus is told to scrape; the
    data volume is mounted at the data directory the image's entry point
    gives the node; the ConfigMap names only options; the pod's user is
    the image's.
    """
    k = kinds()
    service, statefulset, pdb = k["Service"], k["StatefulSet"], k["PodDisruptionBudget"]
    configmap, secret = k["ConfigMap"], k["Secret"]
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    labels = spec["template"]["metadata"]["labels"]
    options = podOptions(k)

    assert spec["replicas"] >= 3
    assert spec["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    for selector in (spec["selector"]["matchLabels"], service["spec"]["selector"],
                     pdb["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1

    # Ports: P2P, and the control API (probes, metrics).
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    p2p = options.config.port
    assert ports["p2p"] == p2p == 5000
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(p2p, "p2p")]
    assert options["rpc-endpoint"] == f"tcp:{ports['control']}:interface=0.0.0.0"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "control"}, probe
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["control"])
    assert annotations["prometheus.io/path"] == "/metrics"
    exposed = re.search(r"(?m)^EXPOSE (.*)$", CONTAINERFILE.read_text()).group(1).split()
    assert sorted(exposed) == sorted(f"{port}/tcp" for port in ports.values())

    # Seeding through the headless Service's DNS name (short: the pod's
    # DNS search path completes it with the namespace and cluster domain).
    assert list(options.config.seeds) == [f"{service['metadata']['name']}:{p2p}"]

    # The data directory: a volume per pod, mounted where the node keeps it,
    # which is the image's volume.
    claims = [c["metadata"]["name"] for c in spec["volumeClaimTemplates"]]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert claims == ["data"]
    assert mounts["data"] == options["datadir"] == "/data"
    assert 'VOLUME ["/data"]' in CONTAINERFILE.read_text()

    # The options come from the ConfigMap (every key an option: the entry
    # point refuses others) and the Secret; no command line of its own.
    assert "command" not in container and "args" not in container
    assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    optionArguments(configmap["data"])
    [password] = container["env"]
    assert password["name"] == "BITP2P_RPC_PASSWORD"
    assert password["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "password"}
    assert options["rpc-password"] == secret["stringData"]["password"]
    # Service links would add BITP2P_HEADLESS_SERVICE_HOST and such, which
    # the entry point refuses.
    assert pod["enableServiceLinks"] is False

    # Not root (the image's user), nothing written outside the volumes, no
    # capabilities.
    security = container["securityContext"]
    user = re.search(r"(?m)^USER (\d+):(\d+)$", CONTAINERFILE.read_text())
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(user.group(1)), int(user.group(2))) != (0, 0)
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["image"] == "bitp2p:latest"


def test_podOptionsParse(tmp_path):
    """
    The pod's options, as the image's entry point makes them of its
    variables, are accepted by the plugin's real options parser and mean
    what the manifests say.
    """
    k = kinds()
    options = podOptions(k, datadir=str(tmp_path / "data"))
    config = options.config
    assert config.port == 5000
    assert config.datadir == str(tmp_path / "data")
    assert list(config.seeds) == ["bitp2p-headless:5000"]
    assert config.max_outbound == int(k["ConfigMap"]["data"]["BITP2P_MAX_OUTBOUND"])
    assert config.max_connections == int(k["ConfigMap"]["data"]["BITP2P_MAX_CONNECTIONS"])
    assert options["log-format"] == "json"
