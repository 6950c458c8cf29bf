#!/usr/bin/env python3
"""End-to-end OTLP receiver load: the `otlp_load` bench binary sends realistic spans (about ten
attributes each, a resource with service.name) to an agent as fast as it acknowledges them, over
gRPC and over HTTP, in batches of 100 and 1000; the agent's CPU seconds (utime + stime from
/proc/<pid>/stat, until it is idle again after the run) and peak RSS (VmHWM) are read for each
run. Every agent is started fresh for every run. Peers measured in the same run:

- sonde  : OTLP receiver -> memory buffer -> stdout exporter (text) -> /dev/null. The stdout
           exporter decodes every batch to print it, so this is the whole pipeline with a
           decoding exporter at its end.
- sonde-8m: the same with a buffer sized for memory: `buffer.max_size = "8MiB"`,
           `batch.max_bytes = "1MiB"` (the defaults are 64 MiB and 4 MiB, and the stdout exporter
           is slower than the receiver, so the default run fills its buffer).
- sonde-rx: OTLP receiver only: no exporter takes traces, so each request is validated, counted
           and acknowledged, and the batch dropped at the router (no buffer, no export). The
           receiver's own cost.
- rotel  : rotel (PyPI `rotel`, a Rust OTLP collector) -> its blackhole exporter. rotel decodes
           every request into structs and batches them before the blackhole drops them.

    python3 bench/otlp_receiver.py [--spans 1000000] [--repeat 3] [--rotel PATH]

Prints one JSON line per run and a Markdown table of medians at the end.
"""

import argparse
import glob
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_port(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def wait_idle(pid, timeout=20):
    """Waits until the process uses (almost) no CPU for 0.5 s: whatever it still had to export
    after the last acknowledgement is done."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < 0.02:
            return
        last = now


def loadgen_path():
    out = subprocess.run(
        ["cargo", "bench", "-p", "sonde", "--bench", "otlp_load", "--no-run", "--message-format=json"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        m = json.loads(line)
        if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "otlp_load":
            if m.get("executable"):
                return m["executable"]
    raise RuntimeError("otlp_load bench binary not found")


def sonde_config(grpc, http, agent):
    extra = 'signals = ["metrics"]  # traces have no route: receiver only' if agent == "sonde-rx" else ""
    if agent == "sonde-8m":
        extra = 'buffer = { max_size = "8MiB" }\nbatch = { max_bytes = "1MiB" }'
    return f"""
[agent]
data_dir = "{tempfile.gettempdir()}"
admin = "off"
[sources.otlp]
type = "otlp"
grpc = "127.0.0.1:{grpc}"
http = "127.0.0.1:{http}"
[exporters.out]
type = "stdout"
format = "text"
{extra}
"""


def start(agent, args, tmp):
    grpc, http = free_port(), free_port()
    if agent.startswith("sonde"):
        cfg = Path(tmp) / f"{agent}.toml"
        cfg.write_text(sonde_config(grpc, http, agent))
        cmd = [args.sonde, "run", "--config", str(cfg)]
        env = dict(os.environ, SONDE_LOG="warn", SONDE_ADMIN="off")
    else:
        cmd = [
            args.rotel, "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
            "--otlp-http-endpoint", f"127.0.0.1:{http}",
            "--exporter", "blackhole",
            "--pid-file", str(Path(tmp) / "rotel.pid"),
            "--log-file", str(Path(tmp) / "rotel.log"),
        ]
        env = dict(os.environ)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / f"{agent}.err", "ab"), env=env)
    wait_port(grpc, proc)
    wait_port(http, proc)
    return proc, grpc, http


def one_run(agent, transport, batch, args, loadgen, tmp):
    proc, grpc, http = start(agent, args, tmp)
    try:
        time.sleep(0.3)
        cpu0 = cpu_seconds(proc.pid)
        port = grpc if transport == "grpc" else http
        r = subprocess.run(
            [loadgen, "--target", f"{transport}://127.0.0.1:{port}", "--batch", str(batch),
             "--spans", str(args.spans), "--connections", str(args.connections)],
            capture_output=True, text=True, timeout=600,
        )
        if r.returncode != 0:
            raise RuntimeError(f"loadgen failed: {r.stdout} {r.stderr}")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        wait_idle(proc.pid)
        cpu = cpu_seconds(proc.pid) - cpu0
        res.update(
            agent=agent,
            cpu_s=round(cpu, 3),
            cpu_s_per_million=round(cpu / (res["spans"] / 1e6), 3),
            peak_rss_mib=round(peak_rss_mib(proc.pid), 1),
        )
        return res
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--sonde", default=str(ROOT / "target" / "release" / "sonde"))
    ap.add_argument("--rotel", default=next(iter(glob.glob(str(ROOT / "target/bench-venv/lib/python3*/site-packages/rotel/rotel-agent"))), None))
    ap.add_argument("--agents", default="sonde,sonde-8m,sonde-rx,rotel")
    ap.add_argument("--loadgen", help="the otlp_load binary (default: build it with cargo bench --no-run)")
    args = ap.parse_args()
    if not args.rotel:
        sys.exit("rotel not found: python3 -m venv target/bench-venv && target/bench-venv/bin/pip install rotel")
    loadgen = args.loadgen or loadgen_path()
    agents = args.agents.split(",")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for transport in ("grpc", "http"):
            for batch in (100, 1000):
                # Interleave the agents so that a noisy moment hits all of them alike.
                for _ in range(args.repeat):
                    for agent in agents:
                        res = one_run(agent, transport, batch, args, loadgen, tmp)
                        print(json.dumps(res), flush=True)
                        results.append(res)

    def med(agent, transport, batch, key):
        return statistics.median(
            r[key] for r in results if (r["agent"], r["transport"], r["batch"]) == (agent, transport, batch)
        )

    print()
    print("| transport | batch | agent | spans/s | CPU s per 1M spans | peak RSS MiB | spans per CPU-s vs rotel | RSS vs rotel |")
    print("|---|---|---|---|---|---|---|---|")
    for transport in ("grpc", "http"):
        for batch in (100, 1000):
            rotel_cpu = med("rotel", transport, batch, "cpu_s_per_million") if "rotel" in agents else None
            rotel_rss = med("rotel", transport, batch, "peak_rss_mib") if "rotel" in agents else None
            for agent in agents:
                cpu = med(agent, transport, batch, "cpu_s_per_million")
                rss = med(agent, transport, batch, "peak_rss_mib")
                ratio = f"{rotel_cpu / cpu:.2f}x" if rotel_cpu else "-"
                rss_ratio = f"{rss / rotel_rss:.2f}" if rotel_rss else "-"
                print(
                    f"| {transport} | {batch} | {agent} | {med(agent, transport, batch, 'spans_per_sec'):,.0f} | "
                    f"{cpu:.2f} | {rss:.0f} | {ratio} | {rss_ratio} |"
                )


if __name__ == "__main__":
    main()
