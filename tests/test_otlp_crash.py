"""Acknowledged means delivered, across `kill -9`, through the whole binary.

Apps send OTLP/HTTP log records to Sonde's receiver (every request carries unique ids); Sonde
keeps them in a disk buffer (`fsync = "batch"`: a client is answered only once its records are
on disk) and exports them over OTLP to a sink built from PyPI parts (tests/otlp_sink.py:
grpcio + opentelemetry-proto) that is down for the whole crash phase. The agent is SIGKILLed at
random points under load and started again each time; then the sink comes up, and the agent is
killed once more while its backlog drains, and twice more under load right after it has started
a segment in a reused file (an exported segment's, kept as `spare`). Every id whose
request was answered 200 must arrive at the sink; duplicates are allowed (at least once) and
reported.

Also: traces and metrics from the OpenTelemetry SDK pass through receiver -> OTLP exporter ->
sink unchanged (the exporter sends the bytes as they came)."""

import base64
import http.client
import json
import random
import signal
import threading
import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from conftest import Agent, free_port, poll
from test_otlp_exporter import peers, start_sink  # noqa: F401

CONFIG = """
[agent]
data_dir = "{data}"
shutdown_timeout = "2s"

[sources.apps]
type = "otlp"
grpc = "off"
http = "127.0.0.1:{port}"
block_timeout = "500ms"

[exporters.upstream]
type = "otlp"
protocol = "http/protobuf"
endpoint = "http://127.0.0.1:{sink_http}"
timeout = "2s"
retry = {{ initial_backoff = "100ms", max_backoff = "500ms", max_elapsed = "unlimited" }}
buffer = {{ type = "disk", max_size = "1MiB", fsync = "batch", compression = "zstd" }}
batch = {{ max_age = "50ms", max_bytes = "256KiB" }}
"""


def wait_listening(agent):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if any("OTLP/" in l and "listening" in l for l in agent.stderr_lines):
            return
        assert agent.proc.poll() is None, agent.stderr_tail()
        time.sleep(0.05)
    raise AssertionError(f"the OTLP receiver never listened: {agent.stderr_tail()}")


def logs_request(first_id: int, n: int) -> bytes:
    records = [
        {
            "timeUnixNano": str(1_700_000_000_000_000_000 + i),
            "severityNumber": 9,
            "body": {"stringValue": f"id-{i}"},
            "attributes": [{"key": "seq", "value": {"intValue": str(i)}}],
        }
        for i in range(first_id, first_id + n)
    ]
    return json.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "crash-test"}}]},
                    "scopeLogs": [{"scope": {"name": "t"}, "logRecords": records}],
                }
            ]
        }
    ).encode()


