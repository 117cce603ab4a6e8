"""
Podman for the tests that run bitp2p's image (tests/test_fleet.py): whether
podman can run containers here (and why not), the base image and bitp2p's
image built once per test run, and names that clean up after themselves.

Podman runs as root, with a C{CONTAINERS_CONF} of the tests' own: runc,
cgroupfs (no systemd here), events in a file, and explicit C{nofile} and
C{nproc} limits, since runc cannot raise this VM's limits as podman's
defaults ask (C{error setting rlimit type 7: operation not permitted}).

The base image: C{BITP2P_TEST_BASE_IMAGE} when set (C{python:3.11-slim}
where a registry is reachable), else C{localhost/bitp2p-test-base:bookworm},
made once from Debian's packages (C{debootstrap --variant=minbase} with
python3-venv, then C{podman import}, about a minute) and kept between runs
as a cache. bitp2p's image is built from the C{Containerfile} in a copy of
the checkout, with the host's CA bundle (for a pip behind a TLS-inspecting
proxy), and removed at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "localhost/bitp2p-test-base:bookworm"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CONF = """\
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# What the image's build context needs (the Containerfile copies it all).
CONTEXT = ("setup.cfg", "pyproject.toml", "README.rst", "bitp2p", "twisted", "Containerfile",
           ".containerignore")
# podman's own complaints when there is no systemd: not errors of the test.
NOISE = ("unable to get systemd connection", "failed to connect to syslog")


class PodmanUnusable(Exception):
    """
    Why podman cannot run the tests here (the skip reason), in one line.
    """


