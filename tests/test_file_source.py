"""File source end to end: the real binary tails files in a temp directory and prints OTLP/JSON
on stdout; the tests assert on the numbered lines that come out.

- rotation torture: rename-and-create, copytruncate and delete while writers append; every line
  exactly once, in order within each physical file (writers number lines and generations);
- restart: the same with SIGKILL at random moments and a restart on the same data_dir; no line
  missing, duplicates counted and reported;
- backpressure: stdout into a pipe nobody reads, small buffer; RSS stays bounded, nothing lost
  once the pipe is read again;
- bad files: binary garbage, a 100 MB line, an unreadable file, a directory and a FIFO matching
  the glob: warnings that name them, counts in the stop summary, the good file still tailed;
- formats: JSON lines mapped to body, time, severity and attributes; multi-line records.
"""

import json
import os
import random
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import Agent, sonde_bin

CONFIG = """
[agent]
data_dir = "{data}"
shutdown_timeout = "5s"

[sources.logs]
type = "file"
include = ["{logs}/*.log*"]
start_at = "beginning"
scan_interval = "{scan}"
poll_interval = "20ms"
rotate_wait = "{rotate_wait}"
{extra}

[exporters.out]
type = "stdout"
format = "json"
batch = {{ max_age = "50ms" }}
{exporter_extra}
"""


def config(data, logs, scan="100ms", rotate_wait="1s", extra="", exporter_extra=""):
    return CONFIG.format(
        data=data, logs=logs, scan=scan, rotate_wait=rotate_wait, extra=extra, exporter_extra=exporter_extra
    )


def records(line):
    """(file name, body) of every log record in one stdout line; [] for a partial line."""
    try:
        req = json.loads(line)
    except ValueError:
        return []
    out = []
    for rl in req.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for r in sl.get("logRecords", []):
                attrs = {a["key"]: a["value"].get("stringValue") for a in r.get("attributes", [])}
                out.append((attrs.get("log.file.name"), r.get("body", {}).get("stringValue"), r))
    return out


class Writer:
    """Appends numbered lines `w<k> g<gen> s<seq>` to one log file and rotates it three ways.
    Each generation (physical file) is written in order; rotations happen between writes, as
    logrotate's would between a writer's lines."""

    def __init__(self, logs: Path, k: int):
        self.k = k
        self.path = logs / f"w{k}.log"
        self.gen = 0
        self.seq = 0
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.rotations = {"rename": 0, "copytruncate": 0, "delete": 0}
        self.history = []  # (event, gen, seq, time) for failure reports

    def chunk(self, n: int, gen: int) -> bytes:
        pad = "x" * 40
        return "".join(f"w{self.k} g{gen} s{self.seq + i:08d} {pad}\n" for i in range(n)).encode()

    def write(self, n: int):
        os.write(self.fd, self.chunk(n, self.gen))
        self.seq += n

    def reopen(self):
        os.close(self.fd)
        self.gen += 1
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def rotate(self, kind: str, pid: int):
        """Rotates; first waits until the tailer (process `pid`) holds open the file the rotation
        destroys. A file deleted before any tailer opened it is lost to every tailer; that is not
        what this test is about."""
        self.history.append((kind, self.gen, self.seq, round(time.monotonic(), 3)))
        old = self.path.with_name(self.path.name + ".1")
        doomed = self.path if kind == "delete" else old
        if doomed.exists():
            wait_held(pid, doomed)
        if kind == "rename":
            os.rename(self.path, old)  # replaces (deletes) the previous .1
            self.reopen()
        elif kind == "copytruncate":
            if old.exists():
                os.unlink(old)
            with open(self.path, "rb") as src, open(old, "wb") as dst:
                dst.write(src.read())
            # Right after the truncation, more than was there: a tailer that only compares
            # sizes would miss it and read the new content from the middle.
            n = self.path.stat().st_size // 50 + 100
            burst = self.chunk(n, self.gen + 1)
            os.truncate(self.path, 0)
            os.write(self.fd, burst)
            self.gen += 1  # same file, new content
            self.seq += n
        else:
            os.unlink(self.path)
            self.reopen()
        self.rotations[kind] += 1

    def close(self):
        os.close(self.fd)


