"""The command line: validate, print-config, version/help, the embedded default, and shutdown."""

import signal
import time

from conftest import run_cli, Agent, sonde_bin


GOOD = """
[sources.host]
type = "host_metrics"
interval = "5s"

[exporters.out]
type = "stdout"
"""

BAD = """
[sources.host]
type = "host_metrics"
interval = "soon"
colectors = ["cpu"]

[exporters.out]
type = "stdout"
inputs = ["nope"]
"""


def test_validate_accepts_a_valid_file(tmp_path):
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    r = run_cli("validate", "--config", str(f))
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout


def test_validate_lists_every_problem_with_position(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(BAD)
    r = run_cli("validate", "--config", str(f))
    assert r.returncode == 1
    err = r.stderr
    assert f"{f}:4:1: `sources.host.interval`" in err, err
    assert f"{f}:9:11: `exporters.out.inputs[0]`" in err, err
    assert "3 problems" in err, err


def test_validate_names_an_unreadable_file(tmp_path):
    r = run_cli("validate", "--config", str(tmp_path / "missing.toml"))
    assert r.returncode == 1
    assert "missing.toml" in r.stderr


def test_print_config_fills_defaults_and_is_valid_again(tmp_path):
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    r = run_cli("print-config", "--config", str(f))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for needle in ('interval = "5s"', "max_items = 8192", 'when_full = "block"', 'shutdown_timeout = "10s"'):
        assert needle in out, out
    again = tmp_path / "again.toml"
    again.write_text(out)
    assert run_cli("validate", "--config", str(again)).returncode == 0


def test_version_and_help():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("sonde ")
    r = run_cli("--help")
    assert r.returncode == 0
    for word in ("run", "validate", "print-config", "--config"):
        assert word in r.stdout


def test_embedded_default_shows_host_metrics_within_seconds(tmp_path):
    # No --config and (on a test machine) no /etc/sonde/sonde.toml: the embedded default runs.
    # Ports 4317/4318 may be taken on a shared machine: the default interpolates these.
    agent = Agent(
        [],
        env={
            "SONDE_DATA_DIR": str(tmp_path),
            "SONDE_OTLP_GRPC": "127.0.0.1:0",
            "SONDE_OTLP_HTTP": "127.0.0.1:0",
        },
    )
    try:
        seen = []
        for line in agent.lines(timeout=10):
            seen.append(line)
            if any("system.memory.usage" in l for l in seen) and any("system.cpu.time" in l for l in seen):
                break
        assert any("system.memory.usage{system.memory.state=used}" in l for l in seen), seen[:20]
        assert agent.stop() == 0
    finally:
        agent.kill()


def test_sigterm_flushes_the_pending_batch_and_exits_zero(run_agent, tmp_path):
    # The batch would wait an hour: only the shutdown flush can print it.
    agent = run_agent(
        f"""
[agent]
data_dir = "{tmp_path}"
shutdown_timeout = "5s"
[sources.host]
type = "host_metrics"
interval = "1h"
[exporters.out]
type = "stdout"
format = "json"
batch = {{ max_age = "1h" }}
""",
        env={"SONDE_LOG": "debug"},
    )
    assert agent.wait_stderr("sample sent", timeout=15), agent.stderr_tail()
    assert not agent.stdout_lines
    started = time.monotonic()
    assert agent.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - started < 6
    out = agent.rest_of_stdout()
    assert any("system.memory.usage" in l for l in out), (out, agent.stderr_tail())


def test_sigint_is_graceful_too(run_agent, tmp_path):
    agent = run_agent(GOOD)
    assert agent.wait_stderr("sonde started", timeout=10), agent.stderr_tail()
    assert agent.stop(signal.SIGINT) == 0
    assert agent.wait_stderr("sonde stopped", timeout=5)


def test_a_closed_stdout_drops_and_counts_without_holding_up_shutdown(tmp_path):
    # `sonde run | head`: the reader goes away. The stdout exporter cannot recover from that,
    # so each batch is dropped and counted (not retried until the shutdown deadline), the log
    # says so once per 10 s, and SIGTERM stops the agent at once.
    import json
    import os
    import subprocess
    import urllib.request

    cfg = tmp_path / "sonde.toml"
    cfg.write_text(
        f"""
[agent]
data_dir = "{tmp_path}"
shutdown_timeout = "10s"
[sources.host]
type = "host_metrics"
interval = "1s"
[exporters.out]
type = "stdout"
batch = {{ max_age = "100ms" }}
"""
    )
    err_path = tmp_path / "stderr.log"
    env = dict(os.environ, SONDE_LOG="info", SONDE_ADMIN="127.0.0.1:0")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sonde_bin(), "run", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    proc.stdout.close()  # the reader is gone before the first line
    try:
        def log():
            return [json.loads(l) for l in err_path.read_text().splitlines() if l.startswith("{")]

        deadline = time.monotonic() + 15
        dropped = []
        while time.monotonic() < deadline:
            dropped = [l for l in log() if l.get("message") == "export refused for good; batch dropped"]
            if dropped:
                break
            time.sleep(0.2)
        assert dropped, err_path.read_text()[-3000:]
        assert dropped[0]["error"].startswith("stdout is closed"), dropped[0]
        # Two more samples' batches go the same way, counted but not logged again.
        time.sleep(2.5)
        assert len([l for l in log() if l.get("message") == "export refused for good; batch dropped"]) == 1
        admin = next(l["address"] for l in log() if l.get("message") == "admin server listening")
        text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
        rejected = [
            float(l.rsplit(" ", 1)[1])
            for l in text.splitlines()
            if l.startswith("sonde_exporter_dropped_items_total{") and 'reason="rejected"' in l
        ]
        assert rejected and sum(rejected) > 0, text
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 3, "nothing was left waiting for a closed stdout"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_stop_with_a_stdout_nobody_reads_exits(tmp_path):
    """A stdout exporter blocked on a full pipe must not keep the process alive after SIGTERM
    (the blocking write used to hold the runtime's shutdown forever)."""
    import subprocess

    cfg = tmp_path / "pipe.toml"
    cfg.write_text(
        f'[agent]\ndata_dir = "{tmp_path}"\nadmin = "off"\nshutdown_timeout = "2s"\n'
        '[sources.h]\ntype = "host_metrics"\ninterval = "100ms"\n'
        '[exporters.out]\ntype = "stdout"\nformat = "json"\n'
    )
    proc = subprocess.Popen(
        [sonde_bin(), "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,  # never read: the pipe fills
        stderr=subprocess.DEVNULL,
    )
    try:
        # Wait until the pipe is full: the agent keeps running, its writes blocked.
        time.sleep(6)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
