"""
Linux network namespaces, veth pairs and bridges for multi-host tests
(tests/test_multihost.py), driven with the C{ip} command (iproute2).

L{unavailable} says why namespaces cannot be made here (not root, no C{ip},
C{ip netns add} refused, as in an unprivileged container), or L{None}.

A L{Network} makes the pieces and registers, right after making each one, a
cleanup that removes it (with the test case's C{addCleanup}, so that a test
failing halfway still leaves nothing behind). Every name starts with
C{bpmh<pid>} (Linux interface names have at most 15 characters: the prefix
takes at most 11, the suffixes given here at most 4); L{removeLeftovers}
deletes what a run whose process is gone left behind (a run killed before
its cleanups ran).

Nothing here touches the root namespace's addresses or routes: the bridges
carry no address, so the namespaces form a network of their own.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
import uuid

PREFIX = "bpmh"
MAX_IFNAME = 15
_OURS = re.compile(rf"^{PREFIX}(\d+)[a-zA-Z]")
IP_TIMEOUT_S = 20


class NetnsError(Exception):
    """
    An C{ip} command failed: the command and what it said.
    """


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """
    Run C{ip ARGS}; with C{check}, raise L{NetnsError} if it fails.
    """
    done = subprocess.run(
        ["ip", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=IP_TIMEOUT_S,
    )
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def unavailable() -> str | None:
    """
    Why network namespaces cannot be made here, or L{None} if they can
    (checked by making one and deleting it).
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no ip command (iproute2)"
    probe = f"{PREFIX}{os.getpid()}p{uuid.uuid4().hex[:6]}"
    try:
        done = ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"ip netns add failed: {e}"
    if done.returncode != 0:
        return f"ip netns add failed: {done.stderr.strip() or done.returncode}"
    ip("netns", "delete", probe, check=False)
    ip("link", "add", f"{PREFIX}{os.getpid()}q", "type", "bridge", check=False)
    done = ip("link", "show", f"{PREFIX}{os.getpid()}q", check=False)
    ip("link", "delete", f"{PREFIX}{os.getpid()}q", check=False)
    if done.returncode != 0:
        return "cannot make a bridge (ip link add type bridge)"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def removeLeftovers() -> list[str]:
    """
    Delete the namespaces and links named by a run whose process is gone.

    @return: the names deleted.
    """
    removed = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _OURS.match(name)
        if match and not _alive(int(match.group(1))):
            if ip("netns", "delete", name, check=False).returncode == 0:
                removed.append(name)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        # "12: bpmh123a0@if11: <...> ..."
        fields = line.split(":")
        if len(fields) < 2:
            continue
        name = fields[1].strip().split("@")[0]
        match = _OURS.match(name)
        if match and not _alive(int(match.group(1))):
            if ip("link", "delete", name, check=False).returncode == 0:
                removed.append(name)
    return removed


def freeSubnet(seed: int) -> ipaddress.IPv4Network:
    """
    A /24 in 10.0.0.0/8 that overlaps none of the root namespace's
    addresses or routes, picked from C{seed} (the namespaces' network is
    isolated, so a clash would be harmless, but keeps the figures readable).
    """
    taken = []
    for args in (("-o", "-4", "addr", "show"), ("-4", "route", "show", "table", "all")):
        for word in ip(*args, check=False).stdout.split():
            try:
                taken.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    taken = [n for n in taken if n.version == 4 and n.prefixlen > 0]
    for step in range(256 * 250):
        n = (seed + step * 7919) % (250 * 256)
        candidate = ipaddress.IPv4Network(f"10.{1 + n // 256 % 250}.{n % 256}.0/24")
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    raise NetnsError("no free /24 in 10.0.0.0/8")


