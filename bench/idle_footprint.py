#!/usr/bin/env python3
"""Idle footprint of Sonde's embedded default next to host-metrics peers, measured in one run.

Runs each agent for DURATION seconds on loopback, samples /proc/<pid>/status (VmHWM = peak RSS)
and /proc/<pid>/stat (utime + stime), and prints a Markdown table. Peers: prometheus-node-exporter
(Go) and collectd (C), both from Debian (`apt-get install prometheus-node-exporter collectd-core`).

    cargo build --profile dist -p sonde --bin sonde
    python3 bench/idle_footprint.py [--duration 60] [--sonde target/dist/sonde [--sonde other/sonde]]
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from procstat import cpu_seconds, free_port, peak_rss_kib


def run(name, argv, duration, env=None, scrape_url=None):
    """Runs one agent; `scrape_url` is fetched every 10 s, as Prometheus would, for a pull-based
    exporter that only works when scraped."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(1.0)  # let it finish starting; count steady state only
    if proc.poll() is not None:
        return name, None, None, f"exited with {proc.returncode}"
    start_cpu = cpu_seconds(proc.pid)
    end = time.monotonic() + duration
    while time.monotonic() < end:
        if scrape_url:
            try:
                urllib.request.urlopen(scrape_url, timeout=5).read()
            except OSError:
                pass
        time.sleep(max(0.0, min(10.0, end - time.monotonic())))
    cpu = cpu_seconds(proc.pid) - start_cpu
    rss = peak_rss_kib(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    return name, rss, cpu, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--sonde", action="append",
                    help="a sonde binary (repeat to compare builds side by side); default target/dist/sonde")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    results = []
    env = dict(os.environ, SONDE_DATA_DIR=tmp, SONDE_LOG="warn")
    procs = []
    # Run all side by side, so they see the same machine load.
    admin = free_port()
    env["SONDE_ADMIN"] = f"127.0.0.1:{admin}"
    agents = []
    for i, binary in enumerate(args.sonde or ["target/dist/sonde"]):
        e = dict(env, SONDE_ADMIN=f"127.0.0.1:{admin if i == 0 else free_port()}")
        if i > 0:  # the OTLP ports of the embedded default are taken by the first
            e.update(SONDE_OTLP_GRPC="127.0.0.1:0", SONDE_OTLP_HTTP="127.0.0.1:0")
        label = "sonde (embedded default: host metrics 10 s → stdout, admin server)"
        agents.append((label if not args.sonde or len(args.sonde) == 1 else f"sonde {binary}", [binary], e, None))
    ne = shutil.which("prometheus-node-exporter")
    if ne:
        port = free_port()
        agents.append(("prometheus-node-exporter (scraped every 10 s)",
                       [ne, f"--web.listen-address=127.0.0.1:{port}"], None, f"http://127.0.0.1:{port}/metrics"))
    cd = shutil.which("collectd") or ("/usr/sbin/collectd" if os.path.exists("/usr/sbin/collectd") else None)
    if cd:
        conf = os.path.join(tmp, "collectd.conf")
        with open(conf, "w") as f:
            f.write(
                f'Interval 10\nBaseDir "{tmp}"\nPIDFile "{tmp}/collectd.pid"\nTypesDB "/usr/share/collectd/types.db"\n'
                "LoadPlugin cpu\nLoadPlugin memory\nLoadPlugin load\nLoadPlugin disk\nLoadPlugin df\n"
                "LoadPlugin interface\nLoadPlugin swap\nLoadPlugin processes\nLoadPlugin uptime\n"
                f'LoadPlugin csv\n<Plugin csv>\n  DataDir "{tmp}/csv"\n</Plugin>\n'
            )
        agents.append(("collectd (10 s, csv)", [cd, "-f", "-C", conf], None, None))
    import threading
    out = {}
    threads = [threading.Thread(target=lambda a=a: out.__setitem__(a[0], run(a[0], a[1], args.duration, a[2], a[3])))
               for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"| agent | peak RSS (MiB) | CPU s in {args.duration:.0f} s | % of one core |")
    print("|---|---|---|---|")
    for name, *_ in agents:
        n, rss, cpu, err = out[name]
        if rss is None:
            print(f"| {n} | – | – | {err} |")
        else:
            print(f"| {n} | {rss / 1024:.1f} | {cpu:.2f} | {100 * cpu / args.duration:.3f}% |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
