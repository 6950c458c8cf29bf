"""The OTLP receiver end to end: real clients nobody here wrote (the OpenTelemetry Python SDK's
gRPC and HTTP exporters, curl, grpcio) against the running binary, whose stdout exporter prints
what it received as OTLP/JSON. Bad input, backpressure with the RSS bound, TLS and the bearer
token."""

import gzip
import http.client
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from conftest import Agent, json_lines, run_cli, sonde_bin

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def config(tmp_path, source_extra="", exporter_extra="", admin=True, batch='{ max_age = "20ms" }'):
    return f"""
[agent]
data_dir = "{tmp_path}"
shutdown_timeout = "5s"
{'' if admin else 'admin = "off"'}

[sources.otlp]
type = "otlp"
grpc = "127.0.0.1:0"
http = "127.0.0.1:0"
{source_extra}

[exporters.out]
type = "stdout"
format = "json"
batch = {batch}
{exporter_extra}
"""


def listening(agent, timeout=10.0):
    """{'grpc': 'host:port', 'http': 'host:port'} from the agent's 'OTLP/... listening' lines."""
    deadline = time.monotonic() + timeout
    found = {}
    while time.monotonic() < deadline:
        for line in list(agent.stderr_lines):
            if "listening" in line and '"transport"' in line:
                d = json.loads(line)
                found[d["transport"]] = d["address"]
        if len(found) == 2:
            return found
        if agent.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"the OTLP listeners were not announced; stderr: {agent.stderr_tail()}")


def any_value(v):
    """An OTLP/JSON AnyValue as a Python value."""
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return v["boolValue"]
    if "arrayValue" in v:
        return tuple(any_value(x) for x in (v["arrayValue"] or {}).get("values", []))
    return None


def attrs(kvs):
    return {kv["key"]: any_value(kv.get("value") or {}) for kv in kvs or []}


class Output:
    """What the agent printed (OTLP/JSON requests), flattened to spans, points and log records."""

    def __init__(self, agent):
        self.agent = agent
        self.spans, self.points, self.logs = [], [], []

    def _take(self, req):
        for rs in req.get("resourceSpans", []):
            res = attrs((rs.get("resource") or {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    self.spans.append({**s, "_resource": res})
        for rm in req.get("resourceMetrics", []):
            res = attrs((rm.get("resource") or {}).get("attributes"))
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    for kind in ("sum", "gauge", "histogram"):
                        for p in (m.get(kind) or {}).get("dataPoints", []):
                            self.points.append({"name": m["name"], "kind": kind, **p, "_resource": res})
        for rl in req.get("resourceLogs", []):
            res = attrs((rl.get("resource") or {}).get("attributes"))
            for sl in rl.get("scopeLogs", []):
                for r in sl.get("logRecords", []):
                    self.logs.append({**r, "_resource": res})

    def wait(self, done, timeout=15.0):
        for req in json_lines(self.agent.lines(timeout)):
            self._take(req)
            if done(self):
                return True
        return done(self)


# ---------------------------------------------------------------------------------------------
# Real SDK clients


def sdk_exporters(transport, addr, **kw):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        scheme = kw.pop("scheme", "https" if "credentials" in kw else "http")
        common = dict(endpoint=f"{scheme}://{addr}", timeout=10, **kw)
        return OTLPSpanExporter(**common), OTLPMetricExporter(**common), OTLPLogExporter(**common)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = f"{kw.pop('scheme', 'http')}://{addr}"
    return (
        OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=10, **kw),
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=10, **kw),
        OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=10, **kw),
    )


