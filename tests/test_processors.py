"""Processors end to end: apps using the OpenTelemetry Python SDK (and raw OTLP/HTTP protobuf
requests built with opentelemetry-proto, where volume or exact control matters) send to the
agent's OTLP receiver; the agent's processors act; its OTLP exporter delivers to the
grpcio/opentelemetry-proto sink (tests/otlp_sink.py), whose record is decoded and checked.

- resource: `set`/`insert`/`delete` and the `env` detector (the agent's OTEL_RESOURCE_ATTRIBUTES
  and OTEL_SERVICE_NAME); the application's own attributes win over inserted and detected ones;
  a resource-level message without a `Resource` gets one;
- filter: spans with `attributes["http.route"] == "/health"` and log records below INFO dropped,
  exact counts at the sink and in the agent's /metrics; SDK metrics through a chain (a metric
  dropped whole, a data point dropped, a metric left without points removed, then a resource
  processor), with an exporter without `inputs` beside it getting the source's data untouched;
- redact: e-mail, card numbers (Luhn-valid masked, a Luhn-invalid order number kept), a bearer
  token regex, `keys` and `bodies`, with `mask` and `hash`; the hash is the documented HMAC and
  is the same on two agents;
- sample: 10 % of 100k traces kept within statistical bounds, each decision the one the
  threshold written into `tracestate` implies, the same decisions on two agents; log records
  with a trace id follow their trace, those without are drawn at the same rate;
- a file source behind a filter that drops everything: the checkpoint still advances, and a
  restart reads nothing again;
- a reload (SIGHUP) applies new conditions, and the processor's counters carry on in one series.

Loopback only; every wait has a deadline."""

import base64
import hashlib
import hmac
import http.client
import json
import math
import random
import signal
import time
import urllib.request

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client.parser import text_string_to_metric_families

from test_otlp_exporter import free_port, peers, poll, start_sink  # noqa: F401
from test_otlp_receiver import listening

HASH_KEY = "0123456789abcdef-processors-e2e"


def agent_config(data, sink_http, processors, inputs, headers=None, extra_exporters=""):
    hdr = ""
    if headers:
        hdr = "headers = { " + ", ".join(f'"{k}" = "{v}"' for k, v in headers.items()) + " }"
    return f"""
[agent]
data_dir = "{data}"
shutdown_timeout = "5s"

[sources.apps]
type = "otlp"
grpc = "127.0.0.1:0"
http = "127.0.0.1:0"

{processors}

[exporters.sink]
type = "otlp"
protocol = "http/protobuf"
endpoint = "http://127.0.0.1:{sink_http}"
inputs = {json.dumps(inputs)}
batch = {{ max_age = "50ms" }}
{hdr}
{extra_exporters}
"""


# ---------------------------------------------------------------------------------------------
# What the sink received


def sink_lines(out):
    if not out.exists():
        return []
    recs = []
    for line in out.read_text().splitlines():
        try:
            recs.append(json.loads(line))
        except ValueError:
            pass  # a line still being written
    return recs


def attrs(kvs):
    """A repeated KeyValue as {key: python value}."""
    out = {}
    for kv in kvs:
        v = kv.value
        which = v.WhichOneof("value")
        out[kv.key] = getattr(v, which) if which else None
    return out


def sink_spans(out, pipeline=None):
    """[(resource attributes, span)] of every span the sink got (with header x-pipeline ==
    `pipeline` when given)."""
    found = []
    for rec in sink_lines(out):
        if rec["signal"] != "traces":
            continue
        if pipeline is not None and rec["headers"].get("x-pipeline") != pipeline:
            continue
        req = ExportTraceServiceRequest()
        req.ParseFromString(base64.b64decode(rec["body"]))
        for rs in req.resource_spans:
            r = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    found.append((r, s))
    return found


def sink_logs(out, pipeline=None):
    found = []
    for rec in sink_lines(out):
        if rec["signal"] != "logs":
            continue
        if pipeline is not None and rec["headers"].get("x-pipeline") != pipeline:
            continue
        req = ExportLogsServiceRequest()
        req.ParseFromString(base64.b64decode(rec["body"]))
        for rl in req.resource_logs:
            r = attrs(rl.resource.attributes)
            for sl in rl.scope_logs:
                for l in sl.log_records:
                    found.append((r, l))
    return found


