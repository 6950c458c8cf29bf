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

With --sink (the counting OTLP sink `otlp_bench sink` of the OTLP exporter's benchmark,
exporters/examples/otlp_bench.rs), the forwarding pipelines, every span counted at the sink:

- sonde-otlp     : receiver -> memory buffer -> OTLP exporter (gRPC, gzip) -> sink
- sonde-otlp-none: the same without compression
- sonde-otlp-disk: sonde-otlp with a disk buffer (`type = "disk"`, `fsync = "batch"`: a client
                   is answered once its spans are fsynced) in a fresh data_dir per run
- sonde-otlp-none-disk: sonde-otlp-none with that disk buffer
- sonde-otlp-none-disk-never / -always: the same with `fsync = "never"` / `"always"` (to tell the
                   fsync's share of the disk path's cost from the rest)
- rotel-otlp     : rotel -> its OTLP exporter (gRPC; it always gzips) -> sink
- sonde-proc-X   : sonde-otlp-none with processors between the receiver and the exporter,
                   X one of: resource (set + insert + the env/host/os detectors), filter (two
                   span conditions no bench span matches), redact (email, credit_card, ipv4),
                   sample (100%: every span kept, its tracestate rewritten), chain3 (resource ->
                   filter -> redact) and chain4 (chain3 -> sample)

Without a peer (this rotel has no Parquet exporter):

- sonde-parquet  : receiver -> memory buffer -> Parquet exporter (defaults: zstd, staging log
                   fsynced on every export) -> `file://` in a fresh directory. The agent is
                   stopped after each run (which finishes and "uploads" the open file), its CPU
                   is counted to its exit, and the rows in the files are counted with pyarrow.
- sonde-parquet-8m: the same with the buffer and batches of sonde-8m.

    python3 bench/otlp_receiver.py [--spans 1000000] [--repeat 3] [--rotel PATH] [--shapes http/100,...]

Prints one JSON line per run and a Markdown table of medians at the end.
"""

import argparse
import atexit
import glob
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procstat import cpu_seconds, free_port, peak_rss_kib

ROOT = Path(__file__).resolve().parent.parent


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


def sink_count(log):
    """The sink's last reported span count (it prints `spans=N` every second)."""
    n = 0
    try:
        for line in Path(log).read_text().splitlines():
            for word in line.split():
                if word.startswith("spans="):
                    n = int(word[6:])
    except FileNotFoundError:
        pass
    return n


# The disk buffers' max_size (--disk-max-size): segments are an eighth of it (at most 64 MiB), and
# a segment file is reused once an exported one is available, so a smaller buffer shows the
# steady state sooner.
DISK_MAX_SIZE = "1GiB"


def data_dir():
    """A fresh data_dir for one run (a disk buffer must not inherit the last run's spool),
    removed when the driver exits."""
    d = tempfile.mkdtemp(prefix="sonde-bench-")
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


def sonde_config(grpc, http, agent, sink_port=None, lake=None):
    # The stdout agents keep no state; the others get a fresh data_dir (spool, staging logs).
    stateless = not agent.startswith(("sonde-otlp", "sonde-parquet"))
    head = f"""
[agent]
data_dir = "{tempfile.gettempdir() if stateless else data_dir()}"
admin = "off"
[sources.otlp]
type = "otlp"
grpc = "127.0.0.1:{grpc}"
http = "127.0.0.1:{http}"
"""
    small = 'buffer = { max_size = "8MiB" }\nbatch = { max_bytes = "1MiB" }'
    if agent.startswith("sonde-proc-"):
        chain = PROCESSOR_CHAINS[agent.removeprefix("sonde-proc-")]
        procs, last = "", "otlp"
        for kind in chain:
            procs += f'[processors.{kind}]\ntype = "{kind}"\ninputs = ["{last}"]\n{PROCESSORS[kind]}\n'
            last = kind
        return head + procs + f"""[exporters.out]
type = "otlp"
protocol = "grpc"
endpoint = "http://127.0.0.1:{sink_port}"
compression = "none"
inputs = ["{last}"]
"""
    if agent.startswith("sonde-otlp"):
        compression = "none" if "-none" in agent else "gzip"
        buffer = ""
        if "-disk" in agent:
            fsync = agent.rsplit("-", 1)[1] if agent.endswith(("-never", "-always")) else "batch"
            buffer = f'buffer = {{ type = "disk", max_size = "{DISK_MAX_SIZE}", fsync = "{fsync}" }}'
        return head + f"""[exporters.out]
type = "otlp"
protocol = "grpc"
endpoint = "http://127.0.0.1:{sink_port}"
compression = "{compression}"
{buffer}
"""
    if agent.startswith("sonde-parquet"):
        return head + f"""[exporters.lake]
type = "parquet"
url = "file://{lake}"
{small if agent.endswith("-8m") else ""}
"""
    extra = 'signals = ["metrics"]  # traces have no route: receiver only' if agent == "sonde-rx" else ""
    if agent == "sonde-8m":
        extra = small
    return head + f"""[exporters.out]
type = "stdout"
format = "text"
{extra}
"""