def make_spans(tag):
    """Three finished SDK spans (a parent and two children) with attributes of every kind."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mem = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": f"svc-{tag}", "deployment.environment": "test"}))
    tp.add_span_processor(SimpleSpanProcessor(mem))
    tracer = tp.get_tracer("sonde.e2e", "1.0")
    with tracer.start_as_current_span(f"{tag}-parent", attributes={"http.route": "/cart", "http.status_code": 200}):
        with tracer.start_as_current_span(f"{tag}-child-1", attributes={"db.system": "postgres", "ratio": 0.25, "cached": True}):
            pass
        with tracer.start_as_current_span(f"{tag}-child-2", attributes={"tags": ("a", "b")}):
            pass
    tp.shutdown()
    return mem.get_finished_spans()


def make_metrics(tag):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": f"svc-{tag}"}))
    meter = mp.get_meter("sonde.e2e")
    meter.create_counter(f"{tag}.requests").add(5, {"route": "/a"})
    meter.create_counter(f"{tag}.requests").add(2, {"route": "/b"})
    hist = meter.create_histogram(f"{tag}.latency", unit="ms")
    for v in (3.0, 7.0, 12.0):
        hist.record(v, {"route": "/a"})
    data = reader.get_metrics_data()
    mp.shutdown()
    return data


def make_logs(tag):
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    mem = InMemoryLogRecordExporter()
    lp = LoggerProvider(resource=Resource.create({"service.name": f"svc-{tag}"}))
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    logger = lp.get_logger("sonde.e2e")
    logger.emit(body=f"{tag} first", severity_number=SeverityNumber.INFO, severity_text="INFO", attributes={"user.id": 42})
    logger.emit(body=f"{tag} second", severity_number=SeverityNumber.ERROR, severity_text="ERROR", attributes={"retry": False})
    lp.shutdown()
    return mem.get_finished_logs()


def expected_spans(spans):
    out = {}
    for s in spans:
        ctx = s.get_span_context()
        out[s.name] = {
            "traceId": format(ctx.trace_id, "032x"),
            "spanId": format(ctx.span_id, "016x"),
            "parentSpanId": format(s.parent.span_id, "016x") if s.parent else "",
            "attributes": {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in s.attributes.items()},
            "resource": dict(s.resource.attributes),
        }
    return out


def send_all(transport, addr, tag, **kw):
    """Sends spans, metrics and logs with the SDK's OTLP exporters; returns what was sent."""
    from opentelemetry.sdk._logs.export import LogRecordExportResult
    from opentelemetry.sdk.metrics.export import MetricExportResult
    from opentelemetry.sdk.trace.export import SpanExportResult

    span_exp, metric_exp, log_exp = sdk_exporters(transport, addr, **kw)
    spans, metrics, logs = make_spans(tag), make_metrics(tag), make_logs(tag)
    try:
        assert span_exp.export(spans) == SpanExportResult.SUCCESS
        assert metric_exp.export(metrics) == MetricExportResult.SUCCESS
        assert log_exp.export(logs) == LogRecordExportResult.SUCCESS
    finally:
        for e in (span_exp, metric_exp, log_exp):
            e.shutdown()
    return spans, metrics, logs


@pytest.fixture
def agent(run_agent, tmp_path):
    a = run_agent(config(tmp_path))
    a.addrs = listening(a)
    return a


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_spans_metrics_and_logs_arrive_exactly_as_sent(agent, transport):
    tag = f"sdk-{transport}"
    spans, _, logs = send_all(transport, agent.addrs[transport], tag)
    want = expected_spans(spans)
    out = Output(agent)
    assert out.wait(
        lambda o: len(o.spans) >= 3 and len(o.points) >= 3 and len(o.logs) >= 2
    ), (out.spans, out.points, out.logs, agent.stderr_tail())
    # Spans: exactly the three sent, with their ids, parents, attributes and resource.
    got = {
        s["name"]: {
            "traceId": s["traceId"],
            "spanId": s["spanId"],
            "parentSpanId": s["parentSpanId"],
            "attributes": attrs(s["attributes"]),
            "resource": {k: v for k, v in s["_resource"].items() if k in want[s["name"]]["resource"]},
        }
        for s in out.spans
    }
    assert len(out.spans) == 3
    assert got == want
    assert got[f"{tag}-child-1"]["parentSpanId"] == got[f"{tag}-parent"]["spanId"]
    # Metrics: the counter's two points and the histogram's one, values intact.
    by = {(p["name"], attrs(p["attributes"]).get("route")): p for p in out.points}
    assert len(out.points) == 3
    assert int(by[(f"{tag}.requests", "/a")]["asInt"]) == 5
    assert int(by[(f"{tag}.requests", "/b")]["asInt"]) == 2
    h = by[(f"{tag}.latency", "/a")]
    assert int(h["count"]) == 3 and h["sum"] == 22.0 and h["kind"] == "histogram"
    assert all(p["_resource"]["service.name"] == f"svc-{tag}" for p in out.points)
    # Logs: both records, body, severity and attributes.
    got_logs = {r["body"]["stringValue"]: r for r in out.logs}
    assert set(got_logs) == {f"{tag} first", f"{tag} second"}
    assert got_logs[f"{tag} first"]["severityNumber"] == 9
    assert attrs(got_logs[f"{tag} first"]["attributes"]) == {"user.id": 42}
    assert got_logs[f"{tag} second"]["severityText"] == "ERROR"
    assert len(logs) == 2


