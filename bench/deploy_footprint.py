#!/usr/bin/env python3
"""The container image's size and the agent's start-up time and idle footprint inside it, against
the same binary run bare on the host.

Builds the image with packaging/container/build.sh (buildah), then, with the image's own
configuration (host metrics every 10 s and the OTLP receiver, to stdout) and loopback ports:
- start-up: process start -> /health/ready answers 200, polled every 5 ms; --starts runs each of
  the container and the bare binary, interleaved; medians;
- idle: one container and one bare agent side by side for --duration seconds after ready;
  VmRSS at the end, VmHWM (peak), utime+stime.
The bare agent is the image's own /usr/bin/sonde (the same stripped file), on the host's
libraries, with the image's config (data_dir in a temporary directory). The container runs as
tests/deploy/container.py runs it (unshare + chroot, read-only root, the image's user).
The systemd side of the comparison is printed by tests/deploy/systemd_vm.sh (FIGURE lines).

    cargo build --profile dist --locked --bin sonde
    sudo .venv/bin/python bench/deploy_footprint.py [--binary target/dist/sonde] [--duration 60] [--starts 5]
"""

import argparse
import gzip
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "deploy"))

import container as ct  # noqa: E402

from procstat import cpu_seconds, free_port


def ports() -> dict:
    return {
        "SONDE_OTLP_GRPC": f"127.0.0.1:{free_port()}",
        "SONDE_OTLP_HTTP": f"127.0.0.1:{free_port()}",
        "SONDE_ADMIN": f"127.0.0.1:{free_port()}",
    }


class Bare:
    def __init__(self, binary: Path, config: Path, env: dict):
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(binary), "run", "--config", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                     env={"PATH": os.environ["PATH"], **env})
        self.pid = self.proc.pid

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=15)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target" / "dist" / "sonde"))
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0 or not ct.have_buildah():
        sys.exit("needs root and buildah")

    img = ct.build_image(args.binary, f"localhost/sonde-bench:{os.getpid()}")
    mounted = ct.Mounted(img.id)
    tmp = Path(tempfile.mkdtemp(prefix="sonde-deploy-bench-"))
    started = []
    try:
        files = ct.tree(mounted.root)
        size = sum(v[1] for v in files.values() if v[0] == "file")
        archive = tmp / "image.tar"
        subprocess.run(["buildah", "push", "--quiet", img.id, f"docker-archive:{archive}"], check=True,
                       capture_output=True, timeout=300)
        with open(archive, "rb") as f:
            gz = len(gzip.compress(f.read(), 6))
        binary_size = files["/usr/bin/sonde"][1]

        uid, gid = ct.user_of(img.config)
        bare_bin = mounted.root / "usr/bin/sonde"
        bare_cfg = tmp / "bare.toml"
        bare_cfg.write_text((mounted.root / "etc/sonde/sonde.toml").read_text().replace(
            'data_dir = "/var/lib/sonde"', f'data_dir = "{tmp / "bare-data"}"'))

        def start_container(n):
            vol = tmp / f"vol{n}"
            vol.mkdir()
            os.chown(vol, uid, gid)
            env = ports()
            c = ct.Container(mounted.root, tmp / f"mnt{n}", vol, img.config, env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            started.append(c)
            return c, env

        def start_bare():
            env = ports()
            b = Bare(bare_bin, bare_cfg, env)
            started.append(b)
            return b, env

        ready_c, ready_agent, ready_b = [], [], []
        for n in range(args.starts):
            c, env = start_container(n)
            ready_c.append(ct.wait_ready(f"http://{env['SONDE_ADMIN']}/health/ready", c.proc, 30, c.started))
            ready_agent.append(ready_c[-1] - (c.exec_at - c.started))
            c.stop(signal.SIGTERM, 15)
            b, env = start_bare()
            ready_b.append(ct.wait_ready(f"http://{env['SONDE_ADMIN']}/health/ready", b.proc, 30, b.started))
            b.stop()

        c, cenv = start_container("idle")
        b, benv = start_bare()
        ct.wait_ready(f"http://{cenv['SONDE_ADMIN']}/health/ready", c.proc, 30, c.started)
        ct.wait_ready(f"http://{benv['SONDE_ADMIN']}/health/ready", b.proc, 30, b.started)
        cpu0 = cpu_seconds(c.pid), cpu_seconds(b.pid)
        time.sleep(args.duration)
        cpu = cpu_seconds(c.pid) - cpu0[0], cpu_seconds(b.pid) - cpu0[1]
        (rc, hc), (rb, hb) = ct.rss_kib(c.pid), ct.rss_kib(b.pid)
        c.stop(signal.SIGTERM, 15)
        b.stop()

        print(f"image: {size / 1e6:.1f} MB unpacked ({binary_size / 1e6:.1f} MB of it the binary), "
              f"{gz / 1e6:.1f} MB as a gzipped docker-archive; {len(files)} paths; built in {img.build_seconds:.1f} s")
        print()
        print(f"| run | start -> ready (median of {args.starts}, ms) | idle RSS after {args.duration:.0f} s (MiB) "
              f"| peak RSS (MiB) | CPU s |")
        print("|---|---|---|---|---|")
        print(f"| container (unshare + chroot, read-only root, uid 10001) | {statistics.median(ready_c) * 1000:.0f} "
              f"(the agent's exec -> ready: {statistics.median(ready_agent) * 1000:.0f}) "
              f"| {rc / 1024:.1f} | {hc / 1024:.1f} | {cpu[0]:.2f} |")
        print(f"| bare (same binary, host libraries) | {statistics.median(ready_b) * 1000:.0f} | {rb / 1024:.1f} "
              f"| {hb / 1024:.1f} | {cpu[1]:.2f} |")
        print(f"\nstart-up samples (ms): container {[round(x * 1000) for x in ready_c]} "
              f"(from the agent's exec {[round(x * 1000) for x in ready_agent]}), "
              f"bare {[round(x * 1000) for x in ready_b]}")
    finally:
        for s in started:
            s.kill()
        mounted.close()
        ct.remove_image(img.id)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