# The processors of the sonde-proc-* agents.
PROCESSORS = {
    "resource": 'detectors = ["env", "host", "os"]\nset = { "deployment.environment.name" = "prod" }\n'
                'insert = { "service.namespace" = "shop" }',
    "filter": 'spans = [\'attributes["http.route"] == "/ping"\', \'name == "GET /healthz"\']',
    "redact": 'patterns = ["email", "credit_card", "ipv4"]',
    "sample": "percentage = 100.0",
}
PROCESSOR_CHAINS = {
    "resource": ["resource"],
    "filter": ["filter"],
    "redact": ["redact"],
    "sample": ["sample"],
    "chain3": ["resource", "filter", "redact"],
    "chain4": ["resource", "filter", "redact", "sample"],
}


def parquet_rows(directory):
    import pyarrow.parquet as pq  # only the sonde-parquet runs need it (.venv/bin/python)

    return sum(pq.ParquetFile(f).metadata.num_rows for f in Path(directory).rglob("*.parquet"))


def start(agent, args, tmp):
    """Starts `agent`; returns it, its ports and, for a Parquet agent, the directory its files
    go to."""
    grpc, http = free_port(), free_port()
    lake = data_dir() if agent.startswith("sonde-parquet") else None
    if agent.startswith("sonde"):
        cfg = Path(tmp) / f"{agent}.toml"
        cfg.write_text(sonde_config(grpc, http, agent, args.sink_port, lake))
        cmd = [args.sonde, "run", "--config", str(cfg)]
        env = dict(os.environ, SONDE_LOG="warn", SONDE_ADMIN="off")
    else:
        cmd = [
            args.rotel, "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
            "--otlp-http-endpoint", f"127.0.0.1:{http}",
            *(["--exporter", "otlp", "--otlp-exporter-endpoint", f"http://127.0.0.1:{args.sink_port}",
                "--otlp-exporter-protocol", "grpc"] if agent == "rotel-otlp" else ["--exporter", "blackhole"]),
            "--pid-file", str(Path(tmp) / "rotel.pid"),
            "--log-file", str(Path(tmp) / "rotel.log"),
        ]
        env = dict(os.environ)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / f"{agent}.err", "ab"), env=env)
    wait_port(grpc, proc)
    wait_port(http, proc)
    return proc, grpc, http, lake