def sink_points(out, pipeline=None):
    """{metric name: [(resource attributes, point attributes, value)]} of every sum and gauge
    data point the sink got."""
    found = {}
    for rec in sink_lines(out):
        if rec["signal"] != "metrics":
            continue
        if pipeline is not None and rec["headers"].get("x-pipeline") != pipeline:
            continue
        req = ExportMetricsServiceRequest()
        req.ParseFromString(base64.b64decode(rec["body"]))
        for rm in req.resource_metrics:
            r = attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    data = getattr(m, m.WhichOneof("data"))
                    for p in data.data_points:
                        value = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                        found.setdefault(m.name, []).append((r, attrs(p.attributes), value))
    return found


# ---------------------------------------------------------------------------------------------
# The agent's side


def metrics(agent):
    """Every sample of the agent's /metrics as {(name, frozenset(labels)): value}."""
    text = urllib.request.urlopen(agent.admin_url() + "/metrics", timeout=5).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def metric(m, name, **labels):
    """The sum of `name`'s samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, l), v in m.items() if n == name and want <= set(l))


def start_agent(run_agent, cfg, env=None):
    agent = run_agent(cfg, env=env)
    addr = listening(agent)
    return agent, addr


def post(addr, path, body: bytes):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/x-protobuf"})
        resp = conn.getresponse()
        text = resp.read()
        assert resp.status == 200, f"{path}: {resp.status} {text[:200]!r}"
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# The SDK as the application


def sdk_tracer(addr, resource):
    provider = TracerProvider(resource=Resource(resource))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{addr}/v1/traces", timeout=10), schedule_delay_millis=50)
    )
    return provider, provider.get_tracer("sonde.e2e")


def sdk_logger(addr, resource):
    provider = LoggerProvider(resource=Resource(resource))
    provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"http://{addr}/v1/logs", timeout=10), schedule_delay_millis=50)
    )
    return provider, provider.get_logger("sonde.e2e")


def log(logger, severity: SeverityNumber, body: str):
    logger.emit(severity_number=severity, severity_text=severity.name, body=body)


def flush(provider):
    assert provider.force_flush(10_000), "the SDK could not flush"


# ---------------------------------------------------------------------------------------------
# resource


def test_resource_sets_inserts_deletes_and_detects_with_the_apps_own_attributes_winning(run_agent, peers, tmp_path):  # noqa: F811
    _, sink_http, out = start_sink(peers, tmp_path)
    processors = """