class Podman:
    """
    Podman with the tests' configuration; every name it makes starts with
    C{prefix} (so that what a run made is found and removed).
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.conf = os.path.join(directory, "containers.conf")
        with open(self.conf, "w") as f:
            f.write(CONF)
        self.prefix = "bitp2p-test-" + uuid.uuid4().hex[:6]
        self.env = {**os.environ, "CONTAINERS_CONF": self.conf}

    def run(self, *args: str, timeout: float = 120, check: bool = True,
            input: bytes | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, timeout=timeout, input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, ["podman", *args], result.stdout, self.errors(result)
            )
        return result

    def out(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout.decode().strip()

    @staticmethod
    def errors(result: subprocess.CompletedProcess) -> str:
        lines = result.stderr.decode(errors="replace").splitlines()
        return "\n".join(line for line in lines if not any(n in line for n in NOISE))

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def usable(self) -> str:
        """
        The base image to build on, made if needed.

        @raise PodmanUnusable: podman is missing, not root, or cannot run a
            container here, or there is no base image and none can be made.
        """
        if shutil.which("podman") is None:
            raise PodmanUnusable(
                "podman is not installed (as root: bash .ci/system-deps installs Debian's podman,"
                " runc and debootstrap)"
            )
        if os.geteuid() != 0:
            raise PodmanUnusable("the fleet test runs podman as root (rootless podman is not set up here)")
        base = os.environ.get("BITP2P_TEST_BASE_IMAGE") or BASE_IMAGE
        if self.run("image", "exists", base, check=False).returncode != 0:
            if base != BASE_IMAGE:
                raise PodmanUnusable(f"BITP2P_TEST_BASE_IMAGE={base} is not in podman's image store")
            self.makeBase()
        probe = self.run("run", "--rm", "--network", "none", base, "python3", "-c", "print('ok')",
                         check=False, timeout=60)
        if probe.returncode != 0 or probe.stdout.strip() != b"ok":
            raise PodmanUnusable(f"podman cannot run a container here: {self.lastError(probe)}")
        # A network of its own (netavark, its NAT and DNS), as the fleet needs.
        network = self.name("probe")
        made = self.run("network", "create", network, check=False)
        if made.returncode != 0:
            raise PodmanUnusable(f"podman cannot make a container network here: {self.lastError(made)}")
        try:
            probe = self.run("run", "--rm", "--network", network, base, "python3", "-c", "print('ok')",
                             check=False, timeout=60)
        finally:
            self.run("network", "rm", "-f", network, check=False)
        if probe.returncode != 0 or probe.stdout.strip() != b"ok":
            raise PodmanUnusable(
                f"podman cannot run a container on a network of its own here: {self.lastError(probe)}"
            )
        return base

    def lastError(self, result: subprocess.CompletedProcess) -> str:
        return (self.errors(result).strip().splitlines() or ["no output"])[-1]

    def makeBase(self) -> None:
        """
        Debian bookworm, minimal, with Python 3.11 and venv: the base image
        the tests build on where no registry is reachable.
        """
        if shutil.which("debootstrap") is None:
            raise PodmanUnusable(
                f"no base image {BASE_IMAGE} and no debootstrap to make one (as root:"
                " bash .ci/system-deps), nor BITP2P_TEST_BASE_IMAGE"
            )
        with tempfile.TemporaryDirectory(dir=self.directory) as work:
            rootfs = os.path.join(work, "rootfs")
            made = subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                 "bookworm", rootfs, "http://deb.debian.org/debian"],
                capture_output=True, timeout=600, stdin=subprocess.DEVNULL,
            )
            if made.returncode != 0:
                last = (made.stdout + made.stderr).decode(errors="replace").strip().splitlines()
                raise PodmanUnusable(f"debootstrap could not make the base image: {last[-1] if last else '?'}")
            tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
            try:
                imported = subprocess.run(
                    ["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout, env=self.env,
                    capture_output=True, timeout=300,
                )
            finally:
                tar.stdout.close()
                tar.wait(60)
            if imported.returncode != 0:
                raise PodmanUnusable(f"podman import failed: {self.errors(imported).strip()[-200:]}")

    def buildImage(self, base: str) -> str:
        """
        Build bitp2p's image from the checkout's Containerfile, as the README
        says, on C{base}; its name.
        """
        context = os.path.join(self.directory, "context")
        os.mkdir(context)
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
        for entry in CONTEXT:
            source = ROOT / entry
            if source.is_dir():
                shutil.copytree(source, os.path.join(context, entry), ignore=ignore)
            else:
                shutil.copy2(source, context)
        args = ["--build-arg", f"BASE_IMAGE={base}"]
        if HOST_CA.exists():
            shutil.copy(HOST_CA, os.path.join(context, "host-ca.pem"))
            args += ["--build-arg", "PIP_CA_BUNDLE=host-ca.pem"]
        image = f"localhost/{self.prefix}:latest"
        self.run("build", "--format", "docker", "--layers=false", "--label",
                 f"bitp2p.test={self.prefix}", *args, "-t", image, context, timeout=900)
        return image

    def cleanUp(self) -> None:
        """
        Remove every container, pod, network, volume and image this run made.
        """
        for kind, listing in (
            ("pod", ["pod", "ps", "-a", "--format", "{{.Name}}"]),
            ("container", ["ps", "-a", "--format", "{{.Names}}"]),
        ):
            names = [n for n in self.out(*listing, check=False).split() if n.startswith(self.prefix)]
            if names:
                self.run(kind, "rm", "-f", "-t", "0", *names, check=False)
        for kind, force in (("network", ["-f"]), ("volume", ["-f"]), ("secret", [])):
            names = [n for n in self.out(kind, "ls", "--format", "{{.Name}}", check=False).split()
                     if n.startswith(self.prefix)]
            if names:
                self.run(kind, "rm", *force, *names, check=False)
        images = [n for n in self.out("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).split()
                  if n.startswith(f"localhost/{self.prefix}")]
        if images:
            self.run("rmi", "-f", *images, check=False)
        # The build's first stage, left untagged.
        self.run("image", "prune", "-f", "--filter", f"label=bitp2p.test={self.prefix}", check=False)