class Sender(threading.Thread):
    """Posts requests of `per_request` records with consecutive ids as fast as they are answered;
    remembers the ids of every request answered 200. Connection errors (the agent is being
    killed or is starting) are retried with the next ids after a short pause."""

    def __init__(self, port: int, per_request: int = 50, first_id: int = 0):
        super().__init__(daemon=True)
        self.port = port
        self.per_request = per_request
        self.next_id = first_id
        self.acked: set[int] = set()
        self.refused = 0
        self.errors = 0
        self.stop = threading.Event()

    def run(self):
        conn = None
        while not self.stop.is_set():
            first = self.next_id
            self.next_id += self.per_request
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("POST", "/v1/logs", logs_request(first, self.per_request), {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    self.acked.update(range(first, first + self.per_request))
                else:
                    self.refused += 1
                    time.sleep(0.05)
            except (OSError, http.client.HTTPException):
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)


def records(out):
    """The sink's records so far (a line still being written is left for the next look)."""
    if not out.exists():
        return []
    recs = []
    for line in out.read_text().splitlines():
        try:
            recs.append(json.loads(line))
        except ValueError:
            pass
    return recs


def delivered_ids(out):
    ids = []
    for rec in records(out):
        if rec["signal"] != "logs":
            continue
        req = ExportLogsServiceRequest()
        req.ParseFromString(base64.b64decode(rec["body"]))
        for rl in req.resource_logs:
            for sl in rl.scope_logs:
                ids.extend(int(r.body.string_value.removeprefix("id-")) for r in sl.log_records)
    return ids


def test_every_acknowledged_record_survives_kill_9_and_an_outage(peers, tmp_path):  # noqa: F811
    port, sink_grpc, sink_http = free_port(), free_port(), free_port()
    data = tmp_path / "data"
    cfg = tmp_path / "sonde.toml"
    cfg.write_text(CONFIG.format(data=data, port=port, sink_http=sink_http))

    agents = []

    def start():
        agent = Agent(["run", "--config", str(cfg)])
        agents.append(agent)
        wait_listening(agent)
        return agent

    rng = random.Random(7)
    agent = start()
    sender = Sender(port)
    sender.start()
    kills = 0
    try:
        # The sink is down: everything acknowledged is on disk only. Kill at random points.
        for _ in range(4):
            time.sleep(rng.uniform(0.8, 2.0))
            assert agent.proc.poll() is None, agent.stderr_tail()
            agent.proc.send_signal(signal.SIGKILL)
            agent.proc.wait(timeout=5)
            kills += 1
            agent = start()
        time.sleep(1.0)
    finally:
        sender.stop.set()
        sender.join(timeout=10)
    acked = sender.acked
    assert len(acked) >= 1000, f"only {len(acked)} records acknowledged (errors {sender.errors}, refused {sender.refused})"

    # Bring the destination up: the backlog drains by itself (retries never give up).
    _, _, out = start_sink(peers, tmp_path, grpc=sink_grpc, http=sink_http)
    # One more kill while the backlog drains: what was exported but not yet past the persisted
    # cursor is sent again (duplicates), nothing is lost.
    poll(lambda: len(delivered_ids(out)) > 0, 30, "the drain to begin")
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait(timeout=5)
    kills += 1
    agent = start()

    # Under load with the sink up, exported segment files are reused (128 KiB segments). Kill
    # twice just after the writer has started a segment in the spare file: the file's old
    # content lies past the new data, and must not come back as records.
    spool = data / "buffers" / "upstream"
    spare = spool / "spare"
    sender = Sender(port, first_id=sender.next_id + 1_000_000)
    sender.start()
    reuse_kills = 0

    def inode(p):
        try:
            return p.stat().st_ino
        except FileNotFoundError:
            return None

    try:
        for _ in range(4):
            poll(lambda: inode(spare) is not None, 30, "an exported segment kept for reuse")
            ino = inode(spare)
            poll(lambda: inode(spare) is None, 30, "the spare file to be taken")
            time.sleep(rng.uniform(0.05, 0.5))
            # Taken by the writer as its new segment (rather than deleted for lack of room)?
            reused = any(inode(s) == ino for s in spool.glob("*.seg"))
            assert agent.proc.poll() is None, agent.stderr_tail()
            agent.proc.send_signal(signal.SIGKILL)
            agent.proc.wait(timeout=5)
            kills += 1
            reuse_kills += reused
            agent = start()
            if reuse_kills == 2:
                break
        time.sleep(0.5)
    finally:
        sender.stop.set()
        sender.join(timeout=10)
    acked |= sender.acked
    assert reuse_kills >= 1, "no kill landed in a reused segment file"
    poll(lambda: acked <= set(delivered_ids(out)), 90, f"{len(acked)} acknowledged records at the sink")
    ids = delivered_ids(out)
    dups = len(ids) - len(set(ids))
    print(
        f"\ncrash test: {kills} SIGKILLs ({reuse_kills} in reused segment files), {len(acked)} records acknowledged, {len(set(ids))} delivered "
        f"({len(set(ids) - acked)} unacknowledged ones too), {dups} duplicates"
    )
    assert agent.stop() == 0, agent.stderr_tail()
    # Kills tear at most the record being written (cut at start-up); a reused file's old content
    # is cut too, never read as damaged data.
    damaged = [l for a in agents for l in a.stderr_lines if "damaged spool data skipped" in l]
    assert not damaged, damaged[:3]
    # Delivered segments are deleted once the cursor has passed them.
    poll(lambda: len(list(spool.glob("*.seg"))) <= 1, 10, "the delivered segments to be deleted")


SDK_CONFIG = """
[agent]
data_dir = "{data}"

[sources.apps]
type = "otlp"
grpc = "127.0.0.1:{grpc}"
http = "off"

[exporters.upstream]
type = "otlp"
protocol = "grpc"
endpoint = "http://127.0.0.1:{sink_grpc}"
compression = "gzip"
batch = {{ max_age = "50ms" }}
"""


def test_sdk_traces_and_metrics_pass_through_to_an_otlp_sink_unchanged(peers, tmp_path):  # noqa: F811
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    sink_grpc, sink_http, out = start_sink(peers, tmp_path)
    grpc = free_port()
    cfg = tmp_path / "sonde.toml"
    cfg.write_text(SDK_CONFIG.format(data=tmp_path / "data", grpc=grpc, sink_grpc=sink_grpc))
    agent = Agent(["run", "--config", str(cfg)])
    try:
        wait_listening(agent)
        resource = Resource.create({"service.name": "pass-through"})
        tp = TracerProvider(resource=resource)
        tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc}", insecure=True)))
        tracer = tp.get_tracer("t")
        sent = {}
        for i in range(20):
            with tracer.start_as_current_span(f"op-{i}", attributes={"i": i, "route": f"/r/{i}"}) as s:
                ctx = s.get_span_context()
                sent[f"op-{i}"] = (ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big"))
        tp.shutdown()
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"127.0.0.1:{grpc}", insecure=True), export_interval_millis=60_000
        )
        mp = MeterProvider(resource=resource, metric_readers=[reader])
        counter = mp.get_meter("m").create_counter("requests", unit="1")
        counter.add(5, {"route": "/a"})
        counter.add(7, {"route": "/b"})
        mp.shutdown()

        def got():
            spans, points = {}, {}
            for rec in records(out):
                body = base64.b64decode(rec["body"])
                if rec["signal"] == "traces":
                    req = ExportTraceServiceRequest()
                    req.ParseFromString(body)
                    for rs in req.resource_spans:
                        svc = {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"]
                        for ss in rs.scope_spans:
                            for s in ss.spans:
                                attrs = {a.key: a.value for a in s.attributes}
                                spans[s.name] = (s.trace_id, s.span_id, attrs["i"].int_value, attrs["route"].string_value, svc)
                elif rec["signal"] == "metrics":
                    req = ExportMetricsServiceRequest()
                    req.ParseFromString(body)
                    for rm in req.resource_metrics:
                        for sm in rm.scope_metrics:
                            for m in sm.metrics:
                                for p in m.sum.data_points:
                                    route = {a.key: a.value.string_value for a in p.attributes}["route"]
                                    points[(m.name, route)] = p.as_int
            return (spans, points) if len(spans) == 20 and len(points) == 2 else None

        spans, points = poll(got, 30, "20 spans and 2 metric points at the sink")
        for i in range(20):
            trace_id, span_id, attr_i, route, svc = spans[f"op-{i}"]
            assert (trace_id, span_id) == sent[f"op-{i}"]
            assert (attr_i, route, svc) == (i, f"/r/{i}", "pass-through")
        assert points == {("requests", "/a"): 5, ("requests", "/b"): 7}
        assert agent.stop() == 0, agent.stderr_tail()
    finally:
        agent.kill()