[processors.enrich]
type = "resource"
inputs = ["apps"]
detectors = ["env"]
set = { team = "platform", "sonde.tier" = 2 }
insert = { region = "eu-west-1", "service.version" = "0.0.0" }
delete = ["secret.token"]
"""
    env = {
        "OTEL_RESOURCE_ATTRIBUTES": "service.name=env-svc,deployment.environment.name=prod,host.role=edge%2Cgateway,team=env-team,region=env-region",
        "OTEL_SERVICE_NAME": "env-name",
    }
    agent, addr = start_agent(run_agent, agent_config(tmp_path / "data", sink_http, processors, ["enrich"]), env=env)

    # The admin server shows what the env detector found.
    detected = json.loads(urllib.request.urlopen(agent.admin_url() + "/processors", timeout=5).read())
    assert detected["enrich"]["detected"]["deployment.environment.name"] == "prod"
    assert detected["enrich"]["detected"]["service.name"] == "env-name"

    # An instrumented application with its own resource.
    provider, tracer = sdk_tracer(
        addr["http"],
        {"service.name": "checkout", "service.version": "1.4.2", "team": "app-team", "secret.token": "s3cr3t"},
    )
    for i in range(5):
        with tracer.start_as_current_span(f"op-{i}"):
            pass
    flush(provider)
    provider.shutdown()

    # A request whose ResourceLogs has no Resource at all.
    req = ExportLogsServiceRequest()
    rec = req.resource_logs.add().scope_logs.add().log_records.add()
    rec.body.string_value = "no resource here"
    rec.severity_number = logs_pb2.SEVERITY_NUMBER_INFO
    post(addr["http"], "/v1/logs", req.SerializeToString())

    poll(lambda: len(sink_spans(out)) >= 5 and len(sink_logs(out)) >= 1, 15, "the spans and the log record at the sink")
    spans = sink_spans(out)
    assert len(spans) == 5
    for r, _ in spans:
        assert r["service.name"] == "checkout", r  # the app's own beats OTEL_SERVICE_NAME and the env list
        assert r["service.version"] == "1.4.2", r  # the app's own beats `insert`
        assert r["team"] == "platform", r  # `set` replaces the app's own and the detected
        assert r["sonde.tier"] == 2, r  # an int stays an int
        assert r["region"] == "eu-west-1", r  # `insert` beats the detected
        assert r["deployment.environment.name"] == "prod", r  # detected, absent from the app
        assert r["host.role"] == "edge,gateway", r  # percent-decoded as the SDKs do
        assert "secret.token" not in r, r
    logs = sink_logs(out)
    assert len(logs) == 1
    r, l = logs[0]
    assert l.body.string_value == "no resource here"
    assert r == {
        "service.name": "env-name",
        "team": "platform",
        "sonde.tier": 2,
        "region": "eu-west-1",
        "service.version": "0.0.0",
        "deployment.environment.name": "prod",
        "host.role": "edge,gateway",
    }, r

    m = metrics(agent)
    assert metric(m, "sonde_processor_modified_items_total", processor="enrich") == 6
    assert metric(m, "sonde_processor_items_total", processor="enrich", signal="traces") == 5
    assert metric(m, "sonde_processor_items_total", processor="enrich", signal="logs") == 1
    assert agent.stop() == 0, agent.stderr_tail()


# ---------------------------------------------------------------------------------------------
# filter


def test_filter_drops_health_checks_and_debug_logs_with_exact_counts(run_agent, peers, tmp_path):  # noqa: F811
    _, sink_http, out = start_sink(peers, tmp_path)
    processors = """
[processors.drop_noise]
type = "filter"
inputs = ["apps"]
spans = ['attributes["http.route"] == "/health"']
log_records = ["severity_number < SEVERITY_NUMBER_INFO"]
"""
    agent, addr = start_agent(run_agent, agent_config(tmp_path / "data", sink_http, processors, ["drop_noise"]))

    provider, tracer = sdk_tracer(addr["http"], {"service.name": "web"})
    for i in range(30):
        with tracer.start_as_current_span("GET /health") as s:
            s.set_attribute("http.route", "/health")
    for i in range(20):
        with tracer.start_as_current_span("GET /orders") as s:
            s.set_attribute("http.route", "/orders/{id}")
            s.set_attribute("seq", i)
    # A health check route that differs only in case, and a span without the attribute: kept.
    with tracer.start_as_current_span("GET /Health") as s:
        s.set_attribute("http.route", "/Health")
    with tracer.start_as_current_span("internal"):
        pass
    flush(provider)
    provider.shutdown()

    lp, logger = sdk_logger(addr["http"], {"service.name": "web"})
    for i in range(10):
        log(logger, SeverityNumber.DEBUG, f"debug {i}")
    for i in range(5):
        log(logger, SeverityNumber.INFO, f"info {i}")
    for i in range(5):
        log(logger, SeverityNumber.WARN, f"warning {i}")
    flush(lp)
    lp.shutdown()

    # Everything went through the filter and the exporter: then the sink's counts are final.
    def settled():
        m = metrics(agent)
        return (
            metric(m, "sonde_processor_items_total", processor="drop_noise", signal="traces") == 52
            and metric(m, "sonde_processor_items_total", processor="drop_noise", signal="logs") == 20
            and metric(m, "sonde_exporter_sent_items_total", exporter="sink") == 22 + 10
        ) and m

    m = poll(settled, 15, "the filter and the exporter to handle every item")
    assert metric(m, "sonde_processor_dropped_items_total", processor="drop_noise", reason="filtered") == 40
    assert metric(m, "sonde_processor_errors_total", processor="drop_noise") == 0

    spans = sink_spans(out)
    assert len(spans) == 22, [s.name for _, s in spans]
    routes = sorted(attrs(s.attributes).get("http.route", "-") for _, s in spans)
    assert routes == ["-", "/Health"] + ["/orders/{id}"] * 20
    assert sorted(attrs(s.attributes)["seq"] for _, s in spans if s.name == "GET /orders") == list(range(20))
    logs = sink_logs(out)
    assert len(logs) == 10
    assert sorted(l.body.string_value for _, l in logs) == sorted([f"info {i}" for i in range(5)] + [f"warning {i}" for i in range(5)])
    assert all(l.severity_number >= logs_pb2.SEVERITY_NUMBER_INFO for _, l in logs)
    assert agent.stop() == 0, agent.stderr_tail()


def test_metrics_filtered_then_tagged_through_a_chain_and_raw_beside_it(run_agent, peers, tmp_path):  # noqa: F811
    _, sink_http, out = start_sink(peers, tmp_path)
    processors = """
