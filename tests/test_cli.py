"""The command line: validate, print-config, version/help, the embedded default, and shutdown."""

import signal
import time

from conftest import run_cli, Agent


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
