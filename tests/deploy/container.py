"""Builds Sonde's container image with packaging/container/build.sh (buildah, no registry) and
runs it the way a container runtime would, without one: `unshare --mount --pid --fork` and
`chroot` into the image's root file system, bind-mounted read-only, with a writable volume on
/var/lib/sonde, /proc of the new PID namespace, /sys read-only, a small /dev, the image's user,
entry point, command and environment read from the image's own configuration. The host network
is shared (like `--network host`), so clients outside reach the agent on loopback.

Used by tests/deploy/test_container.py and bench/deploy_footprint.py. Needs root and buildah."""

import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD_SH = ROOT / "packaging" / "container" / "build.sh"

# The runtime's part: mounts inside the new mount namespace (private propagation, so nothing
# leaks to the host), then the entry point as the image's user. Arguments: ROOTFS MOUNTPOINT
# VOLUME UID GID CONFIG_OR_EMPTY -- ARGV...; the environment is the container's.
RUNNER = r"""
set -euo pipefail
rootfs=$1 m=$2 vol=$3 uid=$4 gid=$5 cfg=$6
shift 7
mount --bind "$rootfs" "$m"
mount -o remount,bind,ro "$m"
mount --bind "$vol" "$m/var/lib/sonde"
if [ -n "$cfg" ]; then
    mount --bind "$cfg" "$m/etc/sonde/sonde.toml"
    mount -o remount,bind,ro "$m/etc/sonde/sonde.toml"
fi
mount -t proc -o nosuid,nodev,noexec proc "$m/proc"
mount --rbind /sys "$m/sys"
mount -o remount,bind,ro "$m/sys"
mount -t tmpfs -o nosuid,noexec,mode=0755,size=64k tmpfs "$m/dev"
for d in null zero full random urandom tty; do
    touch "$m/dev/$d"
    mount --bind "/dev/$d" "$m/dev/$d"
done
exec chroot --userspec="$uid:$gid" --groups="$gid" "$m" "$@"
"""


def have_buildah() -> bool:
    return shutil.which("buildah") is not None


@dataclass
class Image:
    id: str
    config: dict  # the image's Docker config: User, Env, Entrypoint, Cmd, Healthcheck, ...
    build_seconds: float


def build_image(binary: str, tag: str) -> Image:
    t0 = time.monotonic()
    r = subprocess.run(["bash", str(BUILD_SH), "--binary", binary, "--tag", tag], capture_output=True, text=True,
                       timeout=600)
    took = time.monotonic() - t0
    assert r.returncode == 0, f"build.sh failed:\n{r.stdout}\n{r.stderr}"
    image_id = r.stdout.strip().splitlines()[-1]
    return Image(image_id, inspect_config(image_id), took)


def inspect_config(image_id: str) -> dict:
    r = subprocess.run(["buildah", "inspect", "--type", "image", image_id], capture_output=True, text=True,
                       check=True, timeout=60)
    return json.loads(r.stdout)["Docker"]["config"]


def remove_image(image_id: str):
    subprocess.run(["buildah", "rmi", "-f", image_id], capture_output=True, timeout=60)


class Mounted:
    """A working container of the image, mounted: its root file system as a host directory."""

    def __init__(self, image_id: str):
        self.ctr = subprocess.run(["buildah", "from", "--quiet", image_id], capture_output=True, text=True,
                                  check=True, timeout=60).stdout.strip()
        self.root = Path(subprocess.run(["buildah", "mount", self.ctr], capture_output=True, text=True, check=True,
                                        timeout=60).stdout.strip())

    def close(self):
        subprocess.run(["buildah", "rm", self.ctr], capture_output=True, timeout=60)


def tree(root: Path) -> dict:
    """Every path under `root` with its type, mode, owner and content hash (files) or target (links)."""
    import hashlib

    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = "/" + str(p.relative_to(root))
            if p.is_symlink():
                what = ("link", os.readlink(p))
            elif p.is_dir():
                what = ("dir",)
            else:
                what = ("file", st.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            out[rel] = (*what, oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
    return out


def user_of(config: dict) -> tuple[int, int]:
    uid, gid = config["User"].split(":")
    return int(uid), int(gid)


def container_env(config: dict, overrides: dict) -> dict:
    """The environment a runtime gives the entry point: the image's Env, a default PATH when the
    image sets none (as Docker does), HOME from the image's passwd entry, then `overrides`."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/var/lib/sonde"}
    for kv in config.get("Env") or []:
        k, _, v = kv.partition("=")
        env[k] = v
    env.update(overrides)
    return env


class Container:
    """One run of the image: `unshare` (host PID `self.proc.pid`) whose only child is the agent
    (PID 1 in its namespace; host PID `self.pid`). `kill()` kills the agent, and with it its
    PID namespace."""

    def __init__(self, root: Path, mountpoint: Path, volume: Path, config: dict, env: dict, config_file=None,
                 argv=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
        """A `PIPE` (the default) must be read: an agent whose stdout exporter fills a pipe
        no one reads blocks in write(2) and does not exit on SIGTERM."""
        uid, gid = user_of(config)
        argv = argv or [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        self.config = config
        self.env = container_env(config, env)
        self.uid, self.gid = uid, gid
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "bash", "-c", RUNNER, "runner",
             str(root), str(mountpoint), str(volume), str(uid), str(gid), str(config_file or ""), "--", *argv],
            stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **self.env},
        )
        self.pid = self._child_pid()
        self.exec_at = self._wait_exec()

    def _wait_exec(self, timeout: float = 10) -> float:
        """When the runner, done with the mounts, has exec'd the entry point (polled every 1 ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if Path(f"/proc/{self.pid}/comm").read_text().strip() == "sonde":
                    return time.monotonic()
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"the container exited at once: {self.proc.stderr.read().decode()}")
            time.sleep(0.001)
        raise AssertionError("the entry point never started")

    def _child_pid(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        while time.monotonic() < deadline:
            try:
                children = path.read_text().split()
            except OSError:
                children = []
            if children:
                return int(children[0])
            if self.proc.poll() is not None:
                raise AssertionError(f"the container exited at once: {self.proc.stderr.read().decode()}")
            time.sleep(0.005)
        raise AssertionError("unshare started no child")

    def exec_in(self, argv, timeout: float = 10) -> subprocess.CompletedProcess:
        """Runs `argv` inside the running container: its mount and PID namespaces, its root, its
        user and environment (as a runtime runs a HEALTHCHECK)."""
        return subprocess.run(
            ["nsenter", "-t", str(self.pid), "-m", "-p", "-r", "-w", "-S", str(self.uid), "-G", str(self.gid), "--",
             *argv],
            capture_output=True, text=True, timeout=timeout, env=self.env,
        )

    def status(self) -> dict:
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            out[k] = v.strip()
        return out

    def stop(self, sig, timeout: float) -> tuple[int, float]:
        """Sends `sig` to the agent; returns its exit status and the seconds it took to exit."""
        t0 = time.monotonic()
        os.kill(self.pid, sig)
        rc = self.proc.wait(timeout=timeout)
        return rc, time.monotonic() - t0

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float, started: float) -> float:
    """Polls `url` every 5 ms until it answers 200; returns the seconds since `started`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode} before it was ready"
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise AssertionError(f"{url} not ready within {timeout} s")


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid`, in KiB."""
    got = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            got[line.split(":")[0]] = int(line.split()[1])
    return got["VmRSS"], got["VmHWM"]
