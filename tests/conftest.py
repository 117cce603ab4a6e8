"""
pytest's set-up for the whole suite: no test writes in the real home.

A node run by twistd or C{python -m bitp2p} without C{--datadir} keeps its
files in a per-user folder (L{bitp2p.ops.datadir}): each test gets a
temporary one of its own, through the environment, which the processes a
test starts inherit. (Under trial, C{tests/__init__.py} does the same once
for the whole run.)
"""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(autouse=True)
def perUserFolders(tmp_path, monkeypatch):
    home = tmp_path / "user-data"
    home.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg"))
    monkeypatch.setenv("LOCALAPPDATA", str(home / "local"))
    if sys.platform == "darwin":  # ~/Library/Application Support
        monkeypatch.setenv("HOME", str(home))
    yield home
