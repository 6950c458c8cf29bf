#!/usr/bin/env python3
"""End-to-end rows/s of the Parquet exporter into an S3-compatible server on loopback.

Starts moto's S3 server (PyPI `moto[server]`) on a free port, runs the `parquet_fixture` example
(the real exporter: decode, convert, staging log with fsync, Parquet with zstd, multipart upload)
with SPANS generated spans in batches of 4096, and reports spans/s over the whole run (wall
clock from the first export to the last byte acknowledged by the server) and per CPU-second of
the exporter over the same span (the fixture generates its requests before the clock starts).
moto is single-threaded Python and shares the machine: it is part of what is measured.

    cargo build --profile bench -p sonde-exporters --example parquet_fixture
    .venv/bin/python bench/parquet_s3.py [--spans 400000] [--fixture target/release/examples/parquet_fixture]
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import boto3

from procstat import free_port

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=400_000)
    ap.add_argument("--fixture", default=str(ROOT / "target" / "release" / "examples" / "parquet_fixture"))
    ap.add_argument("--moto", default=str(ROOT / ".venv" / "bin" / "moto_server"))
    args = ap.parse_args()
    port = free_port()
    moto = subprocess.Popen([args.moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
        deadline = time.monotonic() + 30
        while True:
            try:
                s3.create_bucket(Bucket="bench")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "c.toml"
            cfg.write_text(
                f'url = "s3://bench/otel"\nendpoint = "http://127.0.0.1:{port}"\nallow_http = true\n'
                'region = "us-east-1"\naccess_key_id = "k"\nsecret_access_key = "s"\n'
            )
            out = subprocess.run(
                [args.fixture, str(cfg), str(Path(tmp) / "data"), str(args.spans)],
                capture_output=True, text=True, timeout=1800, env=dict(os.environ, SONDE_LOG="warn"),
            )
            if out.returncode != 0:
                raise SystemExit(out.stderr)
            r = json.loads(out.stdout.strip().splitlines()[-1])
        size = sum(o["Size"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="bench") for o in p.get("Contents", []))
        cpu = r["cpu_seconds"]
        print(
            f"{r['rows']} rows in {r['seconds']:.2f} s wall = {r['rows'] / r['seconds']:.0f} rows/s end to end; "
            f"exporter CPU {cpu:.2f} s = {r['rows'] / cpu:.0f} rows per CPU-second; {size} bytes in S3 "
            f"({size / r['rows']:.1f} B/row); uploads {r['uploaded']}, retries {r['upload_retries']}"
        )
    finally:
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()
