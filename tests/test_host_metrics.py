"""Host metrics end to end: the built binary scrapes at 1 s and prints OTLP/JSON on stdout; the
output is parsed by the official OpenTelemetry protobuf JSON parser and checked for names, units,
attributes, resource and sane values."""

import signal

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

CONFIG = """
[agent]
data_dir = "{data_dir}"
shutdown_timeout = "5s"

[sources.host]
type = "host_metrics"
interval = "1s"
conventions = "{conventions}"

[exporters.out]
type = "stdout"
format = "json"
batch = {{ max_age = "50ms" }}
"""


def collect(run_agent, tmp_path, conventions, scrapes=3):
    """Runs the agent until it printed `scrapes` requests; returns them parsed by protobuf."""
    agent = run_agent(CONFIG.format(data_dir=tmp_path, conventions=conventions))
    requests = []
    for line in agent.lines(timeout=30):
        req = ExportMetricsServiceRequest()
        json_format.Parse(line, req)  # the official parser must take every line as is
        requests.append(req)
        if len(requests) >= scrapes:
            break
    assert agent.stop(signal.SIGTERM) == 0, agent.stderr_tail()
    assert len(requests) >= scrapes, f"only {len(requests)} scrapes; stderr: {agent.stderr_tail()}"
    return requests


def index(req):
    """name -> (metric, resource attributes dict)."""
    out = {}
    for rm in req.resource_metrics:
        res = {a.key: a.value for a in rm.resource.attributes}
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = (m, res)
    return out


def points(metric):
    kind = metric.WhichOneof("data")
    return list(getattr(metric, kind).data_points)


def attrs(point):
    return {a.key: a.value.string_value for a in point.attributes}


def value(point):
    return point.as_int if point.WhichOneof("value") == "as_int" else point.as_double


def test_semantic_convention_names_units_attributes_and_values(run_agent, tmp_path):
    reqs = collect(run_agent, tmp_path, "semconv")
    last = index(reqs[-1])

    expected = {
        "system.cpu.time": ("s", "sum", True),
        "system.cpu.utilization": ("1", "gauge", None),
        "system.memory.usage": ("By", "sum", False),
        "system.memory.utilization": ("1", "gauge", None),
        "system.cpu.load_average.1m": ("{thread}", "gauge", None),
        "system.filesystem.usage": ("By", "sum", False),
        "system.network.io": ("By", "sum", True),
        "system.network.packet.count": ("{packet}", "sum", True),
        "system.network.errors": ("{error}", "sum", True),
        "system.process.count": ("{process}", "sum", False),
        "system.uptime": ("s", "gauge", None),
        "system.paging.faults": ("{fault}", "sum", True),
    }
    for name, (unit, kind, monotonic) in expected.items():
        assert name in last, f"{name} missing; got {sorted(last)}"
        m, _ = last[name]
        assert m.unit == unit, f"{name}: unit {m.unit!r}, expected {unit!r}"
        assert m.WhichOneof("data") == kind, f"{name}: {m.WhichOneof('data')}"
        if kind == "sum":
            assert m.sum.is_monotonic == monotonic, name
            assert m.sum.aggregation_temporality == 2, f"{name} must be cumulative"

    # Attributes use the current semantic-convention keys.
    modes = {attrs(p)["cpu.mode"] for p in points(last["system.cpu.time"][0])}
    assert {"user", "system", "idle"} <= modes, modes
    states = {attrs(p)["system.memory.state"]: value(p) for p in points(last["system.memory.usage"][0])}
    assert states.get("used", 0) > 0 and states.get("free", 0) > 0, states
    for p in points(last["system.network.io"][0]):
        a = attrs(p)
        assert a["network.io.direction"] in ("transmit", "receive")
        assert a["network.interface.name"]
    for p in points(last["system.filesystem.usage"][0]):
        a = attrs(p)
        assert {"system.device", "system.filesystem.state", "system.filesystem.mountpoint"} <= set(a), a
        assert not a["system.filesystem.mountpoint"].startswith("/proc"), a

    # Values are sane.
    for name in ("system.cpu.utilization", "system.memory.utilization"):
        for p in points(last[name][0]):
            assert 0.0 <= value(p) <= 1.0, (name, value(p))
    assert value(points(last["system.uptime"][0])[0]) > 0

    # Cumulative sums keep their start time from one scrape to the next.
    first = index(reqs[0])
    s0 = points(first["system.cpu.time"][0])[0].start_time_unix_nano
    s1 = points(last["system.cpu.time"][0])[0].start_time_unix_nano
    assert s0 == s1 and s0 > 0

    # Resource describes the host.
    _, res = last["system.memory.usage"]
    assert res["host.name"].string_value
    assert res["os.type"].string_value == "linux"
    assert res["host.arch"].string_value in ("amd64", "arm64", "x86", "arm32", "ppc64", "s390x")


def test_collector_conventions_emit_the_hostmetrics_receiver_names(run_agent, tmp_path):
    reqs = collect(run_agent, tmp_path, "collector", scrapes=2)
    last = index(reqs[-1])
    for name in ("system.cpu.time", "system.memory.usage", "system.network.packets", "system.processes.count",
                 "system.filesystem.usage", "system.network.io"):
        assert name in last, f"{name} missing; got {sorted(last)}"
    assert {attrs(p)["state"] for p in points(last["system.cpu.time"][0])} >= {"user", "idle"}
    assert all("direction" in attrs(p) and "device" in attrs(p) for p in points(last["system.network.io"][0]))
    mem = {attrs(p)["state"] for p in points(last["system.memory.usage"][0])}
    assert "used" in mem and "free" in mem, mem
    assert "system.network.packet.count" not in last
