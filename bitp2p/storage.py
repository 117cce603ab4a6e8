"""
The data directory: the node id and the peers file, written atomically.

Layout of C{--datadir DIR}::

    DIR/node_id       the node id, one line
    DIR/peers.json    the address manager (L{bitp2p.addrman})
    DIR/banlist.json  the bans (L{bitp2p.banman})
    DIR/anchors.json  the outbound peers at the last shutdown; read and
                      deleted at start
    DIR/.lock         held (flock) by the node using the directory, as
                      Bitcoin Core's C{.lock}: a second node, in this
                      process or another, is refused (L{DataDirInUse})
                      rather than sharing the files silently; released when
                      the node stops and when its process dies

The last three are I{documents}: a header line, then the body, one JSON
value::

    {"format": "bitp2p-peers", "version": 2, "sha256": "<hex of the body bytes>"}
    {...body...}

The checksum covers the body's bytes exactly as written, so truncation or a
flipped byte is caught, and C{format} keeps a file of one kind from being read
as another. Every write goes to a temporary file in the same directory, is
fsynced, then renamed over the old file (and the directory fsynced), so a
crash leaves either the old file or the new one, never half of one. A file
that is damaged, of another kind or of an unknown version is moved aside
(C{peers.json.damaged-<unix time>}) with a warning, and the node starts as if
it were absent; it never crashes the node.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import weakref
from pathlib import Path
from typing import Any, Callable

from twisted.logger import Logger

from bitp2p.constants import LOCK_FILE, NODE_ID_FILE, NODE_ID_MAX_CHARS

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    try:
        import msvcrt
    except ImportError:
        msvcrt = None

log = Logger()


class DataDirInUse(Exception):
    """
    Another node (in this process or another) holds the data directory's
    lock. Its C{str()} is one line.
    """

    def __init__(self, path: Path | str) -> None:
        super().__init__(f"data directory {path} is in use by another node")
        self.path = path

_NODE_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{NODE_ID_MAX_CHARS}}}")


def new_node_id() -> str:
    """
    A fresh random node id: 32 hex characters (128 bits).
    """
    return secrets.token_hex(16)


def atomic_write(path: Path | str, data: bytes, mode: int = 0o600) -> None:
    """
    Replace C{path} with C{data} atomically: a new file of mode C{mode}
    under a temporary name (created exclusively, so never someone else's
    file and never wider than C{mode}), fsynced, renamed over C{path}; then
    the directory is fsynced.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
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
    @ivar locked: whether this object holds the directory's lock.

    @raise DataDirInUse: when another node holds the lock.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lockFd: int | None = None
        self.lock()
        # A save cut short (the process killed mid-write) leaves its
        # temporary file behind: never read, removed at the next start.
        for stale in self.path.glob(".*.tmp-*"):
            try:
                stale.unlink()
            except OSError:
                pass

    @property
    def locked(self) -> bool:
        return self._lockFd is not None

    def lock(self) -> None:
        """
        Take the directory's lock (C{.lock}, an exclusive C{flock}), unless
        held already. The lock belongs to the open file, so a second node
        of the same process is refused too, and it goes when the process
        dies, however it dies.

        @raise DataDirInUse: when another node holds it.
        """
        if self._lockFd is not None:
            return
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            elif msvcrt is not None:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            os.close(fd)
            raise DataDirInUse(self.path) from None
        # Who holds it, for bitp2p-cli to tell a running node's cookie from
        # one a killed node left, without touching the lock itself.
        try:
            os.ftruncate(fd, 0)
            os.write(fd, b"%d\n" % os.getpid())
        except OSError:
            pass
        self._lockFd = fd
        # Like a file object: dropped without unlock(), it still lets go.
        self._release = weakref.finalize(self, os.close, fd)

    def unlock(self) -> None:
        """
        Release the lock (the C{.lock} file stays, as Core's does).
        """
        fd, self._lockFd = self._lockFd, None
        if fd is not None:
            self._release()  # closes the file, which releases its lock

    @property
    def node_id_path(self) -> Path:
        return self.path / NODE_ID_FILE

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

    def set_aside(self, name: str, now: float, why: str) -> None:
        """
        A document parsed but its content is unusable: move it aside.
        """
        path = self.path / name
        if path.exists():
            set_aside(path, now, why)

    def load_document(
        self,
        name: str,
        kind: str,
        version: int,
        now: float,
        upgrade: Callable[[object], Any] | None = None,
    ) -> Any | None:
        """
        The body of the document C{name}, or L{None} if there is none or it
        cannot be used (then it is set aside with a warning).

        @param kind: the expected C{format}.
        @param version: the expected C{version}.
        @param upgrade: for a file that is not a document at all but one
            JSON value (an older bitp2p's format): returns the body it
            stands for, or raises L{ValueError}.
        """
        path = self.path / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warn("Cannot read {path}: {error}", path=str(path), error=e)
            return None
        try:
            return decode_document(raw, kind, version, upgrade)
        except ValueError as e:
            set_aside(path, now, str(e).splitlines()[0] if str(e) else "unreadable")
            return None

    def save_document(self, name: str, kind: str, version: int, body: Any) -> None:
        """
        Write the document C{name} atomically.

        @raise OSError: if it cannot be written.
        """
        atomic_write(self.path / name, encode_document(kind, version, body))

    def remove(self, name: str) -> None:
        try:
            os.unlink(self.path / name)
        except FileNotFoundError:
            pass


def encode_document(kind: str, version: int, body: Any) -> bytes:
    """
    A header line naming C{kind}, C{version} and the body's checksum, then
    the body as JSON.
    """
    payload = json.dumps(body, separators=(",", ":")).encode()
    header = {"format": kind, "version": version, "sha256": hashlib.sha256(payload).hexdigest()}
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + payload + b"\n"


def decode_document(
    raw: bytes, kind: str, version: int, upgrade: Callable[[object], Any] | None = None
) -> Any:
    """
    The body of an L{encode_document} document.

    @raise ValueError: saying what is wrong: not a document, another kind,
        another version, a checksum mismatch, a body that is not JSON.
    """
    head, sep, payload = raw.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        header = None
    if not isinstance(header, dict) or "format" not in header:
        if upgrade is None:
            raise ValueError("not a bitp2p document")
        try:
            old = json.loads(raw)
        except ValueError as e:
            raise ValueError(f"not JSON: {e}") from None
        return upgrade(old)
    if header.get("format") != kind:
        raise ValueError(f"a {header.get('format')!r} file, not {kind!r}")
    if header.get("version") != version:
        raise ValueError(f"{kind} version {header.get('version')!r}; this bitp2p reads {version}")
    payload = payload.rstrip(b"\n")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise ValueError("checksum mismatch")
    try:
        return json.loads(payload)
    except ValueError as e:
        raise ValueError(f"body is not JSON: {e}") from None