[processors.drop_metrics]
type = "filter"
inputs = ["apps"]
metrics = ['IsMatch(name, "^go\\\\.")']
datapoints = ['attributes["route"] == "/health"']

[processors.tag]
type = "resource"
inputs = ["drop_metrics"]
set = { pipeline = "processed" }
"""
    raw = f"""
[exporters.raw]
type = "otlp"
protocol = "http/protobuf"
endpoint = "http://127.0.0.1:{sink_http}"
batch = {{ max_age = "50ms" }}
headers = {{ "x-pipeline" = "raw" }}
"""
    cfg = agent_config(tmp_path / "data", sink_http, processors, ["tag"], headers={"x-pipeline": "processed"}, extra_exporters=raw)
    agent, addr = start_agent(run_agent, cfg)

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"http://{addr['http']}/v1/metrics", timeout=10), export_interval_millis=600_000
    )
    provider = MeterProvider(resource=Resource({"service.name": "api"}), metric_readers=[reader])
    meter = provider.get_meter("sonde.e2e")
    requests = meter.create_counter("http.requests")
    requests.add(5, {"route": "/health"})
    requests.add(3, {"route": "/orders"})
    meter.create_counter("go.gc.count").add(1)
    meter.create_counter("only.health").add(2, {"route": "/health"})
    meter.create_up_down_counter("queue.depth").add(4)
    provider.shutdown()  # one collection, exported once

    def settled():
        m = metrics(agent)
        return (
            metric(m, "sonde_exporter_sent_items_total", exporter="raw") == 5
            and metric(m, "sonde_exporter_sent_items_total", exporter="sink") == 2
        ) and m

    m = poll(settled, 15, "both exporters to send what they take")

    # The exporter without `inputs` takes from the source directly: untouched.
    got = sink_points(out, "raw")
    assert sorted(got) == ["go.gc.count", "http.requests", "only.health", "queue.depth"]
    assert all("pipeline" not in r for pts in got.values() for r, _, _ in pts)
    # Through the chain: a metric dropped whole, a data point dropped, a metric left without
    # points removed, and what is left tagged by the next processor.
    got = sink_points(out, "processed")
    assert got == {
        "http.requests": [({"service.name": "api", "pipeline": "processed"}, {"route": "/orders"}, 3)],
        "queue.depth": [({"service.name": "api", "pipeline": "processed"}, {}, 4)],
    }, got
    assert metric(m, "sonde_processor_items_total", processor="drop_metrics", signal="metrics") == 5
    assert metric(m, "sonde_processor_dropped_items_total", processor="drop_metrics", reason="filtered") == 3
    assert metric(m, "sonde_processor_modified_items_total", processor="drop_metrics") == 1
    assert metric(m, "sonde_processor_items_total", processor="tag", signal="metrics") == 2
    assert agent.stop() == 0, agent.stderr_tail()


# ---------------------------------------------------------------------------------------------
# redact

REDACT = """
[processors.{name}]
type = "redact"
inputs = ["apps"]
patterns = ["email", "credit_card", 'Bearer [A-Za-z0-9._~+/-]+=*']
keys = ["user.password", "user.pin"]
bodies = true
{action}
"""

HASH_ACTION = f'action = "hash"\nhash_key = "{HASH_KEY}"'


def redact_agent(run_agent, tmp_path, sink_http, name, with_mask):
    procs = REDACT.format(name="hashed", action=HASH_ACTION)
    extra = ""
    if with_mask:
        procs += REDACT.format(name="masked", action="")
        extra = f"""