# ---------------------------------------------------------------------------------------------
# curl


def trace_request(names, service="curl-svc", attr_bytes=0):
    """An ExportTraceServiceRequest (protobuf object) with one span per name."""
    rnd = random.Random(hash(tuple(names)) & 0xFFFF)
    spans = [
        trace_pb2.Span(
            trace_id=rnd.randbytes(16),
            span_id=rnd.randbytes(8),
            name=n,
            kind=trace_pb2.Span.SPAN_KIND_SERVER,
            start_time_unix_nano=1_700_000_000_000_000_000,
            end_time_unix_nano=1_700_000_000_100_000_000,
            attributes=[
                common_pb2.KeyValue(key="idx", value=common_pb2.AnyValue(int_value=i)),
                common_pb2.KeyValue(key="pad", value=common_pb2.AnyValue(string_value="x" * attr_bytes)),
            ],
        )
        for i, n in enumerate(names)
    ]
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(
                    attributes=[common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=service))]
                ),
                scope_spans=[trace_pb2.ScopeSpans(spans=spans)],
            )
        ]
    )


def curl(*args):
    exe = shutil.which("curl")
    assert exe, "curl is not installed (tests/run.sh installs it)"
    r = subprocess.run([exe, "-sS", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True, timeout=30)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code), body


def test_curl_json_and_gzipped_protobuf(agent, tmp_path):
    url = f"http://{agent.addrs['http']}/v1/traces"
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "curl-json"}}]},
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "5b8efff798038103d269b633813fc60c",
                                    "spanId": "eee19b7ec3c1b174",
                                    "name": "curl-json-span",
                                    "kind": 2,
                                    "startTimeUnixNano": "1700000000000000000",
                                    "endTimeUnixNano": "1700000000500000000",
                                    "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}],
                                }
                            ]
                        }
                    ],
                }
            ]
        }
    )
    code, resp = curl("-H", "Content-Type: application/json", "--data-binary", body, url)
    assert (code, json.loads(resp)) == (200, {})

    pb = trace_request(["curl-gz-1", "curl-gz-2"], service="curl-gzip")
    f = tmp_path / "req.pb.gz"
    f.write_bytes(gzip.compress(pb.SerializeToString()))
    code, resp = curl(
        "-H", "Content-Type: application/x-protobuf", "-H", "Content-Encoding: gzip", "--data-binary", f"@{f}", url
    )
    assert (code, resp) == (200, b"")

    out = Output(agent)
    assert out.wait(lambda o: len(o.spans) >= 3), out.spans
    by = {s["name"]: s for s in out.spans}
    assert set(by) == {"curl-json-span", "curl-gz-1", "curl-gz-2"}
    j = by["curl-json-span"]
    assert (j["traceId"], j["spanId"], j["kind"]) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", 2)
    assert attrs(j["attributes"]) == {"http.status_code": 200}
    assert j["_resource"]["service.name"] == "curl-json"
    for s in pb.resource_spans[0].scope_spans[0].spans:
        assert by[s.name]["traceId"] == s.trace_id.hex() and by[s.name]["spanId"] == s.span_id.hex()
        assert by[s.name]["_resource"]["service.name"] == "curl-gzip"


# ---------------------------------------------------------------------------------------------
# Bad input


