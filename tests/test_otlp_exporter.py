"""The OTLP exporter end to end: the built binary scrapes host metrics and exports them over
OTLP to real peers on loopback (rotel over gRPC, a grpcio/opentelemetry-proto receiver over HTTP
and gRPC), survives a destination that is not there yet, and never prints a header token.

Traces, metrics and logs from apps through the receiver and this exporter: test_otlp_crash.py;
at the exporter level against rotel and the grpcio sink: exporters/tests/otlp_peers.rs."""

import base64
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from conftest import ROOT, free_port, poll, run_cli

VENV = Path(sys.executable).resolve().parent.parent


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the peer exited early"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} never opened")


def rotel_bin() -> str:
    found = list((Path(sys.executable).parent.parent / "lib").glob("python3*/site-packages/rotel/rotel-agent"))
    if not found:
        found = list(Path(sys.prefix).glob("lib/python3*/site-packages/rotel/rotel-agent"))
    assert found, "rotel-agent not found: pip install rotel (tests/requirements.txt)"
    return str(found[0])


@pytest.fixture
def peers(tmp_path):
    """Starts processes on loopback; stops each by its PID at teardown."""
    procs = []

    def start(args, log):
        p = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def start_rotel(peers, tmp_path):
    grpc, http = free_port(), free_port()
    log = tmp_path / "rotel.log"
    p = peers(
        [
            rotel_bin(), "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
            "--otlp-http-endpoint", f"127.0.0.1:{http}",
            "--exporter", "blackhole",
            "--debug-log", "metrics", "--debug-log-verbosity", "detailed",
            "--batch-timeout", "50ms",
        ],
        log,
    )
    wait_port(grpc, p)
    return grpc, log


def start_sink(peers, tmp_path, grpc=None, http=None):
    grpc, http = grpc or free_port(), http or free_port()
    out = tmp_path / f"sink-{http}.jsonl"
    p = peers(
        [sys.executable, str(ROOT / "tests" / "otlp_sink.py"), "--grpc-port", str(grpc), "--http-port", str(http), "--out", str(out)],
        tmp_path / f"sink-{http}.log",
    )
    wait_port(http, p)
    return grpc, http, out


def sink_records(out: Path):
    if not out.exists():
        return []
    return [json.loads(l) for l in out.read_text().splitlines() if l.strip()]


CONFIG = """
[agent]
data_dir = "{data_dir}"
shutdown_timeout = "5s"

[sources.host]
type = "host_metrics"
interval = "1s"
collectors = ["cpu", "memory", "load"]

[exporters.to_rotel]
type = "otlp"
protocol = "grpc"
endpoint = "http://127.0.0.1:{rotel_grpc}"
compression = "gzip"
batch = {{ max_age = "50ms" }}

[exporters.to_sink]
type = "otlp"
protocol = "http/protobuf"
endpoint = "http://127.0.0.1:{sink_http}"
compression = "zstd"
headers = {{ authorization = "Bearer ${{SONDE_TEST_TOKEN}}" }}
batch = {{ max_age = "50ms" }}
"""


def test_host_metrics_reach_rotel_over_grpc_and_a_grpcio_receiver_over_http(run_agent, peers, tmp_path):
    rotel_grpc, rotel_log = start_rotel(peers, tmp_path)
    _, sink_http, sink_out = start_sink(peers, tmp_path)
    agent = run_agent(
        CONFIG.format(data_dir=tmp_path, rotel_grpc=rotel_grpc, sink_http=sink_http),
        env={"SONDE_TEST_TOKEN": "tok-e2e"},
    )
    records = poll(lambda: [r for r in sink_records(sink_out)] if len(sink_records(sink_out)) >= 2 else None, 30, "two exports at the sink")
    poll(lambda: rotel_log.read_text().count("system.memory.usage") >= 2, 30, "rotel to record two scrapes")
    assert agent.stop(signal.SIGTERM) == 0, agent.stderr_tail()

    for r in records:
        assert r["transport"] == "http" and r["signal"] == "metrics" and r["path"] == "/v1/metrics"
        assert r["headers"]["authorization"] == "Bearer tok-e2e"
        assert r["headers"]["content-encoding"] == "zstd"
        req = ExportMetricsServiceRequest()
        req.ParseFromString(base64.b64decode(r["body"]))
        names = {m.name for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        assert {"system.cpu.time", "system.memory.usage", "system.cpu.load_average.1m"} <= names, names
        points = [dp for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                  if m.name == "system.memory.usage" for dp in m.sum.data_points]
        assert points and all(dp.as_int > 0 for dp in points)
    text = rotel_log.read_text()
    for name in ("system.cpu.time", "system.memory.usage", "system.cpu.load_average.1m"):
        assert name in text, f"rotel did not record {name}"
    assert "tok-e2e" not in agent.stderr_tail(200)


def test_a_destination_that_comes_up_late_still_gets_the_data(run_agent, peers, tmp_path):
    sink_grpc, sink_http = free_port(), free_port()
    agent = run_agent(
        f"""
[agent]
data_dir = "{tmp_path}"
shutdown_timeout = "5s"

[sources.host]
type = "host_metrics"
interval = "1s"
collectors = ["memory"]

[exporters.out]
type = "otlp"
endpoint = "http://127.0.0.1:{sink_grpc}"
batch = {{ max_age = "50ms" }}
retry = {{ initial_backoff = "100ms", max_backoff = "500ms", max_elapsed = "unlimited" }}
"""
    )
    assert agent.wait_stderr("export failed, retrying", 20), agent.stderr_tail()
    _, _, out = start_sink(peers, tmp_path, grpc=sink_grpc, http=sink_http)
    records = poll(lambda: sink_records(out) or None, 30, "the first export after the sink came up")
    assert agent.stop(signal.SIGTERM) == 0, agent.stderr_tail()
    assert records[0]["transport"] == "grpc" and records[0]["signal"] == "metrics"
    req = ExportMetricsServiceRequest()
    req.ParseFromString(base64.b64decode(records[0]["body"]))
    assert any(m.name == "system.memory.usage" for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)


SECRET_CONFIG = """
[sources.host]
type = "host_metrics"

[exporters.vendor]
type = "otlp"
protocol = "http/protobuf"
endpoint = "https://otlp.vendor.example"
headers = { authorization = "Bearer ${VENDOR_TOKEN}", "x-api-key" = "plain-key-123" }
"""


def test_print_config_never_shows_a_header_token(tmp_path):
    f = tmp_path / "sonde.toml"
    f.write_text(SECRET_CONFIG)
    r = run_cli("print-config", "--config", str(f), env={"VENDOR_TOKEN": "sekrit-987"})
    assert r.returncode == 0, r.stderr
    assert "sekrit-987" not in r.stdout + r.stderr
    assert "plain-key-123" not in r.stdout + r.stderr
    assert 'authorization = "<redacted>"' in r.stdout, r.stdout
    assert 'type = "otlp"' in r.stdout and 'compression = "gzip"' in r.stdout
    # What it prints is a valid config again.
    g = tmp_path / "printed.toml"
    g.write_text(r.stdout)
    v = run_cli("validate", "--config", str(g))
    assert v.returncode == 0, v.stderr


def test_a_bad_endpoint_is_refused_with_its_position(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(
        """[sources.host]
type = "host_metrics"

[exporters.out]
type = "otlp"
endpoints = ["http://a:4317", "ftp://b:4317"]
"""
    )
    r = run_cli("validate", "--config", str(f))
    assert r.returncode == 1
    assert f"{f}:6:31: `exporters.out.endpoints[1]`" in r.stderr, r.stderr
    assert "scheme" in r.stderr