def one_run(agent, transport, batch, args, loadgen, tmp):
    proc, grpc, http, lake = start(agent, args, tmp)
    try:
        time.sleep(0.3)
        sunk0 = sink_count(args.sink_log) if args.sink_log else 0
        cpu0 = cpu_seconds(proc.pid)
        port = grpc if transport == "grpc" else http
        r = subprocess.run(
            [loadgen, "--target", f"{transport}://127.0.0.1:{port}", "--batch", str(batch),
             "--spans", str(args.spans), "--connections", str(args.connections),
             # Every request distinct for the Parquet exporter, which keeps byte-identical
             # batches once (the generator's 16 round-robin requests would batch alike).
             "--unique", "1" if "parquet" in agent else "0"],
            capture_output=True, text=True, timeout=600,
        )
        if r.returncode != 0:
            raise RuntimeError(f"loadgen failed: {r.stdout} {r.stderr}")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        wait_idle(proc.pid)
        cpu = cpu_seconds(proc.pid) - cpu0
        if "otlp" in agent or "proc" in agent:
            # Every acknowledged span must reach the sink (it reports once a second).
            deadline = time.monotonic() + 5
            while sink_count(args.sink_log) - sunk0 < res["spans"] and time.monotonic() < deadline:
                time.sleep(0.2)
            res["delivered"] = sink_count(args.sink_log) - sunk0
        rss = (peak_rss_kib(proc.pid) or float("nan")) / 1024
        if lake is not None:
            # Stop the agent (it finishes its open file and writes it out), count its CPU to
            # its exit, then count the rows that reached the files.
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc.terminate()
            proc.wait(timeout=60)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            lifetime = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            cpu = lifetime - cpu0
            res["delivered"] = parquet_rows(lake)
        res.update(
            agent=agent,
            cpu_s=round(cpu, 3),
            cpu_s_per_million=round(cpu / (res["spans"] / 1e6), 3),
            peak_rss_mib=round(rss, 1),
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
    global DISK_MAX_SIZE
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--disk-max-size", default="1GiB", help="max_size of the -disk agents' buffers")
    ap.add_argument("--shapes", default="grpc/100,grpc/1000,http/100,http/1000",
                    help="transport/batch pairs to run, comma-separated")
    ap.add_argument("--sonde", default=str(ROOT / "target" / "release" / "sonde"))
    ap.add_argument("--rotel", default=next(iter(glob.glob(str(ROOT / "target/bench-venv/lib/python3*/site-packages/rotel/rotel-agent"))), None))
    ap.add_argument("--agents", default="sonde,sonde-8m,sonde-rx,rotel")
    ap.add_argument("--loadgen", help="the otlp_load binary (default: build it with cargo bench --no-run)")
    ap.add_argument("--sink", help="the otlp_bench binary (cargo build --release --example otlp_bench "
                    "-p sonde-exporters): runs the forwarding pipelines against its counting sink")
    args = ap.parse_args()
    DISK_MAX_SIZE = args.disk_max_size
    if not args.rotel:
        sys.exit("rotel not found: python3 -m venv target/bench-venv && target/bench-venv/bin/pip install rotel")
    loadgen = args.loadgen or loadgen_path()
    agents = args.agents.split(",")
    shapes = [(t, int(b)) for t, b in (s.split("/") for s in args.shapes.split(","))]
    results = []
    args.sink_port = args.sink_log = None
    with tempfile.TemporaryDirectory() as tmp:
        sink = None
        if args.sink:
            args.sink_port = free_port()
            args.sink_log = str(Path(tmp) / "sink.log")
            sink = subprocess.Popen([args.sink, "sink", str(args.sink_port)], stdout=subprocess.DEVNULL,
                                    stderr=open(args.sink_log, "w"))
            wait_port(args.sink_port, sink)
        for transport, batch in shapes:
            # Interleave the agents so that a noisy moment hits all of them alike.
            for _ in range(args.repeat):
                for agent in agents:
                    res = one_run(agent, transport, batch, args, loadgen, tmp)
                    print(json.dumps(res), flush=True)
                    results.append(res)
        if sink:
            sink.terminate()
            sink.wait(timeout=10)

    def med(agent, transport, batch, key):
        return statistics.median(
            r[key] for r in results if (r["agent"], r["transport"], r["batch"]) == (agent, transport, batch)
        )

    print()
    print("| transport | batch | agent | spans/s | CPU s per 1M spans | peak RSS MiB | spans per CPU-s vs peer | RSS vs peer | peer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for transport, batch in shapes:
        for agent in agents:
            # Forwarding pipelines compare with rotel forwarding, the Parquet pipeline with
            # nothing (this rotel has no Parquet exporter), the others with rotel's blackhole.
            peer = "rotel-otlp" if ("otlp" in agent or "proc" in agent) else None if "parquet" in agent else "rotel"
            cpu = med(agent, transport, batch, "cpu_s_per_million")
            rss = med(agent, transport, batch, "peak_rss_mib")
            if peer is not None and peer in agents:
                ratio = f"{med(peer, transport, batch, 'cpu_s_per_million') / cpu:.2f}x"
                rss_ratio = f"{rss / med(peer, transport, batch, 'peak_rss_mib'):.2f}"
            else:
                ratio = rss_ratio = "-"
            print(
                f"| {transport} | {batch} | {agent} | {med(agent, transport, batch, 'spans_per_sec'):,.0f} | "
                f"{cpu:.2f} | {rss:.0f} | {ratio} | {rss_ratio} | {peer or '-'} |"
            )
    lost = [r for r in results if "delivered" in r and r["delivered"] < r["spans"]]
    print(f"\nforwarding and Parquet runs with spans missing at the sink or in the files: {len(lost)}")


if __name__ == "__main__":
    main()
