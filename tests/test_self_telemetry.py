"""The agent's own traces and logs over OTLP/HTTP (agent.telemetry), received by a small OTLP/HTTP
server in the test and decoded with the official protobuf types."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class Sink(BaseHTTPRequestHandler):
    received = {"/v1/traces": [], "/v1/logs": []}

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        kind = {"/v1/traces": ExportTraceServiceRequest, "/v1/logs": ExportLogsServiceRequest}.get(self.path)
        if kind is None:
            self.send_response(404)
            self.end_headers()
            return
        msg = kind()
        msg.ParseFromString(body)
        self.received[self.path].append(msg)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_own_spans_and_logs_reach_an_otlp_receiver(run_agent, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        agent = run_agent(
            f"""
[agent]
data_dir = "{tmp_path}"
telemetry = {{ endpoint = "http://127.0.0.1:{port}", timeout = "2s" }}
[sources.host]
type = "host_metrics"
interval = "200ms"
[exporters.out]
type = "stdout"
format = "text"
batch = {{ max_age = "20ms" }}
"""
        )
        list(agent.lines(timeout=2))
        assert agent.stop() == 0  # shutdown flushes the SDK's batches
        spans = [s for r in Sink.received["/v1/traces"] for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
        exports = [s for s in spans if s.name == "export"]
        assert exports, f"no export spans among {[s.name for s in spans]}"
        attrs = {a.key: a.value for a in exports[0].attributes}
        assert attrs["exporter"].string_value == "out" and attrs["signal"].string_value == "metrics"
        assert len(exports[0].trace_id) == 16
        res = {a.key: a.value.string_value for a in Sink.received["/v1/traces"][0].resource_spans[0].resource.attributes}
        assert res["service.name"] == "sonde"
        bodies = [l.body.string_value for r in Sink.received["/v1/logs"] for rl in r.resource_logs
                  for sl in rl.scope_logs for l in sl.log_records]
        assert "sonde started" in bodies, bodies[:10]
    finally:
        server.shutdown()
