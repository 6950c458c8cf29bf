"""Parquet exporter end to end: files written by Sonde, read back by readers no one here wrote
(DuckDB and pyarrow from PyPI), uploaded to a real S3-compatible server (moto's server, started
on a free loopback port) and to a directory through file://.

Two writers: the `parquet_fixture` example (the real exporter fed with fixed OTLP requests that
fill every field, so each value can be asserted) and the `sonde` binary itself (host metrics →
parquet)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import boto3
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.config import Config

from conftest import ROOT, free_port, poll

FIXTURE = Path(os.environ.get("SONDE_PARQUET_FIXTURE") or ROOT / "target" / "debug" / "examples" / "parquet_fixture")
MOTO = Path(os.environ.get("MOTO_SERVER") or ROOT / ".venv" / "bin" / "moto_server")
BUCKET = "lake"
T0 = 1_704_164_645_123_456_789
TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
PARENT_HEX = "eee19b7ec3c1b173"


class Moto:
    """moto's S3 server on a loopback port, stopped by PID."""

    def __init__(self, port: int):
        if not MOTO.exists():
            pytest.fail(f"moto_server not found at {MOTO}: tests/requirements.txt installs moto[server]")
        self.port = port
        self.proc = subprocess.Popen(
            [str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

        def up():
            try:
                self.s3.list_buckets()
                return True
            except Exception:
                assert self.proc.poll() is None, "moto_server exited"
                return False

        poll(up, 30, "moto_server", 0.2)

    def bucket(self, name=BUCKET):
        self.s3.create_bucket(Bucket=name)

    def objects(self, bucket=BUCKET) -> dict:
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                out[o["Key"]] = o
        return out

    def download(self, key, dest: Path, bucket=BUCKET) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(bucket, key, str(dest))
        return dest

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def moto():
    servers = []

    def start(port=None):
        m = Moto(port or free_port())
        servers.append(m)
        return m

    yield start
    for m in servers:
        m.stop()


def s3_config(port, extra="", upload=""):
    return f"""
url = "s3://{BUCKET}/otel"
endpoint = "http://127.0.0.1:{port}"
allow_http = true
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
host = "fixture-host"
upload = {{ initial_backoff = "100ms", max_backoff = "500ms", timeout = "10s", connect_timeout = "2s"{upload} }}
{extra}
"""


def run_fixture(tmp_path, config_text, bulk=0, timeout=120, wait=True, pad=0):
    if not FIXTURE.exists():
        pytest.fail(f"{FIXTURE} not built: `cargo build -p sonde-exporters --example parquet_fixture`")
    cfg = tmp_path / "fixture.toml"
    cfg.write_text(config_text)
    data = tmp_path / "data"
    env = dict(os.environ, SONDE_LOG="info", RUST_LOG="info")
    proc = subprocess.Popen(
        [str(FIXTURE), str(cfg), str(data), str(bulk), str(pad)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    if not wait:
        return proc
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def ts_as_int(t: pa.DataType) -> pa.DataType:
    """The same type with every timestamp as int64 (nanoseconds), for exact comparisons
    without pandas."""
    if pa.types.is_timestamp(t):
        return pa.int64()
    if pa.types.is_list(t):
        return pa.list_(pa.field(t.value_field.name, ts_as_int(t.value_type), t.value_field.nullable))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, ts_as_int(f.type), f.nullable) for f in t])
    return t


def rows_of(path: Path) -> list:
    t = pq.read_table(path)
    schema = pa.schema([pa.field(f.name, ts_as_int(f.type), f.nullable) for f in t.schema])
    return t.cast(schema).to_pylist()


def files_by_signal(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("*.parquet")):
        out.setdefault(p.relative_to(root).parts[0], []).append(p)
    return out


# ---------------------------------------------------------------------------------------------
# Every field, read back with DuckDB and pyarrow


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fixture")
    lake = tmp / "lake"
    result = run_fixture(tmp, f'url = "file://{lake}"\nhost = "fixture-host"\n')
    assert result["files"] == 3 and result["uploaded"] == 3, result
    files = files_by_signal(lake)
    assert sorted(files) == ["logs", "metrics", "traces"], files
    return {k: v[0] for k, v in files.items()}


def test_object_names_are_hive_partitions_with_host_and_content_id(fixture_files):
    for signal_name, path in fixture_files.items():
        parts = path.parts[-4:]
        assert parts[0] == signal_name
        assert parts[1].startswith("date=") and len(parts[1]) == len("date=2024-01-02")
        assert parts[2].startswith("hour=") and len(parts[2]) == len("hour=03")
        assert parts[3].startswith("fixture-host-") and parts[3].endswith(".parquet")
        meta = pq.read_metadata(path).metadata
        assert meta[b"sonde.schema.version"] == b"1"
        assert meta[b"sonde.signal"] == signal_name.encode()
        assert meta[b"sonde.file.id"].decode() in parts[3]
        assert meta[b"sonde.host"] == b"fixture-host"


def test_pyarrow_reads_types_and_every_span_field(fixture_files):
    t = pq.read_table(fixture_files["traces"])
    schema = t.schema
    assert str(schema.field("trace_id").type) == "fixed_size_binary[16]"
    assert str(schema.field("start_time").type) == "timestamp[ns, tz=UTC]"
    assert str(schema.field("attributes").type).startswith("map<string, string")
    assert str(schema.field("attributes_int").type).startswith("map<string, int64")
    # Built as Arrow dictionaries in memory; written and read back as the documented strings.
    assert str(schema.field("service_name").type) == "string"
    assert str(schema.field("scope_name").type) == "string"
    assert str(schema.field("resource_attributes").type).startswith("map<string, string")
    assert pq.ParquetFile(fixture_files["traces"]).metadata.row_group(0).column(0).compression == "ZSTD"
    rows = rows_of(fixture_files["traces"])
    assert len(rows) == 2
    full = next(r for r in rows if r["name"] == "GET /api/v1/orders/{id}")
    assert full["trace_id"].hex() == TRACE_HEX
    assert full["span_id"].hex() == SPAN_HEX
    assert full["parent_span_id"].hex() == PARENT_HEX
    assert full["trace_state"] == "vendor=abc"
    assert full["flags"] == 0x301
    assert full["kind"] == "server"
    assert full["start_time"] == T0
    assert full["end_time"] == T0 + 1_500_000
    assert full["duration_ns"] == 1_500_000
    assert full["status_code"] == "error" and full["status_message"] == "upstream timed out"
    assert full["service_name"] == "checkout"
    res = dict(full["resource_attributes"])
    assert res == {"service.name": "checkout", "host.name": "fixture-host", "process.pid": "4242"}
    assert dict(full["resource_attributes_int"]) == {"process.pid": 4242}
    assert full["resource_dropped_attributes_count"] == 1
    assert full["resource_schema_url"] == "https://opentelemetry.io/schemas/1.25.0"
    assert full["scope_name"] == "io.sonde.fixture" and full["scope_version"] == "1.2.3"
    assert dict(full["scope_attributes"]) == {"scope.attr": "yes"}
    assert full["scope_dropped_attributes_count"] == 2
    assert full["scope_schema_url"] == "https://opentelemetry.io/schemas/1.26.0"
    attrs = dict(full["attributes"])
    assert attrs == {
        "http.route": "/api/v1/orders/{id}",
        "http.response.status_code": "503",
        "sampling.ratio": "0.25",
        "cache.hit": "true",
        "raw": "3q2+7w==",
        "list": '["a",1,false]',
        "map": '{"inner":"x","n":2}',
    }
    assert dict(full["attributes_int"]) == {"http.response.status_code": 503}
    assert dict(full["attributes_double"]) == {"sampling.ratio": 0.25}
    assert dict(full["attributes_bool"]) == {"cache.hit": True}
    assert full["dropped_attributes_count"] == 3
    ev = full["events"]
    assert [e["name"] for e in ev] == ["exception", "done"]
    assert ev[0]["time"] == T0 + 1000
    assert dict(ev[0]["attributes"]) == {"exception.type": "TimeoutError", "retry": "2"}
    assert dict(ev[0]["attributes_int"]) == {"retry": 2}
    assert ev[0]["dropped_attributes_count"] == 4
    assert full["dropped_events_count"] == 5
    (link,) = full["links"]
    assert link["trace_id"] == bytes([7] * 16) and link["span_id"] == bytes([8] * 8)
    assert link["trace_state"] == "l=1" and link["flags"] == 1
    assert dict(link["attributes"]) == {"link.kind": "follows"}
    assert link["dropped_attributes_count"] == 6
    assert full["dropped_links_count"] == 7
    root = next(r for r in rows if r["name"] == "root")
    assert root["parent_span_id"] is None and root["trace_state"] is None
    assert root["status_code"] == "unset" and root["events"] == [] and root["links"] == []


def test_duckdb_queries_spans_by_attribute_key_ids_and_times(fixture_files):
    con = duckdb.connect()
    f = str(fixture_files["traces"])
    row = con.execute(
        f"""select lower(hex(trace_id)), lower(hex(span_id)), epoch_ns(start_time), duration_ns,
                   attributes['http.route'], attributes_int['http.response.status_code'],
                   attributes_double['sampling.ratio'], attributes_bool['cache.hit'],
                   resource_attributes['host.name'], service_name, events[1].name,
                   events[1].attributes['exception.type'], links[1].attributes['link.kind']
            from '{f}' where attributes_int['http.response.status_code'] >= 500"""
    ).fetchall()
    assert row == [
        (
            TRACE_HEX,
            SPAN_HEX,
            T0,
            1_500_000,
            "/api/v1/orders/{id}",
            503,
            0.25,
            True,
            "fixture-host",
            "checkout",
            "exception",
            "TimeoutError",
            "follows",
        )
    ]
    # A key that is not there is NULL, not an error.
    assert con.execute(f"select count(*) from '{f}' where attributes['nope'] is null").fetchone() == (2,)
    # json_extract works on array/kvlist attributes.
    assert con.execute(f"select json_extract(attributes['map'], '$.n') from '{f}' where name <> 'root'").fetchone() == ("2",)


def test_duckdb_reads_every_metric_point_type(fixture_files):
    con = duckdb.connect()
    f = str(fixture_files["metrics"])
    rows = con.execute(
        f"""select metric_name, metric_type, temporality, is_monotonic, value_int, value_double,
                   count, sum, min, max, bucket_counts, explicit_bounds, exp_scale, exp_zero_count,
                   exp_zero_threshold, exp_positive_offset, exp_positive_bucket_counts,
                   exp_negative_offset, exp_negative_bucket_counts, quantiles, flags,
                   epoch_ns(time), epoch_ns(start_time), attributes['state'], attributes_int['cpu'],
                   metric_unit, metric_description, service_name, len(exemplars)
            from '{f}' order by metric_name, value_int nulls first"""
    ).fetchall()
    by = {}
    for r in rows:
        by.setdefault(r[0], []).append(r)
    assert sorted(by) == sorted(
        [
            "db.query.time",
            "http.server.request.duration",
            "queue.delta",
            "rpc.latency",
            "system.cpu.time",
            "system.memory.utilization",
        ]
    )
    g = by["system.memory.utilization"]
    assert [(r[1], r[2], r[3], r[4], r[5], r[20]) for r in g] == [
        ("gauge", None, None, None, 0.5, 0),
        ("gauge", None, None, -3, None, 1),
    ]
    assert g[1][28] == 1 and g[0][28] == 0  # exemplars
    (s,) = by["system.cpu.time"]
    assert (s[1], s[2], s[3], s[4]) == ("sum", "cumulative", True, 123_456_789_012)
    (d,) = by["queue.delta"]
    assert (d[2], d[3], d[5]) == ("delta", False, -1.5)
    (h,) = by["http.server.request.duration"]
    assert (h[1], h[2], h[6], h[7], h[8], h[9]) == ("histogram", "delta", 10, 3.5, 0.05, 2.5)
    assert h[10] == [1, 2, 3, 4] and h[11] == [0.1, 0.5, 1.0]
    assert h[4] is None and h[12] is None and h[19] is None
    (e,) = by["rpc.latency"]
    assert e[1] == "exponential_histogram" and e[6] == 9 and e[7] == 42.0 and (e[8], e[9]) == (-4.0, 17.0)
    assert (e[12], e[13], e[14], e[15], e[16], e[17], e[18]) == (3, 1, 0.001, -2, [1, 2, 3], 1, [2])
    assert e[10] is None
    (q,) = by["db.query.time"]
    assert (q[1], q[6], q[7]) == ("summary", 100, 250.5)
    assert q[19] == [{"quantile": 0.5, "value": 2.0}, {"quantile": 0.99, "value": 9.5}]
    for r in rows:
        assert r[21] == T0 and r[22] == T0 - 1_000_000_000
        assert r[23] == "user" and r[24] == 0 and r[27] == "node"
    assert (s[25], s[26]) == ("s", "system.cpu.time description")
    ex = con.execute(
        f"""select exemplars[1].value_double, lower(hex(exemplars[1].trace_id)),
                   exemplars[1].filtered_attributes['user'], epoch_ns(exemplars[1].time),
                   metric_metadata['origin']
            from '{f}' where metric_name = 'system.memory.utilization' and value_int = -3"""
    ).fetchone()
    assert ex == (0.75, TRACE_HEX, "u1", T0 + 5, "fixture")


def test_duckdb_and_pyarrow_read_every_log_field(fixture_files):
    con = duckdb.connect()
    f = str(fixture_files["logs"])
    rows = con.execute(
        f"""select epoch_ns(time), epoch_ns(observed_time), severity_number, severity_text, body,
                   body_type, event_name, lower(hex(trace_id)), lower(hex(span_id)), flags,
                   attributes['http.route'], dropped_attributes_count, service_name, scope_name
            from '{f}' order by observed_time"""
    ).fetchall()
    assert len(rows) == 5
    first = rows[0]
    assert first == (
        T0,
        T0 + 100,
        17,
        "ERROR",
        "payment declined for order 42",
        "string",
        "order.failed",
        TRACE_HEX,
        SPAN_HEX,
        1,
        "/api/v1/orders/{id}",
        0,
        "billing",
        "io.sonde.fixture",
    )
    assert [(r[4], r[5]) for r in rows[1:]] == [
        ('{"msg":"structured","code":7}', "kvlist"),
        ("12", "int"),
        ("aGk=", "bytes"),
        (None, None),
    ]
    assert rows[4][0] is None and rows[4][1] == T0 + 104  # unset time is NULL
    assert rows[1][7] is None  # empty trace id is NULL
    assert con.execute(f"select json_extract_string(body, '$.msg') from '{f}' where body_type = 'kvlist'").fetchone() == (
        "structured",
    )
    t = rows_of(fixture_files["logs"])
    assert dict(t[0]["attributes_bool"]) == {"cache.hit": True}
    assert t[2]["attributes_int"] == [("i", 2)]


def test_sonde_schema_command_matches_the_files(fixture_files):
    from conftest import run_cli

    for signal_name in ["traces", "metrics", "logs"]:
        out = run_cli("schema", signal_name)
        assert out.returncode == 0, out.stderr
        assert "version 1" in out.stdout
        listed = [l.split()[0] for l in out.stdout.splitlines() if l and not l.startswith("#") and "[]." not in l]
        assert listed == pq.read_schema(fixture_files[signal_name]).names
    assert run_cli("schema", "nope").returncode != 0


# ---------------------------------------------------------------------------------------------
# Object storage for real


def test_s3_upload_round_trip_with_multipart_for_a_large_file(tmp_path, moto):
    m = moto()
    m.bucket()
    # 15k spans with 200 random bytes each (uncompressed) make a file larger than one 5 MiB part.
    cfg = s3_config(m.port, 'compression = "none"', upload=', part_size = "5MiB"')
    result = run_fixture(tmp_path, cfg, bulk=15_000, pad=200)
    assert result["uploaded"] == 3 and result["upload_retries"] == 0, result
    objs = m.objects()
    assert len(objs) == 3, objs
    traces = next(k for k in objs if k.startswith("otel/traces/date="))
    assert objs[traces]["Size"] > 5 * 1024 * 1024
    # An S3 multipart upload's ETag ends in -<parts>.
    assert objs[traces]["ETag"].strip('"').endswith(tuple(f"-{n}" for n in range(2, 10))), objs[traces]["ETag"]
    small = next(k for k in objs if k.startswith("otel/logs/"))
    assert "-" not in objs[small]["ETag"].strip('"'), "a small file goes up in one PUT"
    local = m.download(traces, tmp_path / "dl" / "t.parquet")
    con = duckdb.connect()
    assert con.execute(f"select count(*), count(distinct span_id) from '{local}'").fetchone() == (15_002, 15_002)
    assert pq.read_metadata(local).metadata[b"sonde.schema.version"] == b"1"
    # No multipart upload is left behind.
    assert m.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_s3_down_during_upload_is_retried_with_nothing_lost_or_duplicated(tmp_path, moto):
    port = free_port()
    proc = run_fixture(tmp_path, s3_config(port), wait=False)
    try:
        # The store is down: the exporter retries (and says so), keeping the files staged.
        def retrying():
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "fixture exited before retrying"
            return "upload failed, retrying" in line

        poll(retrying, 60, "an upload retry", 0)
        staged = list((tmp_path / "data").rglob("outbox/*.parquet"))
        assert staged, "finished files must wait in the outbox while the store is down"
        m = moto(port)
        m.bucket()
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["uploaded"] == 3 and result["upload_retries"] >= 1, result
    objs = m.objects()
    assert sorted(k.split("/")[1] for k in objs) == ["logs", "metrics", "traces"], objs
    con = duckdb.connect()
    counts = {}
    for k in objs:
        local = m.download(k, tmp_path / "dl" / k)
        counts[k.split("/")[1]] = con.execute(f"select count(*) from '{local}'").fetchone()[0]
    assert counts == {"traces": 2, "metrics": 7, "logs": 5}
    assert not list((tmp_path / "data").rglob("outbox/*.parquet")), "uploaded files are removed locally"


class CuttableProxy:
    """A TCP proxy on a loopback port in front of a server: forwards upstream at about 20 MB/s,
    counts the bytes, and can be cut (every connection closed, new ones refused) and restored."""

    def __init__(self, upstream_port: int):
        import threading

        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.cut = False
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import threading

        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.cut:
                client.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, up]
            threading.Thread(target=self._pipe, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, client, False), daemon=True).start()

    def _pipe(self, src, dst, upstream):
        try:
            while True:
                data = src.recv(65536)
                if not data or self.cut:
                    break
                dst.sendall(data)
                if upstream:
                    self.sent += len(data)
                    time.sleep(len(data) / 20e6)  # about 20 MB/s: a cut lands mid-upload
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def set_cut(self, cut: bool):
        self.cut = cut
        if cut:
            with self.lock:
                for c in self.conns:
                    try:
                        c.shutdown(socket.SHUT_RDWR)
                        c.close()
                    except OSError:
                        pass
                self.conns.clear()

    def close(self):
        self.closed = True
        self.set_cut(True)
        self.sock.close()