[exporters.sink_masked]
type = "otlp"
protocol = "http/protobuf"
endpoint = "http://127.0.0.1:{sink_http}"
inputs = ["masked"]
batch = {{ max_age = "50ms" }}
headers = {{ "x-pipeline" = "masked" }}
"""
    cfg = agent_config(tmp_path / name, sink_http, procs, ["hashed"], headers={"x-pipeline": f"hashed-{name}"}, extra_exporters=extra)
    return start_agent(run_agent, cfg)


SECRETS = [
    # (attribute, value) sent on every span
    ("contact", "write to Alice.Smith@Example.COM today"),
    ("payment", "card 4111 1111 1111 1111 charged"),
    ("payment_dashed", "card 4111-1111-1111-1111 charged"),
    ("order", "order 4111111111111112 shipped"),  # 16 digits, fails Luhn: not a card
    ("auth", "Bearer eyJhbGciOi.abc-def_ghi=="),
    ("user.password", "hunter2"),
    ("user.pin", 1234),  # not a string, under `keys`: redacted all the same
    ("plain", "nothing to see"),
]
BODY = "login by bob@example.org with Bearer tok_123 and card 5500 0000 0000 0004"


def expected_hash(matched, kind=None):
    if kind == "card":
        matched = "".join(c for c in matched if c.isdigit())
    elif kind == "email":
        matched = matched.lower()
    return hmac.new(HASH_KEY.encode(), matched.encode(), hashlib.sha256).hexdigest()[:24]


def send_redact_data(addr):
    provider, tracer = sdk_tracer(addr["http"], {"service.name": "shop"})
    for i in range(3):
        with tracer.start_as_current_span(f"pay-{i}") as s:
            for k, v in SECRETS:
                s.set_attribute(k, v)
    flush(provider)
    provider.shutdown()
    lp, logger = sdk_logger(addr["http"], {"service.name": "shop"})
    log(logger, SeverityNumber.WARN, BODY)
    flush(lp)
    lp.shutdown()


def test_redact_masks_and_hashes_and_the_hash_is_the_same_on_two_agents(run_agent, peers, tmp_path):  # noqa: F811
    _, sink_http, out = start_sink(peers, tmp_path)
    a, addr_a = redact_agent(run_agent, tmp_path, sink_http, "a", with_mask=True)
    b, addr_b = redact_agent(run_agent, tmp_path, sink_http, "b", with_mask=False)
    send_redact_data(addr_a)
    send_redact_data(addr_b)

    def arrived():
        return all(
            len(sink_spans(out, p)) >= 3 and len(sink_logs(out, p)) >= 1 for p in ("masked", "hashed-a", "hashed-b")
        )

    poll(arrived, 20, "the redacted spans and logs of both agents")

    # mask
    spans = sink_spans(out, "masked")
    assert len(spans) == 3
    for _, s in spans:
        assert attrs(s.attributes) == {
            "contact": "write to **** today",
            "payment": "card **** charged",
            "payment_dashed": "card **** charged",
            "order": "order 4111111111111112 shipped",
            "auth": "****",
            "user.password": "****",
            "user.pin": "****",
            "plain": "nothing to see",
        }
    (_, log), = sink_logs(out, "masked")
    assert log.body.string_value == "login by **** with **** and card ****"

    # hash: the documented HMAC-SHA-256, normalized for cards and e-mail addresses
    card = expected_hash("4111 1111 1111 1111", "card")
    want = {
        "contact": f"write to {expected_hash('Alice.Smith@Example.COM', 'email')} today",
        "payment": f"card {card} charged",
        "payment_dashed": f"card {card} charged",  # the same card, grouped differently: joins
        "order": "order 4111111111111112 shipped",
        "auth": expected_hash("Bearer eyJhbGciOi.abc-def_ghi=="),
        "user.password": expected_hash("hunter2"),
        "user.pin": expected_hash("1234"),  # the hash of its text form
        "plain": "nothing to see",
    }
    assert expected_hash("alice.smith@example.com", "email") == expected_hash("Alice.Smith@Example.COM", "email")
    want_body = (
        f"login by {expected_hash('bob@example.org', 'email')} with {expected_hash('Bearer tok_123')} "
        f"and card {expected_hash('5500000000000004', 'card')}"
    )
    for p in ("hashed-a", "hashed-b"):
        spans = sink_spans(out, p)
        assert len(spans) == 3, p
        for _, s in spans:
            assert attrs(s.attributes) == want, p
        (_, log), = sink_logs(out, p)
        assert log.body.string_value == want_body, p

    # Counted per pattern (3 spans: 1 e-mail, 2 cards, 1 token, 2 keys each; the body: one each).
    m = metrics(a)
    for pattern, n in [("email", 4), ("credit_card", 7), ("regex_2", 4), ("key", 6)]:
        assert metric(m, "sonde_processor_redactions_total", processor="masked", pattern=pattern) == n, pattern
        assert metric(m, "sonde_processor_redactions_total", processor="hashed", pattern=pattern) == n, pattern
    assert metric(m, "sonde_processor_modified_items_total", processor="masked") == 4
    assert a.stop() == 0, a.stderr_tail()
    assert b.stop() == 0, b.stderr_tail()


# ---------------------------------------------------------------------------------------------
# sample

SAMPLE = """
[processors.sampled]
type = "sample"
inputs = ["apps"]
percentage = 10
"""

TRACES = 100_000
PER_REQUEST = 5_000
LOGS_WITH_TRACE = 5_000
LOGS_WITHOUT_TRACE = 2_000


def trace_ids(n, seed):
    rng = random.Random(seed)
    return [rng.randbytes(16) for _ in range(n)]


def trace_requests(ids):
    """Encoded ExportTraceServiceRequests of one span per trace id, PER_REQUEST spans each."""
    out = []
    t0 = 1_700_000_000_000_000_000
    for start in range(0, len(ids), PER_REQUEST):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value="load"))
        ss = rs.scope_spans.add()
        ss.scope.name = "sonde.e2e"
        spans = ss.spans
        for i, tid in enumerate(ids[start : start + PER_REQUEST]):
            spans.add(
                trace_id=tid,
                span_id=(start + i + 1).to_bytes(8, "big"),
                name="op",
                kind=trace_pb2.Span.SPAN_KIND_SERVER,
                start_time_unix_nano=t0 + i,
                end_time_unix_nano=t0 + i + 1000,
                flags=0x3,  # W3C sampled | random
            )
        out.append(req.SerializeToString())
    return out


def threshold_of(trace_state):
    """The `th` of the `ot` entry as a 56-bit rejection threshold."""
    for member in trace_state.split(","):
        k, _, v = member.strip().partition("=")
        if k == "ot":
            for sub in v.split(";"):
                sk, _, sv = sub.partition(":")
                if sk == "th":
                    return int(sv.ljust(14, "0"), 16)
    raise AssertionError(f"no ot=th in {trace_state!r}")


def randomness(tid: bytes) -> int:
    return int.from_bytes(tid[9:16], "big")


def test_sample_keeps_ten_percent_consistently_on_two_agents(run_agent, peers, tmp_path):  # noqa: F811
    _, sink_http, out = start_sink(peers, tmp_path)
    a, addr_a = start_agent(
        run_agent, agent_config(tmp_path / "a", sink_http, SAMPLE, ["sampled"], headers={"x-pipeline": "a"})
    )
    b, addr_b = start_agent(
        run_agent, agent_config(tmp_path / "b", sink_http, SAMPLE, ["sampled"], headers={"x-pipeline": "b"})
    )
    ids = trace_ids(TRACES, seed=1)
    bodies = trace_requests(ids)
    for body in bodies:
        post(addr_a["http"], "/v1/traces", body)
        post(addr_b["http"], "/v1/traces", body)

    # Part of the traffic from the SDK itself (its own random trace ids and span flags).
    sdk_ids = []
    provider, tracer = sdk_tracer(addr_a["http"], {"service.name": "sdk-app"})
    for i in range(2000):
        with tracer.start_as_current_span("sdk-op") as s:
            sdk_ids.append(s.get_span_context().trace_id.to_bytes(16, "big"))
    flush(provider)
    provider.shutdown()

    # Log records: with a trace id, the decision of the trace's spans; without, a random draw.
    logs = ExportLogsServiceRequest()
    sl = logs.resource_logs.add().scope_logs.add()
    for i, tid in enumerate(ids[:LOGS_WITH_TRACE]):
        sl.log_records.add(trace_id=tid, span_id=(i + 1).to_bytes(8, "big"), body=common_pb2.AnyValue(string_value="traced"))
    for _ in range(LOGS_WITHOUT_TRACE):
        sl.log_records.add(body=common_pb2.AnyValue(string_value="untraced"))
    post(addr_a["http"], "/v1/logs", logs.SerializeToString())

    def settled(agent, n):
        m = metrics(agent)
        return metric(m, "sonde_processor_items_total", processor="sampled") == n and (
            metric(m, "sonde_exporter_sent_items_total", exporter="sink")
            == n - metric(m, "sonde_processor_dropped_items_total", processor="sampled", reason="sampled")
        )

    poll(
        lambda: settled(a, TRACES + 2000 + LOGS_WITH_TRACE + LOGS_WITHOUT_TRACE) and settled(b, TRACES),
        25,
        "both agents to sample and export everything",
    )

    kept_a = {s.trace_id: s for _, s in sink_spans(out, "a")}
    kept_b = {s.trace_id: s for _, s in sink_spans(out, "b")}
    load_a = {t for t in kept_a if kept_a[t].name == "op"}
    sdk_a = {t for t in kept_a if kept_a[t].name == "sdk-op"}

    # Identical decisions for the same trace ids on two agents.
    assert load_a == set(kept_b), f"{len(load_a ^ set(kept_b))} decisions differ"

    # Every kept span carries the threshold it was sampled at, and the decision is the one the
    # specification implies: keep exactly when the trace id's randomness reaches the threshold.
    states = {s.trace_state for s in kept_a.values()}
    assert len(states) == 1, states
    th = threshold_of(states.pop())
    probability = 1 - th / 2**56
    assert abs(probability - 0.10) < 0.001, probability
    assert load_a == {t for t in ids if randomness(t) >= th}
    assert sdk_a == {t for t in sdk_ids if randomness(t) >= th}

    # The kept share is binomial: within 5 standard deviations of the mean.
    def within_bounds(k, n):
        sd = math.sqrt(n * probability * (1 - probability))
        return abs(k - n * probability) < 5 * sd

    assert within_bounds(len(load_a), TRACES), len(load_a)

    kept_logs = [l for _, l in sink_logs(out, "a")]
    traced = {l.trace_id for l in kept_logs if l.body.string_value == "traced"}
    assert traced == {t for t in ids[:LOGS_WITH_TRACE] if randomness(t) >= th}
    assert traced <= load_a  # a trace's records go where its spans go
    untraced = sum(1 for l in kept_logs if l.body.string_value == "untraced")
    assert within_bounds(untraced, LOGS_WITHOUT_TRACE), untraced

    m = metrics(a)
    assert metric(m, "sonde_processor_dropped_items_total", processor="sampled", reason="sampled") == (
        TRACES + 2000 + LOGS_WITH_TRACE + LOGS_WITHOUT_TRACE - len(kept_a) - len(kept_logs)
    )
    assert metric(m, "sonde_processor_modified_items_total", processor="sampled") == len(kept_a)
    assert metric(m, "sonde_processor_sampling_anomalies_total", processor="sampled", reason="missing_randomness") == 0
    assert a.stop() == 0, a.stderr_tail()
    assert b.stop() == 0, b.stderr_tail()


# ---------------------------------------------------------------------------------------------
# a file source whose every record is filtered out


FILE_CONFIG = """
[agent]
data_dir = "{data}"
shutdown_timeout = "5s"

