import pytest
"""Running it for real: the admin server's /metrics, /health/* and /config, sd_notify, SIGHUP."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import poll, sonde_bin
from test_otlp_exporter import peers  # noqa: F401  (fixture)


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(url):
    """Prometheus samples as {(name, frozenset(labels)): value}, parsed by prometheus-client."""
    status, text = get(url + "/metrics")
    assert status == 200
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def total(samples, name, **labels):
    return sum(v for (n, l), v in samples.items() if n == name and all((k, v2) in l for k, v2 in labels.items()))


HOST_JSON = """
[agent]
data_dir = "{tmp}"
[sources.host]
type = "host_metrics"
interval = "{interval}"
[exporters.out]
type = "stdout"
format = "json"
batch = {{ max_age = "50ms" }}
{extra}
"""


def test_metrics_count_what_was_produced_and_printed(run_agent, tmp_path):
    # One scrape only (the first tick is immediate), so the counters can be compared exactly.
    agent = run_agent(HOST_JSON.format(tmp=tmp_path, interval="1h", extra=""))
    url = agent.admin_url()
    printed = 0
    for line in agent.lines(timeout=20):
        req = json.loads(line)
        for rm in req["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                for m in sm["metrics"]:
                    kind = next(k for k in ("gauge", "sum", "histogram") if k in m)
                    printed += len(m[kind]["dataPoints"])
        break
    assert printed > 0
    samples = poll(
        lambda: (lambda s: s if total(s, "sonde_exporter_sent_items_total", exporter="out") == printed else None)(
            scrape(url)
        ),
        10,
        f"sent counter to reach the {printed} printed data points",
    )
    assert total(samples, "sonde_source_received_items_total", source="host") == printed
    assert total(samples, "sonde_source_scrapes_total", source="host") == 1
    assert total(samples, "sonde_exporter_dropped_items_total") == 0
    assert samples[("sonde_buffer_bytes", frozenset({("exporter", "out")}))] == 0
    assert samples[("process_resident_memory_bytes", frozenset())] > 1_000_000
    assert samples[("process_open_fds", frozenset())] > 3
    assert ("sonde_build_info", frozenset({("version", "0.1.0")})) in samples
    assert agent.stop() == 0


def test_health_live_and_ready_and_config(run_agent, tmp_path):
    agent = run_agent(HOST_JSON.format(tmp=tmp_path, interval="1s", extra=""))
    url = agent.admin_url()
    poll(lambda: get(url + "/health/live")[0] == 200, 10, "live")
    status, body = get(url + "/health/ready")
    assert status == 200 and json.loads(body)["status"] == "ready", body
    status, cfg = get(url + "/config")
    assert status == 200 and 'type = "host_metrics"' in cfg
    agent.stop()


def test_readiness_flips_when_the_only_exporter_keeps_failing_and_recovers(tmp_path):
    # stdout is a FIFO whose reader never reads: once it is full (64 KiB) every export times out.
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(fifo, os.O_WRONLY)
    cfg = tmp_path / "fifo.toml"
    cfg.write_text(
        HOST_JSON.format(
            tmp=tmp_path,
            interval="100ms",
            extra='timeout = "200ms"\nretry = { initial_backoff = "50ms", max_backoff = "200ms" }\n'
            '[agent.health]\nunhealthy_after = "1s"\n',
        ).replace("[agent]\n", '[agent]\nshutdown_timeout = "2s"\n', 1)
    )
    env = dict(os.environ, SONDE_ADMIN="127.0.0.1:0", SONDE_LOG="info")
    proc = subprocess.Popen([sonde_bin(), "run", "--config", str(cfg)], stdout=wfd, stderr=subprocess.PIPE, env=env)
    os.close(wfd)

    def drain():
        try:
            while os.read(rfd, 1 << 16):
                pass
        except BlockingIOError:
            pass

    try:
        def admin():
            l = proc.stderr.readline().decode()
            return json.loads(l)["address"] if "admin server listening" in l else None

        url = "http://" + poll(admin, 10, "admin address")
        status, body = poll(
            lambda: (lambda r: r if r[0] == 503 and "exporter/out" in r[1] else None)(get(url + "/health/ready")),
            30,
            "503 naming the exporter",
        )
        problems = json.loads(body)["problems"]
        assert any(p["component"] == "exporter/out" and "timed out" in p["reason"] for p in problems), body
        # Drain the pipe: exports succeed again and readiness returns.
        poll(lambda: drain() or get(url + "/health/ready")[0] == 200, 30, "ready again")
    finally:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            drain()
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        os.close(rfd)
    assert proc.returncode == 0


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_sd_notify_ready_watchdog_stopping_in_order(run_agent, tmp_path, kind):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if kind == "path":
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    else:
        # An abstract socket (Linux): NOTIFY_SOCKET="@name", bound as "\0name".
        name = f"sonde-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        address = "@" + name
    sock.settimeout(0.5)
    agent = run_agent(
        HOST_JSON.format(tmp=tmp_path, interval="1s", extra=""),
        env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"},
    )
    got = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any("WATCHDOG=1" in g for g in got):
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
    assert agent.stop() == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("STOPPING=1" in g for g in got):
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
    sock.close()
    first = lambda needle: next(i for i, g in enumerate(got) if needle in g)
    assert "READY=1" in got[0] and "STATUS=running: 1 sources, 1 exporters" in got[0], got
    assert first("READY=1") < first("WATCHDOG=1") < first("STOPPING=1"), got


def test_sighup_reloads_a_valid_config_and_keeps_the_old_one_on_error(run_agent, tmp_path):
    agent = run_agent(HOST_JSON.format(tmp=tmp_path, interval="1s", extra=""))
    url = agent.admin_url()
    cfg_file = tmp_path / "sonde-0.toml"
    # Invalid: the running config stays.
    cfg_file.write_text(HOST_JSON.format(tmp=tmp_path, interval="soon", extra=""))
    agent.proc.send_signal(signal.SIGHUP)
    assert agent.wait_stderr("reload refused", timeout=10), agent.stderr_tail()
    assert 'interval = "1s"' in get(url + "/config")[1]
    # Valid: it takes.
    cfg_file.write_text(HOST_JSON.format(tmp=tmp_path, interval="2s", extra=""))
    agent.proc.send_signal(signal.SIGHUP)
    assert agent.wait_stderr("configuration reloaded", timeout=15), agent.stderr_tail()
    assert 'interval = "2s"' in get(url + "/config")[1]
    samples = scrape(url)
    assert total(samples, "sonde_config_reloads_total", result="success") == 1
    assert total(samples, "sonde_config_reloads_total", result="failure") == 1
    assert poll(lambda: get(url + "/health/ready")[0] == 200, 10, "ready after reload")
    assert agent.stop() == 0


def test_internal_metrics_flow_through_the_pipeline_as_otlp(run_agent, tmp_path):
    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    agent = run_agent(
        f"""