def test_s3_cut_in_the_middle_of_a_multipart_upload_leaves_no_object_and_recovers(tmp_path, moto):
    m = moto()
    m.bucket()
    proxy = CuttableProxy(m.port)
    try:
        cfg = s3_config(proxy.port, 'compression = "none"', upload=', part_size = "5MiB", concurrency = 1')
        proc = run_fixture(tmp_path, cfg, bulk=25_000, pad=200, wait=False)
        try:
            # Cut the connection once the first 5 MiB part is through: mid-upload.
            poll(lambda: proxy.sent > 6 * 1024 * 1024 or proc.poll() is not None, 120, "the first part on the wire", 0.01)
            assert proc.poll() is None, "the upload finished before it could be cut"
            proxy.set_cut(True)

            def failed():
                line = proc.stderr.readline()
                assert line or proc.poll() is None, "fixture exited"
                return "upload failed, retrying" in line

            poll(failed, 60, "the cut attempt to fail", 0)
            # The half-sent file is no object.
            assert not [k for k in m.objects() if k.startswith("otel/traces/")]
            proxy.set_cut(False)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["uploaded"] == 3 and result["upload_retries"] >= 1, result
        objs = m.objects()
        assert sorted(k.split("/")[1] for k in objs) == ["logs", "metrics", "traces"], objs
        traces = next(k for k in objs if k.startswith("otel/traces/"))
        local = m.download(traces, tmp_path / "dl" / "t.parquet")
        assert duckdb.connect().execute(f"select count(*) from '{local}'").fetchone() == (25_002,)
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------------
# The real binary


