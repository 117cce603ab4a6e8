"""
The package layout: the operator's tools live in L{bitp2p.ops}, their old
paths still import the same objects, and the core does not import them.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import bitp2p

# Old path -> new path, and names users and tests took from the old path.
MOVED = {
    "bitp2p.control": (
        "bitp2p.ops.control",
        [
            "Authenticator",
            "ControlAPI",
            "ControlService",
            "Guarded",
            "RPCError",
            "METHODS",
            "MAX_BODY_BYTES",
            "AUTH_FAILURES_ALLOWED",
            "AUTH_FAILURE_WINDOW_S",
            "AUTH_FAILURE_DELAY_S",
        ],
    ),
    "bitp2p.cli": (
        "bitp2p.ops.cli",
        ["CLIError", "call", "main", "printPeers", "printNetinfo", "printResult", "DEFAULT_RPC_PORT"],
    ),
    "bitp2p.web": ("bitp2p.ops.web", ["STATIC_DIR", "dashboardResource", "sameOrigin", "snapshot"]),
    "bitp2p.metrics": ("bitp2p.ops.metrics", ["MetricsResource", "NodeCollector", "registryFor"]),
    "bitp2p.console": (
        "bitp2p.ops.console",
        ["Commands", "ConsoleService", "PipeConsole", "TerminalConsole", "formatLogLine", "age"],
    ),
    "bitp2p.tap": (
        "bitp2p.ops.tap",
        ["Options", "NodeService", "makeService", "makeNode", "addControl", "UsageFailure"],
    ),
}

# The operator's tools; everything else in bitp2p but its entry point
# (__main__, which runs the console) is the core.
OPS = ("bitp2p.ops", *MOVED)
ENTRY_POINTS = ("bitp2p.__main__",)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_oldPathsImportTheSameObjects(old):
    """
    Each old module path imports the very objects of its new path, and
    lists them in its C{__all__}.
    """
    new, names = MOVED[old]
    oldModule, newModule = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(oldModule, name) is getattr(newModule, name), name
    assert set(oldModule.__all__) >= set(newModule.__all__)
    for name in oldModule.__all__:
        assert hasattr(oldModule, name), name


def test_oldCLIPathRuns():
    """
    C{python -m bitp2p.cli} still runs the client.
    """
    result = subprocess.run(
        [sys.executable, "-m", "bitp2p.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: bitp2p-cli")


def test_logNamespacesKept():
    """
    The moved modules log under their old namespaces, which operators
    filter on.
    """
    from bitp2p.ops import console, tap, web
    from bitp2p.ops.control import auth, rpc, service, site

    for module in (auth, rpc, service, site):
        assert module.log.namespace == "bitp2p.control"
    assert (web.log.namespace, console.log.namespace, tap.log.namespace) == (
        "bitp2p.web",
        "bitp2p.console",
        "bitp2p.tap",
    )


def test_dashboardFilesBesideTheirModule():
    """
    The dashboard's files are where L{bitp2p.ops.web} serves them from.
    """
    from bitp2p.ops.web import STATIC_DIR

    assert sorted(p.name for p in STATIC_DIR.iterdir()) == ["app.js", "index.html", "style.css"]


def test_coreDoesNotImportOps():
    """
    No module of the core imports the operator's tools (L{bitp2p.views},
    the core's read-only face, included).
    """
    root = Path(bitp2p.__file__).parent
    core = [
        info.name
        for info in pkgutil.iter_modules([str(root)])
        if f"bitp2p.{info.name}" not in OPS + ENTRY_POINTS
    ]
    assert "views" in core and "node" in core
    for name in core:
        path = root / name / "__init__.py" if (root / name).is_dir() else root / f"{name}.py"
        sources = sorted(path.parent.glob("*.py")) if path.name == "__init__.py" else [path]
        tree = ast.Module(
            body=[
                statement
                for source in sources
                for statement in ast.parse(source.read_text(encoding="utf-8")).body
            ],
            type_ignores=[],
        )
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                imported = [a.name for a in node.names]
            else:
                continue
            for module in imported:
                assert not module.startswith(OPS), f"bitp2p.{name} imports {module}"
