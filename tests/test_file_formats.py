"""File source formats end to end: the real binary tails files laid out and written as
containerd's CRI plugin and Docker's json-file driver write them on a Kubernetes node, and prints
OTLP/JSON on stdout. The tests assert on every record: body, time, stream, the pod's resource
attributes, and exact counts (nothing lost, nothing duplicated), including partial lines and a
kubelet rotation (`0.log` renamed to `0.log.<timestamp>`, the runtime reopening `0.log`).

Also logfmt and regex lines mapped to body, time, severity and attributes, and the lines that do
not parse kept as text and counted.
"""

import json
import os
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import Agent  # noqa: F401  (the fixture's type)
from test_file_source import wait_held

# containerd cuts a container's line into pieces of this many bytes (the CRI plugin's
# max_container_log_line_size default); Docker's json-file driver does the same at 16 KiB.
PIECE = 16 * 1024
T0 = datetime(2026, 12, 7, 10, 10, 10, tzinfo=timezone.utc)

CONFIG = """
[agent]
data_dir = "{data}"
shutdown_timeout = "5s"

[sources.pods]
type = "file"
include = ["{pods}/*/*/*.log"]
format = "cri"
start_at = "beginning"
scan_interval = "100ms"
poll_interval = "20ms"
rotate_wait = "1s"

[sources.docker]
type = "file"
include = ["{docker}/*/*/*.log"]
format = "docker"
start_at = "beginning"
scan_interval = "100ms"
poll_interval = "20ms"

{extra}

[exporters.out]
type = "stdout"
format = "json"
batch = {{ max_age = "50ms" }}
"""