AGENT = """
[agent]
data_dir = "{data}"
shutdown_timeout = "20s"

[sources.host]
type = "host_metrics"
interval = "1s"
collectors = ["cpu", "memory", "load"]

[exporters.lake]
type = "parquet"
url = "file://{lake}"
max_file_age = "{age}"
batch = {{ max_age = "100ms" }}
{s3}
"""


def test_agent_host_metrics_to_parquet_on_file_and_s3(run_agent, tmp_path, moto):
    m = moto()
    m.bucket()
    lake = tmp_path / "lake"
    s3 = "[exporters.s3]\ntype = \"parquet\"\n" + s3_config(m.port, 'max_file_age = "2s"\nbatch = { max_age = "100ms" }').replace(
        'host = "fixture-host"', ""
    )
    agent = run_agent(AGENT.format(data=tmp_path / "data", lake=lake, age="2s", s3=s3))
    poll(lambda: list(lake.rglob("*.parquet")), 30, "a file in the directory")
    poll(lambda: m.objects(), 30, "an object in S3")
    assert agent.stop(signal.SIGTERM) == 0, agent.stderr_tail()
    con = duckdb.connect()
    files = sorted(lake.rglob("*.parquet"))
    assert all(f.relative_to(lake).parts[0] == "metrics" for f in files)
    q = f"select count(*), count(distinct metric_name), bool_and(time is not null) from read_parquet({[str(f) for f in files]})"
    count, names, times = con.execute(q).fetchone()
    assert count > 0 and names >= 3 and times
    cpu = con.execute(
        f"select count(*) from read_parquet({[str(f) for f in files]}) where metric_name = 'system.cpu.time' and attributes['cpu.mode'] is not null"
    ).fetchone()[0]
    assert cpu > 0
    keys = list(m.objects())
    assert all(k.startswith("otel/metrics/date=") for k in keys), keys
    local = m.download(keys[0], tmp_path / "dl" / "a.parquet")
    assert con.execute(f"select count(*) from '{local}' where metric_type in ('sum', 'gauge')").fetchone()[0] > 0


