"""Fan-out with a dead destination: one OTLP source feeds two exporters, one of whose
destinations is down for the whole run. The healthy one must keep receiving everything at the
rate it is sent; the dead one's buffer fills, and from then on its share is shed and counted
(`reason="exporter_failing"`) instead of holding the source back. Clients are never refused."""

import http.client
import time

from conftest import free_port, poll
from test_admin import scrape, total
from test_otlp_crash import delivered_ids, logs_request
from test_otlp_exporter import peers, start_sink  # noqa: F401

CONFIG = """
[agent]
data_dir = "{tmp}"
shutdown_timeout = "3s"

[sources.apps]
type = "otlp"
grpc = "off"
http = "127.0.0.1:{port}"

[exporters.healthy]
type = "otlp"
protocol = "http/protobuf"
endpoint = "http://127.0.0.1:{sink_http}"
batch = {{ max_age = "50ms" }}

[exporters.dead]
type = "otlp"
protocol = "http/protobuf"
endpoint = "http://127.0.0.1:{dead}"
batch = {{ max_age = "50ms", max_bytes = "64KiB" }}
buffer = {{ max_size = "256KiB" }}
"""


def test_a_dead_destination_does_not_hold_back_the_healthy_one(run_agent, peers, tmp_path):  # noqa: F811
    _, sink_http, out = start_sink(peers, tmp_path)
    port = free_port()
    agent = run_agent(CONFIG.format(tmp=tmp_path, port=port, sink_http=sink_http, dead=free_port()))
    url = agent.admin_url()
    poll(lambda: any("OTLP/" in l and "listening" in l for l in agent.stderr_lines), 15, "the receiver")

    # 8 s of steady load, 50 records a request, every request timed.
    per_request, sent, slowest = 50, 0, 0.0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        conn.request("POST", "/v1/logs", logs_request(sent, per_request), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, f"request {sent // per_request} refused: {resp.status}"
        slowest = max(slowest, time.monotonic() - t0)
        sent += per_request
    conn.close()

    poll(lambda: len(delivered_ids(out)) >= sent, 30, f"{sent} records at the healthy sink")
    assert sorted(delivered_ids(out)) == list(range(sent))
    # Never held back for long: the default block_timeout (5 s) was never reached.
    assert slowest < 2.0, f"a request waited {slowest:.2f} s"

    samples = scrape(url)
    shed = total(samples, "sonde_buffer_dropped_items_total", exporter="dead", reason="exporter_failing")
    held = total(samples, "sonde_buffer_items", exporter="dead")
    assert shed > 0, "the dead exporter's buffer never shed"
    # Everything sent is either held by the dead exporter's buffer, shed, or was given up by it.
    given_up = total(samples, "sonde_exporter_dropped_items_total", exporter="dead")
    assert held + shed + given_up == sent, (held, shed, given_up, sent)
    assert total(samples, "sonde_buffer_dropped_items_total", exporter="healthy") == 0
    assert total(samples, "sonde_source_refused_requests_total", source="apps") == 0
    assert agent.stop() == 0, agent.stderr_tail()
