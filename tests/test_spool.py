"""The disk buffer end to end with the real binary: a backlog left on disk is delivered after a
restart, in order, and its segments deleted; a damaged spool never stops the agent (it says what
it found and delivers the rest); a full disk pushes back and the agent recovers when space
returns.

Batches are written into a spool with `spool_tool` (agent/examples/spool_tool.rs), as an agent
with a down destination would have left them; `sonde` with a `stdout` exporter (OTLP/JSON) is
the destination that comes back up."""

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT

CONFIG = """
[agent]
data_dir = "{data}"
shutdown_timeout = "5s"

[sources.host]
type = "host_metrics"
interval = "{interval}"
collectors = ["memory"]

[exporters.out]
type = "stdout"
format = "json"
buffer = {{ type = "disk", max_size = "{max_size}" }}
batch = {{ max_age = "20ms", max_bytes = "256KiB" }}
"""


def tool(*args) -> str:
    path = os.environ.get("SPOOL_TOOL") or str(ROOT / "target" / "debug" / "examples" / "spool_tool")
    if not Path(path).exists():
        pytest.fail(f"{path} not found: run `cargo build --example spool_tool` (tests/run.sh does)")
    out = subprocess.run([path, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def segments(spool: Path):
    return sorted(spool.glob("*.seg"))


def log_ids(line: str):
    """The ids of the log records in one OTLP/JSON line (none for a metrics line)."""
    out = []
    for rl in json.loads(line).get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for r in sl.get("logRecords", []):
                body = r["body"]["stringValue"]
                out.append(int(body.split(" ")[0].removeprefix("id-")))
    return out


def collect_ids(agent, want: int, timeout: float):
    ids = []
    for line in agent.lines(timeout=timeout):
        if line.startswith("{"):
            ids.extend(log_ids(line))
        if len(ids) >= want:
            break
    return ids


def test_a_backlog_on_disk_is_delivered_in_order_after_a_restart(run_agent, tmp_path):
    data = tmp_path / "data"
    spool = data / "buffers" / "out"
    assert tool("write", spool, 0, 2000, 64 * 1024).strip() == "2000"
    backlog = segments(spool)
    assert len(backlog) > 2
    last_backlog_id = int(backlog[-1].stem)

    agent = run_agent(CONFIG.format(data=data, interval="1h", max_size="64MiB"))
    ids = collect_ids(agent, 2000, timeout=30)
    assert ids == list(range(2000)), f"got {len(ids)} ids; stderr: {agent.stderr_tail()}"
    assert agent.wait_stderr("disk buffer opened", 5), agent.stderr_tail()
    # Exported segments are deleted (the cursor is persisted first); poll with a deadline.
    deadline = time.monotonic() + 10
    while any(int(s.stem) <= last_backlog_id for s in segments(spool)):
        assert time.monotonic() < deadline, f"exported segments left: {segments(spool)}"
        time.sleep(0.05)
    assert agent.stop(signal.SIGTERM) == 0, agent.stderr_tail()
    assert (spool / "cursor").exists()

    # A second start sends nothing again.
    agent = run_agent(CONFIG.format(data=data, interval="1h", max_size="64MiB"))
    assert agent.wait_stderr("disk buffer opened", 10), agent.stderr_tail()
    got = []
    for line in agent.lines(timeout=2):
        if line.startswith("{"):
            got.extend(log_ids(line))
    assert got == [], "exported batches were sent again"
    assert agent.stop(signal.SIGTERM) == 0


def test_a_damaged_spool_is_reported_and_the_rest_delivered(run_agent, tmp_path):
    data = tmp_path / "data"
    spool = data / "buffers" / "out"
    tool("write", spool, 0, 300, 16 * 1024)
    segs = segments(spool)
    assert len(segs) >= 3
    per_seg = [len(tool("frames", s).splitlines()) for s in segs]
    # One flipped byte in the fourth record of the first segment.
    offset, _ = map(int, tool("frames", segs[0]).splitlines()[3].split())
    with open(segs[0], "r+b") as f:
        f.seek(offset + 40)
        b = f.read(1)
        f.seek(offset + 40)
        f.write(bytes([b[0] ^ 0xFF]))
    # The second segment: all zeros.
    segs[1].write_bytes(b"\0" * segs[1].stat().st_size)
    # And a cursor that is garbage.
    (spool / "cursor").write_bytes(b"not a cursor at all, clearly")

    lost = {3} | set(range(per_seg[0], per_seg[0] + per_seg[1]))
    want = [i for i in range(300) if i not in lost]
    agent = run_agent(CONFIG.format(data=data, interval="1h", max_size="64MiB"))
    ids = collect_ids(agent, len(want), timeout=30)
    assert ids == want, f"stderr: {agent.stderr_tail()}"
    assert agent.wait_stderr("spool cursor unusable", 5), agent.stderr_tail()
    damaged = [json.loads(l) for l in agent.stderr_lines if "damaged spool data skipped" in l]
    assert len(damaged) == 2, agent.stderr_tail()
    reasons = sorted(d["reason"] for d in damaged)
    assert reasons == ["bad_crc", "bad_frame"], damaged
    assert {Path(d["file"]).name for d in damaged} == {segs[0].name, segs[1].name}
    assert agent.proc.poll() is None, "the agent keeps running"
    assert agent.stop(signal.SIGTERM) == 0


def fill(path: Path):
    """Writes to `path` until the file system is full."""
    chunk = b"\0" * 65536
    with open(path, "wb") as f:
        try:
            for _ in range(100_000):
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            return
    pytest.fail("the file system never filled")


def test_a_full_disk_pushes_back_and_the_agent_recovers(run_agent, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        agent = run_agent(CONFIG.format(data=mnt, interval="200ms", max_size="1MiB"))
        first = next((l for l in agent.lines(timeout=20) if l.startswith("{")), None)
        assert first, f"no metrics before the disk filled; stderr: {agent.stderr_tail()}"
        fill(mnt / "filler")
        assert agent.wait_stderr("disk full", 20), agent.stderr_tail()
        assert agent.wait_stderr("buffers full; sample dropped", 10), agent.stderr_tail()
        assert agent.proc.poll() is None, "the agent keeps running on a full disk"
        (mnt / "filler").unlink()
        # Appends resume: fresh scrapes come out again.
        resumed = 0
        for line in agent.lines(timeout=20):
            if line.startswith("{") and "resourceMetrics" in line:
                resumed += 1
                if resumed >= 5:
                    break
        assert resumed >= 5, f"no recovery after space returned; stderr: {agent.stderr_tail()}"
        assert agent.stop(signal.SIGTERM) == 0, agent.stderr_tail()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_the_agent_starts_again_after_kill_9(run_agent, tmp_path):
    data = tmp_path / "data"
    config = CONFIG.format(data=data, interval="100ms", max_size="64MiB")
    for _ in range(3):
        agent = run_agent(config)
        seen = 0
        for line in agent.lines(timeout=20):
            if '"resourceMetrics"' in line:
                seen += 1
                if seen >= 3:
                    break
        assert seen >= 3, agent.stderr_tail()
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(timeout=5)
    spool = data / "buffers" / "out"
    assert (spool / "cursor").exists() and segments(spool)
    agent = run_agent(config)
    assert agent.wait_stderr("disk buffer opened", 10), agent.stderr_tail()
    assert next((l for l in agent.lines(timeout=20) if '"resourceMetrics"' in l), None), agent.stderr_tail()
    assert agent.stop(signal.SIGTERM) == 0, agent.stderr_tail()


def test_a_second_agent_on_the_same_data_dir_is_refused(run_agent, tmp_path):
    data = tmp_path / "data"
    config = CONFIG.format(data=data, interval="1h", max_size="64MiB")
    first = run_agent(config)
    assert first.wait_stderr("disk buffer opened", 10), first.stderr_tail()
    second = run_agent(config)
    assert second.proc.wait(timeout=20) == 1
    assert second.wait_stderr("in use by another process", 5), second.stderr_tail()
    assert first.proc.poll() is None
    assert first.stop(signal.SIGTERM) == 0