def test_agent_killed_before_upload_rebuilds_the_file_under_the_same_name(run_agent, tmp_path):
    data = tmp_path / "data"
    agent = run_agent(AGENT.format(data=data, lake=tmp_path / "lake0", age="1h", s3=""))
    open_dir = data / "parquet" / "lake" / "open"

    def staged():
        logs = list(open_dir.glob("*.wal"))
        return logs if logs and logs[0].stat().st_size > 200 else None

    poll(staged, 30, "batches in the staging log")
    agent.kill()  # SIGKILL: no shutdown, nothing finished or uploaded
    assert not list((tmp_path / "lake0").rglob("*.parquet"))
    # Two restarts from identical copies of the crashed state must produce the same object.
    names = []
    for i in (1, 2):
        copy = tmp_path / f"data{i}"
        shutil.copytree(data, copy)
        lake = tmp_path / f"lake{i}"
        a = run_agent(AGENT.format(data=copy, lake=lake, age="1h", s3=""))
        assert a.wait_stderr("recovered staged files", 30), a.stderr_tail()
        assert a.stop(signal.SIGTERM) == 0, a.stderr_tail()
        names.append({str(p.relative_to(lake)) for p in lake.rglob("*.parquet")})
    common = names[0] & names[1]
    assert len(common) == 1, names  # the recovered file; each run also wrote its own new one
    (name,) = common
    con = duckdb.connect()
    a, b = (con.execute(f"select count(*) from '{tmp_path / f'lake{i}' / name}'").fetchone()[0] for i in (1, 2))
    assert a == b and a > 0
