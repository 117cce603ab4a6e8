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