def http_post(addr, path, body, headers, timeout=10):
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        c.request("POST", path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def status_message(body, ctype):
    if ctype == "application/json":
        return json.loads(body)["message"]
    st = status_pb2.Status()
    st.ParseFromString(body)
    return st.message


def grpc_call(addr, data, compression=None, method=TRACE_METHOD, metadata=None, credentials=None):
    ch = grpc.secure_channel(addr, credentials) if credentials else grpc.insecure_channel(addr)
    try:
        call = ch.unary_unary(method)
        try:
            call(data, timeout=10, compression=compression, metadata=metadata)
            return grpc.StatusCode.OK, "", ()
        except grpc.RpcError as e:
            return e.code(), e.details(), e.trailing_metadata() or ()
    finally:
        ch.close()


def metric_value(agent, name, **labels):
    text = urllib.request.urlopen(agent.admin_url() + "/metrics", timeout=5).read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_bad_input_gets_the_right_status_and_the_agent_keeps_serving(run_agent, tmp_path):
    agent = run_agent(config(tmp_path, source_extra='max_request_size = "64KiB"'))
    addrs = listening(agent)
    good = trace_request(["good-before"]).SerializeToString()
    truncated = good[:-5]
    garbage = random.Random(7).randbytes(1000)
    oversized = trace_request(["big"], attr_bytes=100 * 1024).SerializeToString()
    bomb = gzip.compress(b"\0" * (16 << 20))
    assert len(bomb) < 64 * 1024
    pb = {"Content-Type": "application/x-protobuf"}
    js = {"Content-Type": "application/json"}
    bad_hex = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "nothex!!", "name": "x"}]}]}]})

    h = addrs["http"]
    cases = [
        ("truncated protobuf", truncated, pb, 400, "invalid OTLP traces export request"),
        ("random bytes", garbage, pb, 400, "invalid OTLP traces export request"),
        ("wrong content type", good, {"Content-Type": "text/plain"}, 415, "Content-Type"),
        ("oversized body", oversized, pb, 413, "max_request_size"),
        ("zip bomb", bomb, {**pb, "Content-Encoding": "gzip"}, 413, "after decompression"),
        ("invalid JSON", b'{"resourceSpans": [', js, 400, "invalid OTLP/JSON"),
        ("bad hex id", bad_hex.encode(), js, 400, "traceId"),
        ("empty JSON body", b"", js, 400, "JSON"),
    ]
    for what, body, headers, want, needle in cases:
        status, hdrs, resp = http_post(h, "/v1/traces", body, headers)
        assert status == want, (what, status, resp)
        ctype = hdrs.get("content-type", "application/json")
        assert needle in status_message(resp, ctype), (what, resp)
    # An empty request is a valid, empty export request: success, nothing forwarded.
    assert http_post(h, "/v1/traces", b"", pb)[0] == 200
    assert http_post(h, "/v1/logs", b"{}", js)[0] == 200

    g = addrs["grpc"]
    assert grpc_call(g, truncated)[0] == grpc.StatusCode.INVALID_ARGUMENT
    code, details, _ = grpc_call(g, garbage)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "invalid OTLP traces export request" in details
    code, details, _ = grpc_call(g, oversized)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    code, details, _ = grpc_call(g, b"\0" * (16 << 20), compression=grpc.Compression.Gzip)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_request_size" in details, details
    assert grpc_call(g, good, method="/opentelemetry.proto.collector.trace.v1.TraceService/Nope")[0] == (
        grpc.StatusCode.UNIMPLEMENTED
    )
    assert grpc_call(g, b"")[0] == grpc.StatusCode.OK

    # Still serving, and nothing malformed reached the exporter.
    assert http_post(h, "/v1/traces", good, pb)[0] == 200
    assert grpc_call(g, trace_request(["good-after"]).SerializeToString())[0] == grpc.StatusCode.OK
    out = Output(agent)
    assert out.wait(lambda o: len(o.spans) >= 2)
    assert sorted(s["name"] for s in out.spans) == ["good-after", "good-before"]
    assert metric_value(agent, "sonde_source_refused_requests_total", reason="malformed") == 7
    assert metric_value(agent, "sonde_source_refused_requests_total", reason="too_large") == 4
    assert metric_value(agent, "sonde_source_refused_requests_total", reason="unsupported_media_type") == 1
    assert agent.proc.poll() is None


