"""
The per-user default data directory of C{twistd bitp2p} and C{python -m
bitp2p}, and how C{bitp2p-cli} finds a running node's in it.

One directory per node, C{<base>/<network>-<port>} (C{bitp2p-5000},
C{regtest-18444}): the network's name keeps two networks on one port apart,
the port two nodes of one network. The base follows each platform's rule:

  - Linux and other Unix: C{$XDG_DATA_HOME/bitp2p}, else
    C{~/.local/share/bitp2p} (the XDG base-directory specification; a
    relative C{XDG_DATA_HOME} is ignored, as the specification says);
  - macOS: C{~/Library/Application Support/bitp2p};
  - Windows: C{%LOCALAPPDATA%\\bitp2p}, else C{~\\AppData\\Local\\bitp2p}.

A node on port 0 (a port the system picks) or listening only on endpoints
without a TCP port has no default: its port would change at each run.

Library users who build a L{Node<bitp2p.node.Node>} get none of this: their
node has no data directory unless its C{NodeConfig} names one.

This module owns those names and the search of C{bitp2p-cli}; it uses only
the standard library (C{bitp2p-cli} imports it) and must not know the node.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import sys
from typing import Mapping

from bitp2p.constants import COOKIE_FILE, LOCK_FILE, RPC_PORT_FILE

try:
    import fcntl
except ImportError:  # Windows: every candidate counts as running
    fcntl = None

__all__ = ["baseDir", "defaultDatadir", "findNode", "listenPort", "runningNodes"]

APP_NAME = "bitp2p"


def baseDir(
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: str | None = None,
) -> str:
    """
    The per-user folder under which each node has its data directory.

    @param platform: C{sys.platform} by default (C{"linux"}, C{"darwin"},
        C{"win32"}, ...).
    @param environ: C{os.environ} by default.
    @param home: the user's home folder; by default C{HOME} (C{USERPROFILE}
        on Windows), else C{os.path.expanduser("~")}.
    """
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    windows = platform.startswith("win")
    path = ntpath if windows else posixpath
    if home is None:
        home = environ.get("USERPROFILE" if windows else "HOME") or os.path.expanduser("~")
    if windows:
        local = environ.get("LOCALAPPDATA")
        if not local:
            local = path.join(home, "AppData", "Local")
        return path.join(local, APP_NAME)
    if platform == "darwin":
        return path.join(home, "Library", "Application Support", APP_NAME)
    data = environ.get("XDG_DATA_HOME", "")
    if not path.isabs(data):
        data = path.join(home, ".local", "share")
    return path.join(data, APP_NAME)


def listenPort(endpoint: str) -> int | None:
    """
    The TCP port of a server endpoint string (C{tcp:5000},
    C{tcp6:port=5000:interface=\\:\\:}), or L{None} when it has none
    (C{unix:...}, C{onion:...}) or it cannot be read.
    """
    kind, _, rest = endpoint.partition(":")
    if kind not in ("tcp", "tcp6", "ssl"):
        return None
    positional = None
    for field in rest.split(":"):
        if field.startswith("port="):
            positional = field[len("port="):]
            break
        if "=" not in field and positional is None:
            positional = field
    try:
        return int(positional) if positional is not None else None
    except ValueError:
        return None


def defaultDatadir(
    network: str,
    port: int | None,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: str | None = None,
) -> str | None:
    """
    The default data directory of a node of C{network} listening on
    C{port}: C{<baseDir>/<network>-<port>}; L{None} for port 0 or no port.
    """
    if not port:
        return None
    platform = sys.platform if platform is None else platform
    path = ntpath if platform.startswith("win") else posixpath
    return path.join(baseDir(platform, environ, home), f"{network}-{port}")


def runningNodes(base: str | None = None) -> list[tuple[str, int | None]]:
    """
    The data directories under C{base} (L{baseDir} by default) that hold a
    control API cookie (a node serving C{--rpc-port} or C{--web-port}),
    each with the port written beside it (C{.rpcport}, or L{None}), sorted.
    """
    base = baseDir() if base is None else base
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    found = []
    for name in names:
        datadir = os.path.join(base, name)
        if not os.path.isfile(os.path.join(datadir, COOKIE_FILE)):
            continue
        try:
            with open(os.path.join(datadir, RPC_PORT_FILE), encoding="ascii") as f:
                port: int | None = int(f.read().strip())
        except (OSError, ValueError):
            port = None
        found.append((datadir, port))
    return found


def _running(datadir: str) -> bool:
    """
    Whether a node holds C{datadir}'s lock: the process whose id the lock
    file holds is alive (a node killed leaves its cookie and its id
    behind). Without an id there (or where processes cannot be asked), a
    probe of the lock, which takes a shared lock for an instant: so it is
    made only to choose among several.
    """
    path = os.path.join(datadir, LOCK_FILE)
    try:
        with open(path, encoding="ascii") as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    if pid > 0 and hasattr(os, "kill") and sys.platform != "win32":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True  # alive, another user's
        return True
    if fcntl is None:
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # and with it the shared lock, if it was taken
    return False


def findNode(rpcPort: int | None = None, base: str | None = None) -> str:
    """
    The data directory, under C{base} (L{baseDir} by default), of the one
    running node whose control API serves C{rpcPort} (any port when
    L{None}): what C{bitp2p-cli} uses without C{--datadir}. Among several,
    those whose lock no node holds (a node killed leaves its cookie) are
    left out.

    @raise LookupError: with a one-line message, for none or several.
    """
    base = baseDir() if base is None else base
    found = [(d, p) for d, p in runningNodes(base) if rpcPort is None or p == rpcPort]
    if len(found) > 1:
        found = [(d, p) for d, p in found if _running(d)] or found
    if len(found) == 1:
        return found[0][0]
    where = f" with --rpc-port {rpcPort}" if rpcPort is not None else ""
    if not found:
        raise LookupError(f"no running node{where} has a cookie in {base}")
    ports = ", ".join(str(p) for _, p in found if p is not None)
    raise LookupError(
        f"{len(found)} nodes{where} have a cookie in {base}: give --datadir"
        + (f" or --rpc-port (one of {ports})" if rpcPort is None and ports else "")
    )