[agent]
data_dir = "{tmp_path}"
[sources.self]
type = "internal_metrics"
interval = "300ms"
[exporters.out]
type = "stdout"
format = "json"
batch = {{ max_age = "20ms" }}
"""
    )
    url = agent.admin_url()
    seen = {}
    for line in agent.lines(timeout=20):
        req = ExportMetricsServiceRequest()
        json_format.Parse(line, req)
        for rm in req.resource_metrics:
            res = {a.key: a.value.string_value for a in rm.resource.attributes}
            assert res["service.name"] == "sonde"
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    seen[m.name] = m
        sent = seen.get("sonde_exporter_sent_items_total")
        if sent and any(p.as_int > 0 for p in sent.sum.data_points):
            break
    sent = seen["sonde_exporter_sent_items_total"]
    assert sent.sum.is_monotonic and sent.sum.aggregation_temporality == 2
    (point,) = [p for p in sent.sum.data_points if {a.key: a.value.string_value for a in p.attributes} == {"exporter": "out"}]
    assert point.as_int > 0
    assert seen["process_resident_memory_bytes"].gauge.data_points[0].as_int > 1_000_000
    # The same counter is on /metrics, at least as high (it only grows).
    assert total(scrape(url), "sonde_exporter_sent_items_total", exporter="out") >= point.as_int
    assert agent.stop() == 0


LOAD_CONFIG = """
[agent]
data_dir = "{tmp}"
[sources.apps]
type = "otlp"
grpc = "off"
http = "127.0.0.1:{port}"
[exporters.upstream]
type = "otlp"
protocol = "http/protobuf"
endpoint = "http://127.0.0.1:{sink_http}"
batch = {{ max_age = "50ms" }}
"""


def test_metrics_after_a_load_run_equal_what_was_sent_and_received(run_agent, peers, tmp_path):  # noqa: F811
    """OTLP records in from a client, OTLP out to a sink built from PyPI parts: /metrics, read
    with prometheus-client's parser, counts exactly what the test sent and the sink received."""
    import http.client

    from test_otlp_crash import delivered_ids, logs_request
    from conftest import free_port
    from test_otlp_exporter import start_sink

    _, sink_http, out = start_sink(peers, tmp_path)
    port = free_port()
    agent = run_agent(LOAD_CONFIG.format(tmp=tmp_path, port=port, sink_http=sink_http))
    url = agent.admin_url()
    poll(lambda: any("OTLP/" in l and "listening" in l for l in agent.stderr_lines), 15, "the receiver")
    requests, per_request = 200, 50
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for k in range(requests):
        conn.request("POST", "/v1/logs", logs_request(k * per_request, per_request), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    conn.close()
    sent = requests * per_request
    poll(lambda: len(delivered_ids(out)) >= sent, 30, f"{sent} records at the sink")
    received = delivered_ids(out)
    assert sorted(received) == list(range(sent))
    samples = poll(
        lambda: (lambda s: s if total(s, "sonde_exporter_sent_items_total", exporter="upstream") == sent else None)(
            scrape(url)
        ),
        10,
        "the exporter's sent counter",
    )
    assert total(samples, "sonde_source_received_items_total", source="apps", signal="logs") == sent
    assert total(samples, "sonde_source_accepted_requests_total", source="apps") == requests
    assert total(samples, "sonde_source_refused_requests_total", source="apps") == 0
    assert total(samples, "sonde_exporter_dropped_items_total") == 0
    assert total(samples, "sonde_exporter_failed_calls_total") == 0
    assert total(samples, "sonde_otlp_exporter_requests_total") >= 1
    # Every successful call is in the latency histogram; the +Inf bucket is the count.
    calls = total(samples, "sonde_exporter_sent_batches_total", exporter="upstream")
    assert calls >= 1
    assert total(samples, "sonde_exporter_call_duration_seconds_count", exporter="upstream", outcome="success") == calls
    assert total(samples, "sonde_exporter_call_duration_seconds_bucket", exporter="upstream", outcome="success", le="+Inf") == calls
    assert total(samples, "sonde_exporter_call_duration_seconds_sum", exporter="upstream", outcome="success") > 0
    assert samples[("sonde_buffer_bytes", frozenset({("exporter", "upstream")}))] == 0
    assert agent.stop() == 0, agent.stderr_tail()