[sources.logs]
type = "file"
include = ["{logs}/*.log"]
start_at = "beginning"
scan_interval = "100ms"
poll_interval = "20ms"
checkpoint_interval = "100ms"

{processor}

[exporters.out]
type = "stdout"
format = "json"
inputs = ["{input}"]
batch = {{ max_age = "50ms" }}
"""

DROP_ALL = """
[processors.drop_all]
type = "filter"
inputs = ["logs"]
log_records = ["true"]
"""


def checkpoint_offsets(data):
    path = data / "file" / "logs" / "checkpoints.json"
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        return []
    found = []

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "offset" and isinstance(x, int):
                    found.append(x)
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(doc)
    return found


def stdout_bodies(lines):
    out = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        for rl in doc.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                out.extend(r["body"]["stringValue"] for r in sl.get("logRecords", []))
    return out


def test_file_source_behind_a_filter_dropping_everything_still_advances_its_checkpoint(run_agent, tmp_path):
    logs, data = tmp_path / "logs", tmp_path / "data"
    logs.mkdir()
    lines = "".join(f"line {i} {'x' * 40}\n" for i in range(2000))
    (logs / "app.log").write_text(lines)
    size = len(lines.encode())

    agent = run_agent(FILE_CONFIG.format(data=data, logs=logs, processor=DROP_ALL, input="drop_all"))
    # Every line read and dropped, and the checkpoint at the end of the file.
    poll(lambda: size in checkpoint_offsets(data), 20, f"the checkpoint to reach {size}")
    m = metrics(agent)
    assert metric(m, "sonde_processor_dropped_items_total", processor="drop_all", reason="filtered") == 2000
    assert metric(m, "sonde_exporter_sent_items_total", exporter="out") == 0
    assert agent.stop() == 0, agent.stderr_tail()
    assert stdout_bodies(agent.rest_of_stdout(1)) == []
    assert checkpoint_offsets(data) == [size]

    # Restarted without the filter: nothing is read again, only what is appended now.
    with open(logs / "app.log", "a") as f:
        f.write("after restart\n")
    agent = run_agent(FILE_CONFIG.format(data=data, logs=logs, processor="", input="logs"))
    # A re-read would start at the file's first line: the first record out must be the new one.
    got = []
    for line in agent.lines(15):
        got.extend(stdout_bodies([line]))
        if got:
            break
    assert agent.stop() == 0, agent.stderr_tail()
    got.extend(stdout_bodies(agent.rest_of_stdout(1)))
    assert got == ["after restart"]


# ---------------------------------------------------------------------------------------------
# reload


def test_a_reload_applies_new_conditions_and_the_processor_counters_carry_on(run_agent, peers, tmp_path):  # noqa: F811
    _, sink_http, out = start_sink(peers, tmp_path)
    port = free_port()

    def cfg(route):
        processors = f"""