KINDS = ["rename", "copytruncate", "delete"]


def wait_no_deleted_open(pid: int, timeout: float = 20):
    """Waits until process `pid` holds no deleted file open. A tailer killed while it still reads
    a deleted file loses that file's rest — any tailer would — so the kills wait for this."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = []
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    held.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:
                    pass
        except FileNotFoundError:
            return
        if not any(h.endswith("(deleted)") and ".log" in h for h in held):
            return
        time.sleep(0.02)
    pytest.fail(f"sonde still reads a deleted file after {timeout}s")


def wait_held(pid: int, path: Path, timeout: float = 15):
    """Waits until process `pid` has `path` open."""
    deadline = time.monotonic() + timeout
    want = str(path)
    while time.monotonic() < deadline:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            return
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == want:
                    return
            except OSError:
                pass
        time.sleep(0.01)
    pytest.fail(f"sonde did not open {path} within {timeout}s")


def check_delivery(got, writers, allow_duplicates=False):
    """Every (writer, seq) delivered; returns the number of duplicates. Asserts order within each
    (writer, generation), counting only first deliveries."""
    seen = {}
    dups = 0
    last = {}
    for name, body, _ in got:
        assert body and body.startswith("w"), f"unexpected record {body!r} from {name}"
        w, g, s = body.split()[:3]
        key = (w, int(s[1:]))
        if key in seen:
            dups += 1
            continue
        seen[key] = True
        stream = (w, g)
        if not allow_duplicates:
            assert last.get(stream, -1) < key[1], f"out of order in {stream}: {key[1]} after {last[stream]}"
        last[stream] = key[1]
    missing = []
    for wr in writers:
        for s in range(wr.seq):
            if (f"w{wr.k}", s) not in seen:
                missing.append((wr.k, s))
    if missing:
        hist = {wr.k: [h for h in wr.history if abs(h[2] - missing[0][1]) < 5000] for wr in writers}
        pytest.fail(f"{len(missing)} lines missing, first: {missing[:5]} last: {missing[-5:]}; rotations near: {hist}")
    return dups


def collect_until(agent, want, timeout):
    """Reads records until `want` distinct lines arrived or the deadline passed. `want` may be a
    function, asked after every stdout line (for a count known only once the writers stop)."""
    target = want if callable(want) else (lambda: want)
    got = []
    distinct = set()
    deadline = time.monotonic() + timeout
    # In short rounds, so that a target that drops after the last line came is still seen.
    while len(distinct) < target() and time.monotonic() < deadline:
        for line in agent.lines(timeout=min(0.5, deadline - time.monotonic())):
            for rec in records(line):
                got.append(rec)
                distinct.add(rec[1])
            if len(distinct) >= target():
                break
    return got


def test_rotation_torture_every_line_exactly_once_in_order(run_agent, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    agent = run_agent(config(tmp_path / "data", logs))
    assert agent.wait_stderr("file source starting", 10), agent.stderr_tail()
    writers = [Writer(logs, k) for k in range(2)]
    total = 200_000
    per_chunk = 50
    got = []
    # The writers stop once they have written `total` lines, but a chunk or a copytruncate burst
    # takes them past it: the drain waits for what they really wrote (set when they stop), not
    # for `total`, or lines read last (say from a rotated copy) would be left unread.
    written = [float("inf")]
    drain = threading.Thread(
        target=lambda: got.extend(collect_until(agent, lambda: written[0], 90)), daemon=True
    )
    drain.start()
    deadline = time.monotonic() + 60
    next_rotation = time.monotonic() + 0.4
    step = 0
    while sum(w.seq for w in writers) < total and time.monotonic() < deadline:
        for w in writers:
            w.write(per_chunk)
        if time.monotonic() >= next_rotation:
            w = writers[step % len(writers)]
            w.rotate(KINDS[(step // len(writers)) % len(KINDS)], agent.proc.pid)
            step += 1
            next_rotation = time.monotonic() + 0.25
        time.sleep(0.004)
    for w in writers:
        w.close()
    written[0] = sum(w.seq for w in writers)
    assert written[0] >= total, "writers too slow"
    drain.join(timeout=95)
    assert agent.stop() == 0, agent.stderr_tail()
    rotations = {k: sum(w.rotations[k] for w in writers) for k in KINDS}
    assert all(v >= 5 for v in rotations.values()), rotations
    dups = check_delivery(got, writers)
    assert dups == 0, f"{dups} duplicates"
    summary = next(l for l in agent.stderr_lines if "file source stopped" in l)
    assert '"truncations":0' not in summary, summary  # copytruncate was noticed


def test_restart_with_sigkill_loses_nothing(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "sonde.toml"
    cfg.write_text(config(tmp_path / "data", logs, extra='checkpoint_interval = "100ms"'))
    writers = [Writer(logs, k) for k in range(2)]
    outputs = []
    agents = []

    def start():
        a = Agent(["run", "--config", str(cfg)])
        agents.append(a)
        got = []
        outputs.append(got)
        # Collect in the background until its stdout closes.
        t = threading.Thread(target=lambda: [got.extend(records(l)) for l in a.lines(timeout=120)], daemon=True)
        t.start()
        return a, t

    rng = random.Random(7)
    agent, pump = start()
    assert agent.wait_stderr("file source starting", 10), agent.stderr_tail()
    total = 120_000
    kills = 0
    next_kill = time.monotonic() + rng.uniform(0.8, 2.0)
    next_rotation = time.monotonic() + 0.4
    step = 0
    deadline = time.monotonic() + 60
    try:
        while sum(w.seq for w in writers) < total and time.monotonic() < deadline:
            for w in writers:
                w.write(50)
            now = time.monotonic()
            if now >= next_kill:
                wait_no_deleted_open(agent.proc.pid)
                agent.proc.send_signal(signal.SIGKILL)
                agent.proc.wait(timeout=5)
                pump.join(timeout=10)
                kills += 1
                for w in writers:
                    w.history.append(("kill", w.gen, w.seq, round(time.monotonic(), 3)))
                # Writers go on while it is down (no rotation: a file deleted while nobody
                # holds it open is lost to any tailer; `rotate` waits for it to be reopened).
                for _ in range(rng.randint(1, 20)):
                    for w in writers:
                        w.write(50)
                agent, pump = start()
                assert agent.wait_stderr("file source starting", 10), agent.stderr_tail()
                next_kill = time.monotonic() + rng.uniform(0.8, 2.0)
            elif now >= next_rotation:
                w = writers[step % len(writers)]
                w.rotate(KINDS[(step // len(writers)) % len(KINDS)], agent.proc.pid)
                step += 1
                next_rotation = now + 0.3
            time.sleep(0.004)
    finally:
        for w in writers:
            w.close()
    # Let the last instance catch up, then stop it gracefully.
    want = {(f"w{w.k}", s) for w in writers for s in range(w.seq)}
    end = time.monotonic() + 60
    while time.monotonic() < end:
        have = {(b.split()[0], int(b.split()[2][1:])) for out in outputs for _, b, _ in out if b}
        if want <= have:
            break
        time.sleep(0.2)
    assert agent.stop() == 0, agent.stderr_tail()
    pump.join(timeout=10)
    for a in agents:
        a.kill()
    got = [r for out in outputs for r in out]
    dbg = os.environ.get("SONDE_TEST_DEBUG_DIR")
    if dbg:
        for i, (a, out) in enumerate(zip(agents, outputs)):
            Path(dbg, f"agent{i}.err").write_text("\n".join(a.stderr_lines))
            Path(dbg, f"agent{i}.out").write_text("\n".join(b for _, b, _ in out if b))
        Path(dbg, "history").write_text(repr([w.history for w in writers]))
    assert kills >= 3, kills
    dups = check_delivery(got, writers, allow_duplicates=True)
    delivered = sum(w.seq for w in writers)
    print(f"\nrestart test: {delivered} lines, {kills} SIGKILLs, {dups} duplicates ({dups / delivered:.2%})")
    # Duplicates come only from batches in flight or not yet checkpointed at each kill.
    assert dups <= kills * 20_000, f"{dups} duplicates for {kills} kills"


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_backpressure_blocked_exporter_bounds_memory_and_loses_nothing(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    n = 250_000
    line_len = 200
    with open(logs / "big.log", "w") as f:
        for i in range(n):
            f.write(f"b{i:09d} " + "y" * (line_len - 12) + "\n")
    size_mb = (logs / "big.log").stat().st_size / 2**20
    cfg = tmp_path / "sonde.toml"
    cfg.write_text(
        config(
            tmp_path / "data",
            logs,
            exporter_extra='buffer = { max_size = "2MiB" }\n',
        ).replace('batch = { max_age = "50ms" }', 'batch = { max_age = "50ms", max_bytes = "1MiB" }')
    )
    env = dict(os.environ, SONDE_ADMIN="127.0.0.1:0")
    # The same binary and config with nothing to read: the RSS the data must not add much to
    # (a debug build's own pages are most of it).
    idle_logs = tmp_path / "idle-logs"
    idle_logs.mkdir()
    idle_cfg = tmp_path / "idle.toml"
    idle_cfg.write_text(config(tmp_path / "idle-data", idle_logs))
    idle = subprocess.Popen(
        [sonde_bin(), "run", "--config", str(idle_cfg)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    baseline = 0
    try:
        t_end = time.monotonic() + 2
        while time.monotonic() < t_end:
            baseline = max(baseline, rss_kib(idle.pid))
            time.sleep(0.1)
    finally:
        idle.kill()
        idle.wait()
    proc = subprocess.Popen(
        [sonde_bin(), "run", "--config", str(cfg)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        # Nobody reads stdout: the pipe fills, the export blocks, the buffer fills, the tailer
        # stops reading. Sample RSS while it is stuck.
        peak = 0
        t_end = time.monotonic() + 4
        while time.monotonic() < t_end:
            assert proc.poll() is None
            peak = max(peak, rss_kib(proc.pid))
            time.sleep(0.1)
        grown = peak - baseline
        print(
            f"\nbackpressure: {size_mb:.0f} MiB of logs waiting, RSS peak while blocked "
            f"{peak / 1024:.1f} MiB, {grown / 1024:.1f} MiB over idle"
        )
        # A 2 MiB buffer, 1 MiB batches, per-file read buffers and the stdout pipe: a bounded
        # few MiB (plus allocator slack), well under half the 48 MiB waiting.
        assert grown < 24 * 1024, f"RSS grew {grown} KiB over idle while blocked with a 2 MiB buffer"
        # Now read everything.
        seen = set()
        dups = 0
        deadline = time.monotonic() + 120
        for raw in proc.stdout:
            for _, body, _ in records(raw.decode()):
                key = body[:10]
                if key in seen:
                    dups += 1
                seen.add(key)
            if len(seen) >= n or time.monotonic() > deadline:
                break
        assert len(seen) == n, f"{n - len(seen)} lines lost"
        assert dups == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_as(args, uid):
    """Starts the agent as `uid` (when root) with the helpers of conftest's Agent."""
    orig = subprocess.Popen

    def popen(*a, **kw):
        if uid is not None:
            kw["user"] = uid
            kw["group"] = uid
        return orig(*a, **kw)

    subprocess.Popen = popen
    try:
        return Agent(args)
    finally:
        subprocess.Popen = orig


