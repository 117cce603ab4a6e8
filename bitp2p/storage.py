"""
The data directory: the node id and the peers file, written atomically.

Layout of C{--datadir DIR}::

    DIR/node_id      the node id, one line
    DIR/peers.json   {"version": 1, "addresses": {...address book...},
                      "discouraged": {"host": until_unix_seconds, ...}}

Every write goes to a temporary file in the same directory, is fsynced, then
renamed over the old file (and the directory fsynced), so a crash leaves
either the old file or the new one, never half of one. A file that cannot be
read back is moved aside (C{peers.json.damaged-<unix time>}) with a warning,
and the node starts as if it were absent.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from bitp2p.constants import NODE_ID_FILE, NODE_ID_MAX_CHARS, PEERS_FILE

log = Logger()

_NODE_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{NODE_ID_MAX_CHARS}}}")


def new_node_id() -> str:
    """
    A fresh random node id: 32 hex characters (128 bits).
    """
    return secrets.token_hex(16)


def atomic_write(path: Path, data: bytes) -> None:
    """
    Replace C{path} with C{data} atomically: temporary file, fsync, rename,
    fsync of the directory.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def set_aside(path: Path, now: float, why: str) -> Path:
    """
    Move a damaged file out of the way, keeping it for inspection.
    """
    aside = path.with_name(f"{path.name}.damaged-{int(now)}")
    os.replace(path, aside)
    log.warn(
        "{path} is damaged ({why}); moved it to {aside} and starting without it",
        path=str(path),
        why=why,
        aside=str(aside),
    )
    return aside


class DataDir:
    """
    The files of one node's data directory.

    @ivar path: the directory; created if missing.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def node_id_path(self) -> Path:
        return self.path / NODE_ID_FILE

    @property
    def peers_path(self) -> Path:
        return self.path / PEERS_FILE

    def load_node_id(self, now: float) -> str:
        """
        The node id kept here, or a new one (written at once) if there is none
        or it is damaged.
        """
        path = self.node_id_path
        if path.exists():
            try:
                text = path.read_text("ascii").strip()
            except (OSError, UnicodeDecodeError) as e:
                set_aside(path, now, str(e))
            else:
                if _NODE_ID.fullmatch(text):
                    return text
                set_aside(path, now, "not a valid node id")
        node_id = new_node_id()
        atomic_write(path, node_id.encode("ascii") + b"\n")
        return node_id

    def load_peers(self, now: float) -> dict[str, Any] | None:
        """
        The saved peers document, or L{None} if there is none or it is
        damaged (then it is set aside).
        """
        path = self.peers_path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != 1:
                raise ValueError("not a bitp2p peers file")
        except ValueError as e:
            set_aside(path, now, str(e).splitlines()[0])
            return None
        return data

    def save_peers(self, document: dict[str, Any]) -> None:
        """
        Write the peers document atomically.
        """
        atomic_write(self.peers_path, json.dumps(document, separators=(",", ":")).encode())

    def peers_damaged(self, now: float, why: str) -> None:
        """
        The peers document parsed but its content is unusable: set it aside.
        """
        if self.peers_path.exists():
            set_aside(self.peers_path, now, why)