[processors.drop_noise]
type = "filter"
inputs = ["apps"]
spans = ['attributes["http.route"] == "{route}"']
"""
        return agent_config(tmp_path / "data", sink_http, processors, ["drop_noise"]).replace(
            'http = "127.0.0.1:0"', f'http = "127.0.0.1:{port}"'
        )

    agent, addr = start_agent(run_agent, cfg("/health"))

    def send(tag):
        provider, tracer = sdk_tracer(addr["http"], {"service.name": "web"})
        for route in ("/health", "/orders"):
            for i in range(3):
                with tracer.start_as_current_span(f"{tag} {route}") as s:
                    s.set_attribute("http.route", route)
        flush(provider)
        provider.shutdown()

    def names():
        return sorted(s.name for _, s in sink_spans(out))

    send("before")
    poll(lambda: len(names()) >= 3, 15, "the spans sent before the reload")
    (tmp_path / "sonde-0.toml").write_text(cfg("/orders"))
    agent.proc.send_signal(signal.SIGHUP)
    assert agent.wait_stderr("configuration reloaded", timeout=20), agent.stderr_tail()
    send("after")
    poll(lambda: len(names()) >= 6, 15, "the spans sent after the reload")
    m = poll(
        lambda: (m := metrics(agent))
        and metric(m, "sonde_processor_items_total", processor="drop_noise", signal="traces") == 12
        and m,
        10,
        "the counters to reach 12 items",
    )
    assert names() == ["after /health"] * 3 + ["before /orders"] * 3
    assert metric(m, "sonde_processor_dropped_items_total", processor="drop_noise", reason="filtered") == 6
    # One series per name and labels, not one per generation of the processor.
    text = urllib.request.urlopen(agent.admin_url() + "/metrics", timeout=5).read().decode()
    series = [l.split(" ")[0] for l in text.splitlines() if l.startswith("sonde_processor_items_total{")]
    assert len(series) == len(set(series)), series
    assert agent.stop() == 0, agent.stderr_tail()
