"""End-to-end tests of the `journald` source with the real binary, on journal files written by
systemd's own systemd-journal-remote (an export-format stream in, a journal file out):

- live follow: entries appended to a file while Sonde runs, a new file (rotation), a file
  renamed to `…@….journal` (archiving, not read again) and a file deleted (vacuum) — every
  entry exactly once, with its fields mapped;
- kill -9 and restart on the same data_dir while entries keep being appended: nothing
  acknowledged is lost, duplicates only from what was in flight.
"""

import json
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Agent

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT = "0123456789abcdef0123456789abcdef"

if not Path(JOURNAL_REMOTE).exists():
    pytest.fail(f"{JOURNAL_REMOTE} is missing: apt-get install systemd-journal-remote (tests/run.sh does)")


def export_entry(tag: str, i: int, t_us: int) -> str:
    return (
        f"__REALTIME_TIMESTAMP={t_us}\n__MONOTONIC_TIMESTAMP={i + 1}\n_BOOT_ID={BOOT}\n"
        f"MESSAGE={tag} {i}\nPRIORITY={i % 7}\n_SYSTEMD_UNIT=app.service\n_PID={1000 + i}\n"
        f"_COMM=app\nCODE_LINE={i}\nSYSLOG_IDENTIFIER=app\n\n"
    )


def append(path: Path, tag: str, start: int, n: int):
    """Appends entries `tag start` … `tag start+n-1` to journal file `path` (created if absent)."""
    now = int(time.time() * 1_000_000)
    stream = "".join(export_entry(tag, i, now + i) for i in range(start, start + n))
    subprocess.run(
        [JOURNAL_REMOTE, f"--output={path}", "-"], input=stream.encode(), check=True, capture_output=True, timeout=60
    )


def config(data: Path, journal: Path, extra: str = "") -> str:
    return f"""
[agent]
data_dir = "{data}"

[sources.journal]
type = "journald"
directory = "{journal}"
start_at = "beginning"
poll_interval = "100ms"
checkpoint_interval = "100ms"
{extra}

[exporters.out]
type = "stdout"
format = "json"
batch = {{ max_age = "50ms" }}
"""


def records(line: str):
    try:
        req = json.loads(line)
    except ValueError:
        return []
    return [r for rl in req.get("resourceLogs", []) for sl in rl.get("scopeLogs", []) for r in sl.get("logRecords", [])]


def body(r) -> str:
    return r.get("body", {}).get("stringValue")


