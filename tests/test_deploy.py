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


def _args(statefulset: dict) -> list[str]:
    return statefulset["spec"]["template"]["spec"]["containers"][0]["args"]


def _option(args: list[str], name: str) -> str:
    assert args.count(name) == 1, name
    return args[args.index(name) + 1]


def test_manifestsFitTogether():
    """
    The pieces name each other right: the StatefulSet's service is the
    headless Service, whose DNS name is the nodes' seed; selectors match
    the pods' labels (the Service's, the PDB's); the probes ask /health on
    the control API's port, the one Prometheus is told to scrape; the
    data volume is mounted at the --datadir the command uses; every
    $(VAR) of the command is defined, from the ConfigMap and the Secret.
    """
    k = kinds()
    service, statefulset, pdb = k["Service"], k["StatefulSet"], k["PodDisruptionBudget"]
    configmap, secret = k["ConfigMap"], k["Secret"]
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    args = _args(statefulset)
    labels = spec["template"]["metadata"]["labels"]

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
    p2p = int(_option(args, "--port"))
    assert ports["p2p"] == p2p == 5000
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(p2p, "p2p")]
    assert _option(args, "--rpc-port") == f"tcp:{ports['control']}:interface=0.0.0.0"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "control"}, probe
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["control"])
    assert annotations["prometheus.io/path"] == "/metrics"

    # Seeding through the headless Service's DNS name.
    name = service["metadata"]["name"]
    assert _option(args, "--seed") == (
        f"{name}.$(POD_NAMESPACE).svc.$(BITP2P_CLUSTER_DOMAIN):{p2p}"
    )

    # The data directory: a volume per pod, mounted where --datadir says.
    claims = [c["metadata"]["name"] for c in spec["volumeClaimTemplates"]]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert claims == ["data"]
    assert mounts["data"] == _option(args, "--datadir")

    # Every $(VAR) is defined; from the ConfigMap and the Secret as named.
    env = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}
    used = set(re.findall(r"\$\((\w+)\)", " ".join(args)))
    assert used <= set(env), used - set(env)
    for var, source in env.items():
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            assert ref["name"] == configmap["metadata"]["name"]
            assert ref["key"] in configmap["data"], var
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret["stringData"], var
        else:
            assert source == {"fieldRef": {"fieldPath": "metadata.namespace"}}, var
    assert env["BITP2P_RPC_PASSWORD"]["secretKeyRef"]["key"] == "password"
    assert _option(args, "--rpc-password") == "$(BITP2P_RPC_PASSWORD)"

    # Not root, nothing written outside the volumes, no capabilities.
    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["image"] == "bitp2p:latest"
    assert container["command"] == ["twistd"]
    assert args[:3] == ["--nodaemon", "--pidfile=", "bitp2p"]


def test_podCommandLineParses(tmp_path):
    """
    The pod's command line, its $(VAR)s expanded as the kubelet would
    (from the ConfigMap, the example Secret, namespace C{default}), is
    accepted by the plugin's real options parser, and means what the
    manifests say.
    """
    k = kinds()
    values = {**k["ConfigMap"]["data"], "POD_NAMESPACE": "default"}
    values["BITP2P_RPC_PASSWORD"] = k["Secret"]["stringData"]["password"]
    args = [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], a) for a in _args(k["StatefulSet"])]
    args = args[3:]  # after twistd's own options and the plugin's name
    args[args.index("--datadir") + 1] = str(tmp_path / "data")
    options = Options()
    options.parseOptions(args)
    config = options.config
    assert config.port == 5000
    assert config.datadir == str(tmp_path / "data")
    assert list(config.seeds) == ["bitp2p-headless.default.svc.cluster.local:5000"]
    assert config.max_outbound == int(values["BITP2P_MAX_OUTBOUND"])
    assert options["rpc-password"] == values["BITP2P_RPC_PASSWORD"]
