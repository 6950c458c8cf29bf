"""Support for Sonde's end-to-end tests: run the real binary with a temp config, read what it
prints, stop it by PID. Everything binds to loopback and every wait has a deadline."""

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def sonde_bin() -> str:
    path = os.environ.get("SONDE_BIN") or str(ROOT / "target" / "debug" / "sonde")
    if not Path(path).exists():
        pytest.fail(f"sonde binary not found at {path}: run `cargo build` first (tests/run.sh does)")
    return path


class Agent:
    """A running `sonde` process whose stdout and stderr lines are collected in the background."""

    def __init__(self, args, env=None, cwd=None):
        full_env = dict(os.environ)
        full_env.setdefault("SONDE_LOG", "info")
        # Tests run side by side: let the OS pick the admin port (the agent logs it).
        full_env.setdefault("SONDE_ADMIN", "127.0.0.1:0")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sonde_bin(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
        )
        self.stdout: "queue.Queue[str]" = queue.Queue()
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout), daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for raw in iter(stream.readline, b""):
            q.put(raw.decode("utf-8", "replace").rstrip("\n"))
        q.put(None)

    def _pump_err(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def lines(self, timeout: float):
        """Yields stdout lines as they come, until `timeout` seconds have passed or stdout closes."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                line = self.stdout.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                return
            self.stdout_lines.append(line)
            yield line

    def wait_stderr(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in l for l in self.stderr_lines):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)
                return any(needle in l for l in self.stderr_lines)
            time.sleep(0.05)
        return False

    def admin_url(self, timeout: float = 10) -> str:
        """The admin server's base URL, read from the agent's 'admin server listening' log line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for l in self.stderr_lines:
                if "admin server listening" in l:
                    try:
                        addr = json.loads(l)["address"]
                    except (ValueError, KeyError):
                        addr = l.split("address=")[1].split()[0]
                    return f"http://{addr}"
            time.sleep(0.05)
        raise AssertionError(f"no admin address logged; stderr: {self.stderr_tail()}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError(f"sonde did not exit within {timeout}s of {sig!r}; stderr: {self.stderr_tail()}")

    def rest_of_stdout(self, timeout: float = 5) -> list[str]:
        return list(self.lines(timeout))

    def stderr_tail(self, n: int = 30) -> str:
        return "\n".join(self.stderr_lines[-n:])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def run_agent(tmp_path):
    """Starts `sonde run --config <tmp>/sonde.toml` with the given TOML; kills it at teardown."""
    agents = []

    def start(config_text: str, env=None, args=None) -> Agent:
        cfg = tmp_path / f"sonde-{len(agents)}.toml"
        cfg.write_text(config_text)
        agent = Agent(args or ["run", "--config", str(cfg)], env=env)
        agents.append(agent)
        return agent

    yield start
    for a in agents:
        a.kill()
    for a in agents:
        assert_log_lines_are_sound(a.stderr_lines)


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate keys {dupes}")
    return dict(pairs)


def assert_log_lines_are_sound(lines):
    """Every JSON log line the agent wrote is one JSON object with each key once (a field named
    like one the formatter writes itself, e.g. `message`, would repeat it, and most log stores
    keep only one of the two)."""
    for l in lines:
        if l.startswith("{"):
            try:
                json.loads(l, object_pairs_hook=_no_duplicate_keys)
            except ValueError as e:
                raise AssertionError(f"bad JSON log line ({e}): {l}") from None


def run_cli(*args, env=None, timeout=30) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sonde_bin(), *args], capture_output=True, text=True, timeout=timeout, env=full_env
    )


def json_lines(lines):
    for l in lines:
        l = l.strip()
        if l.startswith("{"):
            yield json.loads(l)


def free_port() -> int:
    """A free TCP port on loopback (for a peer or a listener the test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(cond, timeout, what, interval=0.1):
    """Calls `cond` until it returns something true (which is returned) or `timeout` seconds
    passed (an AssertionError naming `what`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