class Collector:
    """Collects the records an agent prints, in the background."""

    def __init__(self, agent: Agent):
        self.got = []
        self.thread = threading.Thread(
            target=lambda: [self.got.extend(records(l)) for l in agent.lines(timeout=300)], daemon=True
        )
        self.thread.start()

    def bodies(self):
        return [body(r) for r in list(self.got)]

    def wait_for(self, want: set, timeout: float = 15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if want <= set(self.bodies()):
                return
            time.sleep(0.05)
        missing = sorted(want - set(self.bodies()))
        pytest.fail(f"{len(missing)} entries missing after {timeout}s, e.g. {missing[:5]}")


def scrape(agent):
    """The agent's metrics from its admin /metrics: {(name, reason label or None): value}."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(agent.admin_url() + "/metrics", timeout=5).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, s.labels.get("reason"))
            out[key] = out.get(key, 0) + s.value
    return out


def names(tag, a, b):
    return {f"{tag} {i}" for i in range(a, b)}


def test_live_follow_rotation_archiving_and_vacuum(run_agent, tmp_path):
    journal = tmp_path / "journal"
    (journal / BOOT).mkdir(parents=True)
    a = journal / BOOT / "system.journal"
    append(a, "a", 0, 200)
    agent = run_agent(config(tmp_path / "data", journal))
    c = Collector(agent)
    c.wait_for(names("a", 0, 200))
    # Appended while Sonde runs: arrives within a second or so.
    t0 = time.monotonic()
    append(a, "a", 200, 50)
    c.wait_for(names("a", 200, 250), timeout=10)
    follow_latency = time.monotonic() - t0
    # Rotation: the file is archived (renamed) and a new one started.
    a.rename(journal / BOOT / "system@0000000000000001-0000000000000002.journal")
    b = journal / BOOT / "system.journal"
    append(b, "b", 0, 100)
    c.wait_for(names("b", 0, 100))
    # Vacuum: the archived file is deleted while the reader goes on with the new one.
    (journal / BOOT / "system@0000000000000001-0000000000000002.journal").unlink()
    append(b, "b", 100, 100)
    c.wait_for(names("b", 100, 200))
    time.sleep(0.5)
    bodies = c.bodies()
    assert len(bodies) == len(set(bodies)) == 450, f"{len(bodies)} records, {len(set(bodies))} distinct"
    # Each file's entries in order.
    a_seq = [int(x.split()[1]) for x in bodies if x.startswith("a ")]
    assert a_seq == sorted(a_seq)
    # The mapping.
    r = next(r for r in c.got if body(r) == "a 3")
    attrs = {x["key"]: x["value"] for x in r["attributes"]}
    assert r["severityNumber"] in ("SEVERITY_NUMBER_ERROR", 17), r
    assert r["severityText"] == "err"
    assert attrs["process.pid"] == {"intValue": "1003"} or attrs["process.pid"] == {"intValue": 1003}, attrs
    assert attrs["process.executable.name"] == {"stringValue": "app"}
    assert attrs["journald._systemd_unit"] == {"stringValue": "app.service"}
    assert attrs["journald.syslog_identifier"] == {"stringValue": "app"}
    assert int(r["timeUnixNano"]) == int(r["observedTimeUnixNano"]) > 0
    print(f"\nfollow latency (append with journal-remote to record printed): {follow_latency:.2f}s")
    assert follow_latency < 5
    m = scrape(agent)
    assert m[("sonde_journald_entries_total", None)] == 450, m
    assert m[("sonde_journald_open_files", None)] == 1, "the vacuumed file is closed"
    assert m[("sonde_journald_corrupt_files_total", None)] == 0
    assert m[("sonde_journald_read_bytes_total", None)] > 450 * 50


def test_a_damaged_file_is_skipped_from_the_damage_and_the_others_read(run_agent, tmp_path):
    journal = tmp_path / "journal"
    journal.mkdir()
    good, bad = journal / "good.journal", journal / "bad.journal"
    append(good, "g", 0, 100)
    src = tmp_path / "src.journal"
    append(src, "x", 0, 300)
    data = bytearray(src.read_bytes())
    # Cut the file in the middle of its objects (the header still announces all of them):
    # halfway to the last object (tail_object_offset).
    tail = int.from_bytes(data[136:144], "little")
    bad.write_bytes(bytes(data[: tail // 2]))
    agent = run_agent(config(tmp_path / "data", journal))
    c = Collector(agent)
    c.wait_for(names("g", 0, 100))
    assert agent.wait_stderr("journal file damaged", 10), agent.stderr_tail()
    line = next(l for l in agent.stderr_lines if "journal file damaged" in l)
    assert "bad.journal" in line, line
    # The live file keeps being read.
    append(good, "g", 100, 20)
    c.wait_for(names("g", 100, 120))
    x = [b for b in c.bodies() if b.startswith("x ")]
    assert len(x) < 300, "the damaged file is read only up to the damage"
    m = scrape(agent)
    assert m[("sonde_journald_corrupt_files_total", None)] == 1, m


def test_kill9_and_restart_lose_nothing(tmp_path):
    journal = tmp_path / "journal"
    journal.mkdir()
    cfg = tmp_path / "sonde.toml"
    cfg.write_text(config(tmp_path / "data", journal))
    agents, collectors = [], []

    def start():
        a = Agent(["run", "--config", str(cfg)])
        agents.append(a)
        collectors.append(Collector(a))
        assert a.wait_stderr("journald source starting", 10), a.stderr_tail()
        return a

    rng = random.Random(11)
    agent = start()
    written, kills, n_files = 0, 0, 0
    try:
        for round_ in range(8):
            # Appends to the current file; every other round starts a new file (rotation).
            if round_ % 2 == 0:
                n_files += 1
            path = journal / f"f{n_files}.journal"
            append(path, "k", written, 2000)
            written += 2000
            time.sleep(rng.uniform(0.0, 0.3))
            if round_ % 2 == 1:
                agent.proc.send_signal(signal.SIGKILL)
                agent.proc.wait(timeout=5)
                kills += 1
                agent = start()
        want = names("k", 0, written)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = {body(r) for c in collectors for r in list(c.got)}
            if want <= seen:
                break
            time.sleep(0.1)
        seen = [body(r) for c in collectors for r in list(c.got)]
        missing = want - set(seen)
        assert not missing, f"{len(missing)} entries lost, e.g. {sorted(missing)[:5]}"
        dups = len(seen) - len(set(seen))
        print(f"\njournald restart test: {written} entries, {kills} SIGKILLs, {dups} duplicates")
        assert kills == 4
        assert dups <= kills * 4000, dups
    finally:
        for a in agents:
            a.kill()