def scrape(agent):
    """The agent's counters from its admin /metrics: {(name, reason label or None): value}."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(agent.admin_url() + "/metrics", timeout=5).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, s.labels.get("reason"))] = out.get((s.name, s.labels.get("reason")), 0) + s.value
    return out


def test_bad_files_are_reported_and_the_good_one_still_tailed(tmp_path):
    root = Path(tempfile.mkdtemp(prefix="sonde-bad-"))
    try:
        os.chmod(root, 0o777)
        logs = root / "logs"
        logs.mkdir()
        os.chmod(logs, 0o777)
        data = root / "data"
        data.mkdir()
        os.chmod(data, 0o777)
        rng = random.Random(1)
        (logs / "garbage.log").write_bytes(bytes(rng.randrange(256) for _ in range(64 * 1024)) + b"\nGARBAGE-END\n")
        with open(logs / "long.log", "wb") as f:
            block = b"L" * (1 << 20)
            for _ in range(100):
                f.write(block)
            f.write(b"\nafter-long\n")
        (logs / "secret.log").write_text("you cannot read me\n")
        os.chmod(logs / "secret.log", 0)
        (logs / "dir.log").mkdir()
        os.mkfifo(logs / "pipe.log")
        (logs / "good.log").write_text("good 1\ngood 2\n")
        for p in logs.iterdir():
            if p.name != "secret.log" and not stat.S_ISFIFO(p.lstat().st_mode):
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
        cfg = root / "sonde.toml"
        cfg.write_text(
            config(data, logs, extra='on_long_line = "truncate"\nmax_line_length = "1MiB"')
        )
        os.chmod(cfg, 0o644)
        uid = 65534 if os.geteuid() == 0 else None  # root reads any file: run as nobody
        agent = start_as(["run", "--config", str(cfg)], uid)
        try:
            got = []
            want = {"good 2", "after-long", "GARBAGE-END"}
            for line in agent.lines(timeout=60):
                got.extend(records(line))
                if want <= {b for _, b, _ in got}:
                    break
            bodies = {b for _, b, _ in got}
            assert want <= bodies, f"missing {want - bodies}; stderr: {agent.stderr_tail()}"
            long_recs = [b for n, b, _ in got if n == "long.log" and b != "after-long"]
            assert [len(b) for b in long_recs] == [1 << 20], "the 100 MB line is one truncated record"
            garbage = [b for n, b, _ in got if n == "garbage.log"]
            assert any("\ufffd" in b for b in garbage), "invalid UTF-8 is replaced"
            assert not any(n in ("secret.log", "pipe.log", "dir.log") for n, _, _ in got)
            assert agent.wait_stderr("dir.log", 5), agent.stderr_tail()
            err = "\n".join(agent.stderr_lines)
            for needle in ("directory", "fifo", "pipe.log", "secret.log", "cannot open file"):
                if uid is None and needle in ("secret.log", "cannot open file"):
                    continue
                assert needle in err, f"{needle!r} not in stderr: {agent.stderr_tail()}"
            assert agent.proc.poll() is None, "still running"
            metrics = scrape(agent)
            for reason in ("directory", "fifo"):
                assert metrics.get(("sonde_file_skipped_paths_total", reason)) == 1, metrics
            assert metrics.get(("sonde_file_long_lines_total", "truncated")) == 1, metrics
            assert metrics.get(("sonde_file_invalid_text_records_total", None), 0) >= 1, metrics
            if uid is not None:
                assert metrics.get(("sonde_file_read_errors_total", "open"), 0) >= 1, metrics
            assert agent.stop() == 0, agent.stderr_tail()
            summary = json.loads(next(l for l in agent.stderr_lines if "file source stopped" in l))
            assert summary["long_lines_truncated"] == 1, summary
            assert summary["invalid_text_records"] >= 1, summary
            if uid is not None:
                assert summary["read_errors"] >= 1, summary
        finally:
            agent.kill()
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_json_lines_map_time_severity_and_attributes(run_agent, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text(
        '{"ts":"2023-11-14T22:13:20.5Z","level":"error","message":"disk full","disk":"sda","free":0}\n'
        "not json at all\n"
    )
    agent = run_agent(
        config(
            tmp_path / "data",
            logs,
            extra='format = "json"\ninclude_file_path = true\njson = { timestamp_field = "ts", severity_field = "level" }\nresource = { "service.name" = "billing" }',
        )
    )
    got = []
    res = None
    for line in agent.lines(timeout=20):
        req = json.loads(line)
        res = {a["key"]: a["value"]["stringValue"] for a in req["resourceLogs"][0]["resource"]["attributes"]}
        got.extend(records(line))
        if len(got) >= 2:
            break
    assert agent.stop() == 0
    assert res["service.name"] == "billing" and "host.name" in res, res
    first = got[0][2]
    assert first["timeUnixNano"] == "1700000000500000000"
    assert first["severityNumber"] == 17 and first["severityText"] == "error"
    assert first["body"] == {"stringValue": "disk full"}
    attrs = {a["key"]: a["value"] for a in first["attributes"]}
    assert attrs["disk"] == {"stringValue": "sda"}
    assert attrs["free"] == {"intValue": "0"}
    assert attrs["log.file.path"]["stringValue"].endswith("/logs/app.log")
    assert got[1][1] == "not json at all"


def test_multiline_records_join_until_the_next_start(run_agent, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "java.log").write_text(
        "2024-01-01 ERROR boom\n  at a.b(C.java:1)\n  at d.e(F.java:2)\n2024-01-01 INFO ok\n"
    )
    agent = run_agent(
        config(tmp_path / "data", logs, extra='multiline = { start = "^\\\\d{4}-", timeout = "300ms" }')
    )
    got = collect_until(agent, 2, 20)
    assert agent.stop() == 0
    assert [b for _, b, _ in got] == [
        "2024-01-01 ERROR boom\n  at a.b(C.java:1)\n  at d.e(F.java:2)",
        "2024-01-01 INFO ok",
    ]


def test_start_at_end_skips_existing_content_only_on_the_first_start(run_agent, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "old.log").write_text("old 1\nold 2\n")
    cfg = config(tmp_path / "data", logs).replace('start_at = "beginning"', 'start_at = "end"')
    agent = run_agent(cfg)
    assert agent.wait_stderr("tailing file", 10), agent.stderr_tail()
    with open(logs / "old.log", "a") as f:
        f.write("old 3\n")
    (logs / "new.log").write_text("new 1\n")
    got = collect_until(agent, 2, 20)
    assert agent.stop() == 0, agent.stderr_tail()
    assert sorted(b for _, b, _ in got) == ["new 1", "old 3"]
    # A restart resumes from the checkpoints: only what was written while it was down.
    with open(logs / "old.log", "a") as f:
        f.write("old 4\n")
    agent = run_agent(cfg)
    got = collect_until(agent, 1, 20)
    assert agent.stop() == 0, agent.stderr_tail()
    assert [b for _, b, _ in got] == ["old 4"]


def test_fs_events_deliver_without_waiting_for_polls_or_scans(run_agent, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("first\n")
    # Polls and scans 60 s apart: only file-system events can deliver within the deadlines.
    cfg = config(tmp_path / "data", logs).replace('scan_interval = "100ms"', 'scan_interval = "60s"')
    cfg = cfg.replace('poll_interval = "20ms"', 'poll_interval = "60s"')
    agent = run_agent(cfg)
    assert [b for _, b, _ in collect_until(agent, 1, 15)] == ["first"], agent.stderr_tail()
    t0 = time.monotonic()
    with open(logs / "a.log", "a") as f:
        f.write("second\n")
    assert [b for _, b, _ in collect_until(agent, 1, 5)] == ["second"]
    (logs / "b.log").write_text("third\n")
    assert [b for _, b, _ in collect_until(agent, 1, 5)] == ["third"]
    assert time.monotonic() - t0 < 10
    assert agent.stop() == 0, agent.stderr_tail()


def test_max_open_files_takes_turns_and_reads_everything(run_agent, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for k in range(6):
        (logs / f"f{k}.log").write_text("".join(f"f{k} {i}\n" for i in range(100)))
    agent = run_agent(config(tmp_path / "data", logs, extra="max_open_files = 2"))
    got = collect_until(agent, 600, 30)
    metrics = scrape(agent)
    assert agent.stop() == 0, agent.stderr_tail()
    assert metrics[("sonde_file_deferred_opens_total", None)] >= 4, metrics
    assert metrics[("sonde_file_open_files", None)] <= 2, metrics
    bodies = [b for _, b, _ in got]
    assert sorted(bodies) == sorted(f"f{k} {i}" for k in range(6) for i in range(100))
    for k in range(6):
        mine = [int(b.split()[1]) for b in bodies if b.startswith(f"f{k} ")]
        assert mine == sorted(mine), f"f{k} out of order"