def test_a_taken_port_fails_the_start_with_the_address(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text(config(tmp_path).replace('http = "127.0.0.1:0"', f'http = "127.0.0.1:{port}"'))
        r = run_cli("run", "--config", str(cfg), env={"SONDE_ADMIN": "127.0.0.1:0"}, timeout=20)
        assert r.returncode == 1
        assert f"cannot listen for OTLP/HTTP on 127.0.0.1:{port}" in r.stderr, r.stderr
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# Backpressure


def rss_kib(pid, field="VmHWM"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_a_stuck_exporter_makes_clients_back_off_and_nothing_accepted_is_lost(tmp_path):
    """The stdout exporter writes into a pipe nobody reads: it blocks once the pipe is full, its
    small buffer fills, and the receiver must throttle — with a retry hint — instead of growing."""
    cfg = tmp_path / "sonde.toml"
    cfg.write_text(
        config(
            tmp_path,
            source_extra='max_request_size = "1MiB"\nmax_in_flight = 4\nblock_timeout = "100ms"\nretry_after = "1s"',
            exporter_extra='buffer = { max_size = "512KiB", when_full = "block" }',
            batch='{ max_bytes = "256KiB", max_age = "10ms" }',
        )
    )
    err = open(tmp_path / "stderr.log", "w+b")
    env = dict(os.environ, SONDE_LOG="info", SONDE_ADMIN="127.0.0.1:0")
    proc = subprocess.Popen(
        [sonde_bin(), "run", "--config", str(cfg)], stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env
    )
    try:
        deadline = time.monotonic() + 10
        addrs = {}
        while len(addrs) < 2 and time.monotonic() < deadline:
            for line in (tmp_path / "stderr.log").read_text().splitlines():
                if "listening" in line and '"transport"' in line:
                    d = json.loads(line)
                    addrs[d["transport"]] = d["address"]
            time.sleep(0.05)
        assert len(addrs) == 2, (tmp_path / "stderr.log").read_text()
        baseline = rss_kib(proc.pid, "VmRSS")

        accepted, throttled = [], []
        retry_hints = set()
        pb = {"Content-Type": "application/x-protobuf"}
        # Phase 1: one at a time until the pipe and the buffer are full and we are throttled.
        deadline = time.monotonic() + 60
        i = 0
        while len(throttled) < 10 and time.monotonic() < deadline and i < 2000:
            name = f"bp-{i}"
            body = trace_request([name], attr_bytes=8 * 1024).SerializeToString()
            if i % 2:
                code, _, trailers = grpc_call(addrs["grpc"], body)
                ok = code == grpc.StatusCode.OK
                if not ok:
                    assert code == grpc.StatusCode.UNAVAILABLE, code
                    md = dict(trailers)
                    st = status_pb2.Status.FromString(md["grpc-status-details-bin"])
                    info = error_details_pb2.RetryInfo()
                    assert st.details[0].Unpack(info)
                    retry_hints.add(("grpc", info.retry_delay.seconds))
            else:
                status, hdrs, resp = http_post(addrs["http"], "/v1/traces", body, pb)
                ok = status == 200
                if not ok:
                    assert status == 503, (status, resp)
                    retry_hints.add(("http", hdrs.get("retry-after") or hdrs.get("Retry-After")))
            (accepted if ok else throttled).append(name)
            i += 1
        assert len(throttled) >= 10, f"never throttled after {i} requests"
        assert retry_hints == {("grpc", 1), ("http", "1")}, retry_hints

        # Phase 2: a flood of large requests from several threads: all must be throttled (the
        # buffer stays full) and memory must stay bounded.
        big = trace_request(["bp-big"], attr_bytes=900 * 1024).SerializeToString()
        codes = []

        def flood(n):
            for _ in range(n):
                codes.append(http_post(addrs["http"], "/v1/traces", big, pb)[0])

        threads = [threading.Thread(target=flood, args=(15,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(codes) == 120 and set(codes) <= {429, 503}, sorted(set(codes))
        peak = rss_kib(proc.pid)
        # 108 MiB were offered; the receiver may hold at most max_in_flight (4) x 2 x 1 MiB plus
        # the 512 KiB buffer on top of its baseline.
        assert peak - baseline < 40 * 1024, (baseline, peak)

        # Phase 3: a real SDK client, throttled, backs off on Retry-After and gets through once
        # the exporter drains.
        from opentelemetry.sdk.trace.export import SpanExportResult

        span_exp = sdk_exporters("http", addrs["http"])[0]
        result = {}
        sdk_spans = make_spans("bp-sdk")
        t = threading.Thread(target=lambda: result.setdefault("r", span_exp.export(sdk_spans)))
        t.start()
        time.sleep(0.5)  # let its first attempt be refused: what is tested is that it retries

        # Drain: read stdout until every accepted name (and the SDK's spans) has been printed.
        seen = []
        want = set(accepted) | {s.name for s in sdk_spans}

        def pump():
            for raw in iter(proc.stdout.readline, b""):
                seen.append(raw)

        threading.Thread(target=pump, daemon=True).start()
        t.join(timeout=40)
        assert result.get("r") == SpanExportResult.SUCCESS, result
        deadline = time.monotonic() + 20
        names = set()
        while time.monotonic() < deadline and not want <= names:
            for raw in list(seen):
                if raw.startswith(b"{"):
                    for rs in json.loads(raw).get("resourceSpans", []):
                        for ss in rs.get("scopeSpans", []):
                            names.update(s["name"] for s in ss.get("spans", []))
            time.sleep(0.1)
        missing = set(accepted) - names
        assert not missing, f"{len(missing)} accepted requests never came out: {sorted(missing)[:10]}"
        assert not (set(throttled) & names), "a refused request was delivered anyway"
        assert "bp-big" not in names
        assert {s.name for s in sdk_spans} <= names
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        err.close()


# ---------------------------------------------------------------------------------------------
# TLS and the bearer token


@pytest.fixture
def pki(tmp_path):
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.com")
    d = tmp_path / "pki"
    d.mkdir()
    paths = {
        "ca": d / "ca.pem",
        "cert": d / "server.pem",
        "key": d / "server.key",
        "client_cert": d / "client.pem",
        "client_key": d / "client.key",
        "token": d / "token",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    with open(paths["cert"], "wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    with open(paths["client_cert"], "wb") as f:
        for blob in client.cert_chain_pems:
            f.write(blob.bytes())
    paths["token"].write_text("s3cr3t-t0ken-value\n")
    return paths


def tls_source(pki, mtls=True):
    ca = f'\nclient_ca_file = "{pki["ca"]}"' if mtls else ""
    return f"""
[sources.otlp.tls]
cert_file = "{pki['cert']}"
key_file = "{pki['key']}"{ca}

[sources.otlp.auth]
bearer_token_file = "{pki['token']}"
"""


def test_tls_with_client_certificates_and_a_bearer_token(run_agent, tmp_path, pki, monkeypatch):
    # requests lets these override the exporter's own CA file.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    agent = run_agent(config(tmp_path, source_extra=tls_source(pki)), env={"SONDE_LOG": "debug"})
    addrs = listening(agent)
    token = "s3cr3t-t0ken-value"
    root, ckey, ccert = (pki["ca"].read_bytes(), pki["client_key"].read_bytes(), pki["client_cert"].read_bytes())

    # Positive: the SDK over gRPC and HTTP, both with mTLS and the token.
    creds = grpc.ssl_channel_credentials(root, ckey, ccert)
    send_all("grpc", addrs["grpc"], "tls-grpc", credentials=creds, headers={"authorization": f"Bearer {token}"})
    send_all(
        "http",
        addrs["http"],
        "tls-http",
        scheme="https",
        certificate_file=str(pki["ca"]),
        client_key_file=str(pki["client_key"]),
        client_certificate_file=str(pki["client_cert"]),
        headers={"Authorization": f"Bearer {token}"},
    )
    out = Output(agent)
    assert out.wait(lambda o: len(o.spans) >= 6)
    assert {s["_resource"]["service.name"] for s in out.spans} == {"svc-tls-grpc", "svc-tls-http"}

    body = trace_request(["tls-neg"]).SerializeToString()
    # Negative: a wrong token, and none.
    code, _, _ = grpc_call(addrs["grpc"], body, metadata=[("authorization", "Bearer wrong")], credentials=creds)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _, _ = grpc_call(addrs["grpc"], body, credentials=creds)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
    host, port = addrs["http"].rsplit(":", 1)
    for auth in ({"Authorization": "Bearer wrong"}, {}):
        c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
        c.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf", **auth})
        r = c.getresponse()
        assert r.status == 401 and r.getheader("WWW-Authenticate") == "Bearer"
        c.close()
    # Negative: no client certificate (mTLS), and plaintext on the TLS port.
    no_cert = ssl.create_default_context(cafile=str(pki["ca"]))
    c = http.client.HTTPSConnection(host, int(port), context=no_cert, timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        c.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        c.getresponse()
    c.close()
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        http_post(addrs["http"], "/v1/traces", body, {"Content-Type": "application/x-protobuf"}, timeout=5)
    code, _, _ = grpc_call(addrs["grpc"], body, credentials=grpc.ssl_channel_credentials(root))
    assert code == grpc.StatusCode.UNAVAILABLE
    # A client that does not trust the server's certificate refuses it.
    code, _, _ = grpc_call(addrs["grpc"], body, credentials=grpc.ssl_channel_credentials())
    assert code == grpc.StatusCode.UNAVAILABLE

    assert "tls-neg" not in {s["name"] for s in out.spans}
    assert metric_value(agent, "sonde_source_refused_requests_total", reason="unauthenticated") == 4
    assert metric_value(agent, "sonde_source_refused_connections_total", reason="handshake") >= 2
    # The token never shows: not in the logs (at debug level), not in print-config.
    assert agent.stop() == 0
    assert token not in "\n".join(agent.stderr_lines)
    cfg_file = tmp_path / "tls.toml"
    cfg_file.write_text(config(tmp_path, source_extra=tls_source(pki)))
    r = run_cli("print-config", "--config", str(cfg_file))
    assert r.returncode == 0, r.stderr
    assert token not in r.stdout and str(pki["token"]) in r.stdout
    again = tmp_path / "again.toml"
    again.write_text(r.stdout)
    assert run_cli("validate", "--config", str(again)).returncode == 0


def test_tls_without_client_ca_takes_any_client(run_agent, tmp_path, pki):
    agent = run_agent(config(tmp_path, source_extra=tls_source(pki, mtls=False)))
    addrs = listening(agent)
    creds = grpc.ssl_channel_credentials(pki["ca"].read_bytes())
    body = trace_request(["tls-no-mtls"]).SerializeToString()
    code, details, _ = grpc_call(addrs["grpc"], body, credentials=creds, metadata=[("authorization", "Bearer s3cr3t-t0ken-value")])
    assert code == grpc.StatusCode.OK, details
    out = Output(agent)
    assert out.wait(lambda o: len(o.spans) >= 1)
    assert out.spans[0]["name"] == "tls-no-mtls"


# ---------------------------------------------------------------------------------------------
# Reload


def test_sighup_reload_rebinds_the_same_ports_with_clients_connected(run_agent, tmp_path):
    import socket

    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    text = config(tmp_path).replace('grpc = "127.0.0.1:0"', f'grpc = "127.0.0.1:{ports[0]}"').replace(
        'http = "127.0.0.1:0"', f'http = "127.0.0.1:{ports[1]}"'
    )
    agent = run_agent(text)
    addrs = listening(agent)
    assert addrs == {"grpc": f"127.0.0.1:{ports[0]}", "http": f"127.0.0.1:{ports[1]}"}
    # A client keeps a gRPC channel open (idle) across the reload, as SDKs do.
    ch = grpc.insecure_channel(addrs["grpc"])
    call = ch.unary_unary(TRACE_METHOD)
    call(trace_request(["before-reload"]).SerializeToString(), timeout=10)
    (tmp_path / "sonde-0.toml").write_text(text.replace("[sources.otlp]", '[sources.otlp]\nblock_timeout = "1s"'))
    agent.proc.send_signal(signal.SIGHUP)
    assert agent.wait_stderr("configuration reloaded", timeout=20), agent.stderr_tail()
    # The same channel reconnects to the rebound port; HTTP works too.
    deadline = time.monotonic() + 10
    while True:
        try:
            call(trace_request(["after-reload"]).SerializeToString(), timeout=5)
            break
        except grpc.RpcError as e:
            assert time.monotonic() < deadline, e
            time.sleep(0.1)
    ch.close()
    assert http_post(addrs["http"], "/v1/traces", trace_request(["after-reload-http"]).SerializeToString(),
                     {"Content-Type": "application/x-protobuf"})[0] == 200
    out = Output(agent)
    assert out.wait(lambda o: len(o.spans) >= 3)
    assert sorted(s["name"] for s in out.spans) == ["after-reload", "after-reload-http", "before-reload"]
    assert agent.stop() == 0