def go_rfc3339nano(t: datetime, nanos: int = 0) -> str:
    """Time as Go's time.RFC3339Nano writes it (what containerd and Docker use): the fraction
    without trailing zeros, no dot when it is zero; `Z` for UTC, else `+hh:mm`."""
    frac = f"{nanos:09d}".rstrip("0")
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + frac
    off = t.utcoffset()
    if not off:
        return base + "Z"
    mins = int(off.total_seconds() // 60)
    sign = "+" if mins >= 0 else "-"
    mins = abs(mins)
    return f"{base}{sign}{mins // 60:02d}:{mins % 60:02d}"


def unix_nanos(t: datetime, nanos: int = 0) -> int:
    return int(t.timestamp()) * 1_000_000_000 + nanos


class CriContainer:
    """One container's log as containerd writes it: `<pods>/<ns>_<pod>_<uid>/<name>/<restart>.log`,
    lines `<time> <stream> <P|F> <text>`, lines longer than PIECE cut into P pieces and a last F."""

    def __init__(self, pods: Path, ns: str, pod: str, uid: str, name: str, restart: int = 0):
        self.dir = pods / f"{ns}_{pod}_{uid}" / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{restart}.log"
        self.attrs = {
            "k8s.namespace.name": ns,
            "k8s.pod.name": pod,
            "k8s.pod.uid": uid,
            "k8s.container.name": name,
            "k8s.container.restart_count": str(restart),  # OTLP/JSON writes ints as strings
        }
        self.expected = []  # (body, time ns, stream)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self.seq = 0

    def write(self, stream: str, text: str, t: datetime, nanos: int = 0):
        stamp = go_rfc3339nano(t, nanos)
        pieces = [text[i : i + PIECE] for i in range(0, len(text), PIECE)] or [""]
        out = []
        for i, p in enumerate(pieces):
            tag = "F" if i == len(pieces) - 1 else "P"
            out.append(f"{stamp} {stream} {tag} {p}\n")
        os.write(self.fd, "".join(out).encode())
        # The joined record has the first piece's time; empty lines are skipped.
        if text:
            self.expected.append((text, unix_nanos(t, nanos), stream))

    def write_raw(self, data: str):
        os.write(self.fd, data.encode())

    def rotate(self, suffix: str):
        """The kubelet's rotation: rename, then the runtime reopens the path (a new file)."""
        os.rename(self.path, self.path.with_name(self.path.name + "." + suffix))
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def close(self):
        os.close(self.fd)


def docker_lines(stream: str, text: str, t: datetime, nanos: int) -> str:
    """json-file lines for one line of output: 16 KiB pieces, only the last with its newline.
    Docker marshals with Go's encoding/json: `<`, `>` and `&` escaped as \\u003c etc."""
    stamp = go_rfc3339nano(t, nanos)
    pieces = [text[i : i + PIECE] for i in range(0, len(text), PIECE)] or [""]
    out = []
    for i, p in enumerate(pieces):
        log = p + ("\n" if i == len(pieces) - 1 else "")
        enc = json.dumps(log, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        out.append(f'{{"log":{enc},"stream":"{stream}","time":"{stamp}"}}\n')
    return "".join(out)


def value(v: dict):
    for k in ("stringValue", "intValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    return None


def parse_output(lines):
    """Every record of the agent's OTLP/JSON lines as a dict: body, time, attributes, and its
    resource's attributes."""
    out = []
    for line in lines:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        for rl in req.get("resourceLogs", []):
            res = {a["key"]: value(a["value"]) for a in rl.get("resource", {}).get("attributes", [])}
            for sl in rl.get("scopeLogs", []):
                for r in sl.get("logRecords", []):
                    out.append(
                        {
                            "body": value(r.get("body", {})),
                            "time": int(r.get("timeUnixNano", "0")),
                            "severity": r.get("severityNumber", 0),
                            "severity_text": r.get("severityText", ""),
                            "attrs": {a["key"]: value(a["value"]) for a in r.get("attributes", [])},
                            "resource": res,
                        }
                    )
    return out


def collect(agent, want: int, timeout: float, settle: float = 1.5):
    """Records until `want` arrived (or the deadline), then `settle` seconds more so that a
    duplicate or a stray record would be seen too."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(parse_output(lines)) < want:
        lines.extend(agent.lines(timeout=min(0.5, deadline - time.monotonic())))
    lines.extend(agent.lines(timeout=settle))
    return parse_output(lines)


def metric(agent, name: str, labels: dict) -> float:
    text = urllib.request.urlopen(agent.admin_url() + "/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_cri_and_docker_node_logs_with_partial_lines_rotation_and_pod_attributes(run_agent, tmp_path):
    pods = tmp_path / "var" / "log" / "pods"
    dpods = tmp_path / "docker" / "log" / "pods"
    pods.mkdir(parents=True)
    dpods.mkdir(parents=True)

    web = CriContainer(pods, "shop", "web-7d4b9c-x2k8p", "5f0c2d1e-1111-4a2b-9c3d-000000000001", "nginx")
    side = CriContainer(pods, "shop", "web-7d4b9c-x2k8p", "5f0c2d1e-1111-4a2b-9c3d-000000000001", "istio-proxy")
    db = CriContainer(pods, "data", "pg-0", "9a8b7c6d-2222-4e5f-8a9b-000000000002", "postgres", restart=2)
    containers = [web, side, db]

    # Before the agent starts: ordinary lines, both streams, a zone offset, an empty line, a
    # 40 000-byte line cut into P, P, F, and stdout pieces interleaved with a stderr line.
    for i in range(50):
        web.write("stdout", f'10.0.0.{i} - - "GET /item/{i} HTTP/1.1" 200 {i * 7}', T0 + timedelta(seconds=i), i * 1000 + 1)
    web.write("stderr", "2026/12/07 10:11:00 [warn] upstream slow", T0 + timedelta(minutes=1))
    web.write("stdout", "", T0 + timedelta(minutes=1))
    big = "".join(chr(ord("a") + i % 26) for i in range(40_000))
    web.write("stdout", big, T0 + timedelta(minutes=2), 123456789)
    tz = timezone(timedelta(hours=1))
    db.write("stderr", "LOG:  database system is ready to accept connections", datetime(2026, 12, 7, 11, 0, 0, tzinfo=tz), 5)
    stamp = go_rfc3339nano(T0 + timedelta(minutes=3))
    db.write_raw(f"{stamp} stdout P checkpoint starting: \n{stamp} stderr F an error in between\n{stamp} stdout F time\n")
    db.expected += [
        ("an error in between", unix_nanos(T0 + timedelta(minutes=3)), "stderr"),
        ("checkpoint starting: time", unix_nanos(T0 + timedelta(minutes=3)), "stdout"),
    ]
    side.write("stdout", "[Envoy (Epoch 0)] starting main dispatch loop", T0)

    # Docker's json-file lines, in the kubelet's layout (dockershim) for pod attributes.
    dock = dpods / "legacy_api-0_77777777-3333-4aaa-bbbb-000000000003" / "api"
    dock.mkdir(parents=True)
    dexpected = []
    with open(dock / "0.log", "w") as f:
        for i in range(20):
            text = f'{{"level":"info","msg":"req <{i}> & done"}}'
            f.write(docker_lines("stdout", text, T0, i))
            dexpected.append((text, unix_nanos(T0, i), "stdout"))
        f.write(docker_lines("stderr", "panic: tab\there \"quoted\" é", T0, 999))
        dexpected.append(("panic: tab\there \"quoted\" é", unix_nanos(T0, 999), "stderr"))
        big2 = "x" * 20_000 + "<end>"
        f.write(docker_lines("stdout", big2, T0, 1000))
        dexpected.append((big2, unix_nanos(T0, 1000), "stdout"))
        f.write(docker_lines("stdout", "", T0, 1001))

    agent = run_agent(CONFIG.format(data=tmp_path / "data", pods=pods, docker=dpods, extra=""))

    # While the agent reads: more lines, then the kubelet rotates nginx's 0.log and containerd
    # reopens it, more lines into the new file.
    wait_held(agent.proc.pid, web.path)
    for i in range(50, 300):
        web.write("stdout", f"line {i} before rotation", T0 + timedelta(seconds=i), 7)
    wait_held(agent.proc.pid, web.path)
    web.rotate("20261207-101010")
    for i in range(300, 600):
        web.write("stdout", f"line {i} after rotation", T0 + timedelta(seconds=i), 9)
    web.write("stdout", "y" * 17_000, T0 + timedelta(seconds=601))

    want = sum(len(c.expected) for c in containers) + len(dexpected)
    got = collect(agent, want, timeout=30)
    bad = metric(agent, "sonde_file_parse_errors_total", {"source": "pods", "reason": "cri"})
    assert agent.stop() == 0, agent.stderr_tail()
    for c in containers:
        c.close()

    assert len(got) == want, f"{len(got)} records, expected {want}"
    # Nothing lost or duplicated, per container, in order; body, time and stream exact.
    for c in containers:
        mine = [r for r in got if r["resource"].get("k8s.container.name") == c.attrs["k8s.container.name"]]
        seen = [(r["body"], r["time"], r["attrs"].get("log.iostream")) for r in mine]
        assert seen == c.expected, f"{c.path}: {[s[0][:40] for s in seen][:5]} …"
        for r in mine:
            for k, v in c.attrs.items():
                assert r["resource"].get(k) == v, (k, r["resource"])
            assert "host.name" in r["resource"]
            assert r["attrs"]["log.file.name"].startswith(c.path.name)
    mine = [r for r in got if r["resource"].get("k8s.container.name") == "api"]
    assert [(r["body"], r["time"], r["attrs"].get("log.iostream")) for r in mine] == dexpected
    assert mine[0]["resource"]["k8s.pod.name"] == "api-0"
    assert mine[0]["resource"]["k8s.namespace.name"] == "legacy"
    # The rotated file's lines kept their container, and were read under both names.
    names = {r["attrs"]["log.file.name"] for r in got if r["resource"].get("k8s.container.name") == "nginx"}
    assert names <= {"0.log", "0.log.20261207-101010"}, names
    assert bad == 0

    # Different pods, different resources: no ResourceLogs mixes two containers.
    for line in agent.stdout_lines:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        for rl in req.get("resourceLogs", []):
            conts = {a["value"].get("stringValue") for a in rl["resource"]["attributes"] if a["key"] == "k8s.container.name"}
            assert len(conts) == 1, rl["resource"]


def test_logfmt_and_regex_lines_and_unparsed_lines_counted(run_agent, tmp_path):
    pods = tmp_path / "pods"
    dpods = tmp_path / "docker"
    logs = tmp_path / "logs"
    for d in (pods, dpods, logs):
        d.mkdir()
    (logs / "svc.logfmt").write_text(
        'ts=2026-12-07T10:10:10.5Z level=warn msg="disk \\"sda\\" low" free=12 host=db-1\n'
        "not logfmt at all\n"
        "lvl=error message=boom ts=1796638210\n"
    )
    (logs / "access.nginx").write_text(
        '10.1.2.3 - - [07/Dec/2026:11:10:10 +0100] "GET /a HTTP/1.1" 404 17\n'
        "garbage line\n"
    )
    extra = f"""
[sources.svc]
type = "file"
include = ["{logs}/*.logfmt"]
format = "logfmt"
start_at = "beginning"
poll_interval = "20ms"

[sources.nginx]
type = "file"
include = ["{logs}/*.nginx"]
format = "regex"
regex = {{ pattern = '^(?P<client>\\S+) \\S+ \\S+ \\[(?P<time>[^\\]]+)\\] "(?P<message>[^"]*)" (?P<status>\\d+) (?P<bytes>\\d+)$', time_format = "%d/%b/%Y:%H:%M:%S %z" }}
start_at = "beginning"
poll_interval = "20ms"
"""
    agent = run_agent(CONFIG.format(data=tmp_path / "data", pods=pods, docker=dpods, extra=extra))
    got = collect(agent, 5, timeout=20)
    errs = {
        s: metric(agent, "sonde_file_parse_errors_total", {"source": s, "reason": r})
        for s, r in (("svc", "logfmt"), ("nginx", "regex"))
    }
    assert agent.stop() == 0, agent.stderr_tail()
    assert len(got) == 5, got
    by = {r["body"]: r for r in got}
    r = by['disk "sda" low']
    assert r["time"] == 1_796_638_210_500_000_000
    assert (r["severity"], r["severity_text"]) == (13, "warn")
    assert r["attrs"]["free"] == "12" and r["attrs"]["host"] == "db-1"
    assert r["attrs"]["log.file.name"] == "svc.logfmt"
    r = by["boom"]
    assert (r["severity"], r["time"]) == (17, 1_796_638_210_000_000_000)
    assert by["not logfmt at all"]["attrs"] == {"log.file.name": "svc.logfmt"}
    r = by["GET /a HTTP/1.1"]
    assert r["time"] == 1_796_638_210_000_000_000
    assert {k: r["attrs"][k] for k in ("client", "status", "bytes")} == {"client": "10.1.2.3", "status": "404", "bytes": "17"}
    assert "garbage line" in by
    # No pod attributes for paths that are not pod logs.
    assert all("k8s.pod.name" not in r["resource"] for r in got)
    assert errs == {"svc": 1, "nginx": 1}


def test_a_bad_regex_is_refused_with_its_key_and_position(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[sources.x]\ntype = "file"\ninclude = ["/var/log/*.log"]\nformat = "regex"\n'
        "regex = { pattern = '(?P<time>[0-9+' }\n\n[exporters.out]\ntype = \"stdout\"\n"
    )
    a = Agent(["validate", "--config", str(cfg)])
    code = a.proc.wait(timeout=20)
    out = "\n".join(list(a.lines(timeout=2))) + "\n".join(a.stderr_lines)
    assert code != 0
    assert "sources.x.regex.pattern" in out and "bad.toml:5:" in out, out