class Network:
    """
    Bridges, namespaces and veth pairs with names C{PREFIX<pid><suffix>},
    each removed in the test's cleanup.

    @param addCleanup: the test case's C{addCleanup}.
    """

    def __init__(self, addCleanup) -> None:
        self.prefix = f"{PREFIX}{os.getpid()}"
        self._addCleanup = addCleanup

    def name(self, suffix: str) -> str:
        name = self.prefix + suffix
        if len(name) > MAX_IFNAME or not suffix[:1].isalpha():
            raise ValueError(f"bad interface name {name!r}")
        return name

    def _deleteLink(self, name: str) -> None:
        # Deleting a namespace takes its end of a veth with it, and the root
        # end goes soon after, asynchronously: "not found" is fine.
        done = ip("link", "delete", name, check=False)
        gone = "not find" in done.stderr or "not exist" in done.stderr
        if done.returncode != 0 and not gone:
            raise NetnsError(f"ip link delete {name}: {done.stderr.strip()}")

    def bridge(self, suffix: str) -> str:
        """
        A bridge in the root namespace, up, without an address.
        """
        name = self.name(suffix)
        ip("link", "add", name, "type", "bridge")
        self._addCleanup(self._deleteLink, name)
        ip("link", "set", name, "up")
        return name

    def namespace(self, suffix: str) -> str:
        """
        A namespace with C{lo} up.
        """
        name = self.name(suffix)
        ip("netns", "add", name)
        self._addCleanup(ip, "netns", "delete", name, check=False)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def attach(self, namespace: str, bridge: str, suffix: str, interface: str) -> str:
        """
        Join C{namespace} to C{bridge} with a veth pair: C{eth0} inside,
        with address C{interface} (C{"10.1.2.3/24"}), and C{PREFIX<pid>
        <suffix>} on the bridge.

        @return: the root-side end's name.
        """
        outside = self.name(suffix)
        ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        self._addCleanup(self._deleteLink, outside)
        ip("link", "set", outside, "master", bridge)
        ip("link", "set", outside, "up")
        ip("-n", namespace, "addr", "add", interface, "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        return outside

    def join(self, bridge1: str, bridge2: str, suffix1: str, suffix2: str) -> tuple[str, str]:
        """
        Join two bridges with a veth pair (both ends up).

        @return: the two ends' names.
        """
        end1, end2 = self.name(suffix1), self.name(suffix2)
        ip("link", "add", end1, "type", "veth", "peer", "name", end2)
        self._addCleanup(self._deleteLink, end1)
        self._addCleanup(self._deleteLink, end2)
        for end, bridge in ((end1, bridge1), (end2, bridge2)):
            ip("link", "set", end, "master", bridge)
            ip("link", "set", end, "up")
        return end1, end2

    def setLinks(self, names, up: bool) -> None:
        """
        Set links up or down.
        """
        for name in names:
            ip("link", "set", name, "up" if up else "down")

    @staticmethod
    def execPrefix(namespace: str) -> list[str]:
        """
        The command prefix that runs a program in C{namespace}.
        """
        return ["ip", "netns", "exec", namespace]


_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the node listens there next
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(float(sys.argv[3]))
print("listening", flush=True)
s.accept()[0].close()
"""

_CLIENT = """
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
"""


def reachable(source: str, target: str, host: str, port: int, seconds: float = 10.0) -> bool:
    """
    Whether a TCP connection from namespace C{source} reaches C{host:port}
    in namespace C{target} within C{seconds}: plain sockets, no bitp2p, to
    tell a host whose firewall drops bridged traffic (br_netfilter with an
    iptables FORWARD policy of DROP, as Docker sets) from a failing test.
    """
    server = subprocess.Popen(
        [*Network.execPrefix(target), sys.executable, "-c", _SERVER, host, str(port), str(seconds)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        if server.stdout.readline().strip() != "listening":
            return False
        client = subprocess.run(
            [*Network.execPrefix(source), sys.executable, "-c", _CLIENT, host, str(port), str(seconds)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=seconds + 10,
        )
        return client.returncode == 0
    finally:
        server.kill()
        server.wait(10)
        server.stdout.close()
