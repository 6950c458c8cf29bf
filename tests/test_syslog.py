"""Syslog source end to end: the real binary receives from util-linux `logger` (RFC 5424 and RFC
3164, UDP, TCP with octet counting and newline framing, a Unix socket) and from raw sockets, and
prints OTLP/JSON on stdout; the tests assert on the records and on /metrics.

- formats and transports: severity, facility, tag, pid, structured data and body of each;
- 10k messages over TCP (both framings): every one arrives, once;
- malformed and oversized messages arrive (with `syslog.parse_error` / `syslog.truncated`) and
  are counted;
- a stalled pipeline (stdout into a pipe nobody reads, a tiny buffer that blocks) holds a TCP
  sender back, and once the pipe is read every message arrives.
"""

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import Agent, json_lines, sonde_bin

LOGGER = shutil.which("logger")
if LOGGER is None:
    pytest.fail("util-linux `logger` is needed (tests/run.sh installs bsdutils)")

CONFIG = """
[agent]
data_dir = "{data}"
shutdown_timeout = "5s"

[sources.sys]
type = "syslog"
udp = "127.0.0.1:0"
tcp = "127.0.0.1:0"
unix = "{sock}"
max_message_size = "{max_size}"
{source_extra}

[exporters.out]
type = "stdout"
format = "json"
{exporter_extra}
"""


def config(tmp_path, max_size="8KiB", exporter_extra='batch = { max_age = "50ms" }', source_extra=""):
    return CONFIG.format(
        data=tmp_path / "data",
        sock=tmp_path / "log.sock",
        max_size=max_size,
        exporter_extra=exporter_extra,
        source_extra=source_extra,
    )


def listening(agent: Agent, timeout=15.0):
    """The (udp, tcp) ports the agent logged, once both listeners are bound."""
    deadline = time.monotonic() + timeout
    ports = {}
    while time.monotonic() < deadline and len(ports) < 2:
        for line in agent.stderr_lines:
            for proto in ("UDP", "TCP"):
                if f"syslog over {proto} listening" in line:
                    try:
                        addr = json.loads(line)["address"]
                    except (ValueError, KeyError):
                        addr = line.split("address=")[1].split()[0]
                    ports[proto] = int(addr.rsplit(":", 1)[1])
        if agent.proc.poll() is not None:
            break
        time.sleep(0.05)
    assert len(ports) == 2, f"listeners not bound; stderr: {agent.stderr_tail()}"
    return ports["UDP"], ports["TCP"]


def flatten(value):
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "boolValue" in value:
        return value["boolValue"]
    return value


def records(lines):
    for req in json_lines(lines):
        for rl in req.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                for r in sl.get("logRecords", []):
                    r["attrs"] = {a["key"]: flatten(a["value"]) for a in r.get("attributes", [])}
                    r["text"] = r.get("body", {}).get("stringValue")
                    yield r


def collect(agent: Agent, want: int, timeout=60.0):
    """Records from stdout until `want` came or the time is up."""
    out = []
    if want <= 0:
        time.sleep(timeout)
        return out
    for line in agent.lines(timeout):
        out.extend(records([line]))
        if len(out) >= want:
            break
    return out


def logger(*args, stdin=None):
    subprocess.run([LOGGER, *args], input=stdin, check=True, timeout=120, capture_output=True)


def metrics(agent: Agent) -> str:
    with urllib.request.urlopen(agent.admin_url() + "/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_logger_formats_over_udp_tcp_and_the_unix_socket(run_agent, tmp_path):
    agent = run_agent(config(tmp_path))
    udp, tcp = listening(agent)
    sock = str(tmp_path / "log.sock")
    net = ["-n", "127.0.0.1"]
    logger("--rfc5424", "-d", *net, "-P", str(udp), "-t", "app5424", "-p", "local3.warning",
           "--sd-id", "zoo@32473", "--sd-param", 'tiger="hungry"', "--msgid", "M1", "udp 5424")
    logger("--rfc3164", "-d", *net, "-P", str(udp), "-t", "app3164", "-p", "user.err", "udp 3164")
    logger("--rfc5424", "-T", "--octet-count", *net, "-P", str(tcp), "-t", "oc", "-i", "tcp octet-counted")
    logger("--rfc3164", "-T", *net, "-P", str(tcp), "-t", "nl", "-p", "daemon.debug", "tcp newline")
    logger("-u", sock, "--rfc3164", "-t", "local", "-p", "auth.crit", "unix 3164")
    logger("-u", sock, "--rfc5424", "-t", "local5424", "unix 5424")
    got = {r["text"]: r for r in collect(agent, 6)}
    assert set(got) == {"udp 5424", "udp 3164", "tcp octet-counted", "tcp newline", "unix 3164", "unix 5424"}

    r = got["udp 5424"]
    assert (r["severityNumber"], r["severityText"]) == (13, "warning")
    assert r["attrs"]["syslog.facility"] == 19
    assert r["attrs"]["syslog.version"] == 1
    assert r["attrs"]["syslog.appname"] == "app5424"
    assert r["attrs"]["syslog.msgid"] == "M1"
    assert r["attrs"]["syslog.structured_data.zoo@32473.tiger"] == "hungry"
    assert r["attrs"]["client.address"] == "127.0.0.1"
    assert int(r["timeUnixNano"]) > 0

    r = got["udp 3164"]
    assert (r["severityNumber"], r["severityText"], r["attrs"]["syslog.facility"]) == (17, "err", 1)
    assert r["attrs"]["syslog.appname"] == "app3164" and "syslog.hostname" in r["attrs"]
    # A BSD timestamp is read as UTC and has no year: within a day of now.
    assert abs(int(r["timeUnixNano"]) / 1e9 - time.time()) < 86400 + 60

    r = got["tcp octet-counted"]
    assert r["attrs"]["syslog.procid"] == str(int(r["attrs"]["syslog.procid"]))  # logger -i: a pid
    r = got["tcp newline"]
    assert (r["severityNumber"], r["attrs"]["syslog.facility"]) == (5, 3)
    r = got["unix 3164"]
    assert (r["severityText"], r["attrs"]["syslog.appname"]) == ("crit", "local")
    assert "client.address" not in r["attrs"]
    assert got["unix 5424"]["attrs"]["syslog.version"] == 1
    for r in got.values():
        assert "syslog.parse_error" not in r["attrs"], r

    m = metrics(agent)
    assert metric(m, "sonde_syslog_messages_total", transport="udp") == 2
    assert metric(m, "sonde_syslog_messages_total", transport="tcp") == 2
    assert metric(m, "sonde_syslog_messages_total", transport="unix") == 2
    assert agent.stop() == 0
    assert not (tmp_path / "log.sock").exists()


def test_ten_thousand_messages_over_tcp_all_arrive_once(run_agent, tmp_path):
    agent = run_agent(config(tmp_path))
    _, tcp = listening(agent)
    n = 10_000
    octet = "".join(f"octet {i}\n" for i in range(n)).encode()
    lines = "".join(f"line {i}\n" for i in range(n)).encode()
    net = ["-n", "127.0.0.1", "-P", str(tcp), "-T"]
    a = threading.Thread(target=logger, args=("--rfc5424", "--octet-count", *net), kwargs={"stdin": octet})
    b = threading.Thread(target=logger, args=("--rfc3164", *net), kwargs={"stdin": lines})
    a.start(), b.start()
    got = [r["text"] for r in collect(agent, 2 * n, timeout=120)]
    a.join(), b.join()
    want = [f"octet {i}" for i in range(n)] + [f"line {i}" for i in range(n)]
    assert len(got) == 2 * n, f"{len(got)} of {2 * n}"
    assert sorted(got) == sorted(want)
    m = metrics(agent)
    assert metric(m, "sonde_syslog_messages_total", transport="tcp") == 2 * n
    assert metric(m, "sonde_syslog_parse_errors_total") == 0


def test_malformed_and_oversized_messages_are_kept_and_counted(run_agent, tmp_path):
    agent = run_agent(config(tmp_path, max_size="1KiB"))
    udp, tcp = listening(agent)
    big = "<13>app: " + "x" * 3000
    with socket.create_connection(("127.0.0.1", tcp), timeout=5) as c:
        # Newline framing: garbage, an oversized line, a good one.
        c.sendall(b"this is not syslog\n" + big.encode() + b"\n<13>app: after\n")
    with socket.create_connection(("127.0.0.1", tcp), timeout=5) as c:
        # Octet counting: an oversized message, then one cut by the close.
        c.sendall(f"{len(big)} {big}".encode() + b"40 <13>app: cut short")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(b"<13>1 not-a-time host app - - - bad 5424", ("127.0.0.1", udp))
        u.sendto(big.encode(), ("127.0.0.1", udp))
    got = collect(agent, 7)
    by_text = {}
    for r in got:
        by_text.setdefault(r["text"][:20], []).append(r)
    assert len(got) == 7, [r["text"][:40] for r in got]
    assert by_text["this is not syslog"][0]["attrs"]["syslog.parse_error"] == "no <PRI> at the start"
    bad = by_text["<13>1 not-a-time hos"][0]
    assert bad["attrs"]["syslog.parse_error"] == "invalid RFC 5424 timestamp"
    assert bad["text"] == "<13>1 not-a-time host app - - - bad 5424"
    cut = [r for r in got if r["text"].startswith("xxx")]
    assert len(cut) == 3
    for r in cut:
        assert r["attrs"]["syslog.truncated"] is True and len(r["text"]) == 1024 - len("<13>app: ")
    assert by_text["after"][0]["attrs"]["syslog.appname"] == "app"
    assert by_text["cut short"][0]["attrs"]["syslog.truncated"] is True
    m = metrics(agent)
    assert metric(m, "sonde_syslog_parse_errors_total") == 2
    assert metric(m, "sonde_syslog_truncated_messages_total", reason="oversized") == 3
    assert metric(m, "sonde_syslog_truncated_messages_total", reason="incomplete") == 1
    assert metric(m, "sonde_source_received_items_total", source="sys") == 7


def test_a_stalled_pipeline_holds_a_tcp_sender_back_and_loses_nothing(tmp_path):
    cfg = tmp_path / "sonde.toml"
    cfg.write_text(
        config(
            tmp_path,
            exporter_extra='batch = { max_age = "50ms", max_bytes = "64KiB" }\n'
            'buffer = { max_size = "128KiB", when_full = "block" }',
        )
    )
    # Our own process (not conftest's Agent, which reads stdout at once): stdout is a pipe
    # nobody reads until the test decides to.
    env = dict(os.environ, SONDE_LOG="info", SONDE_ADMIN="127.0.0.1:0")
    proc = subprocess.Popen(
        [sonde_bin(), "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    stderr = []
    threading.Thread(target=lambda: stderr.extend(l.decode() for l in proc.stderr), daemon=True).start()
    try:
        deadline = time.monotonic() + 15
        tcp = None
        while tcp is None and time.monotonic() < deadline:
            for l in list(stderr):
                if "syslog over TCP listening" in l:
                    tcp = int(json.loads(l)["address"].rsplit(":", 1)[1])
            time.sleep(0.05)
        assert tcp, "".join(stderr[-20:])
        n = 100_000  # ~20 MB: more than the socket buffers, the pipe and the buffer hold
        payload = "".join(f"{i:0>190}\n" for i in range(n)).encode()
        sender = subprocess.Popen(
            [LOGGER, "--rfc5424", "-T", "--octet-count", "-n", "127.0.0.1", "-P", str(tcp), "-t", "s"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        feeder = threading.Thread(target=lambda: (sender.stdin.write(payload), sender.stdin.close()), daemon=True)
        feeder.start()
        time.sleep(3)
        assert sender.poll() is None, "the sender finished although nothing was read from the pipeline"
        # Now read the pipe: everything arrives and the sender finishes.
        seen = set()
        total = 0
        deadline = time.monotonic() + 180
        for line in proc.stdout:
            for r in records([line.decode()]):
                seen.add(r["text"])
                total += 1
            if len(seen) >= n or time.monotonic() > deadline:
                break
        assert sender.wait(timeout=30) == 0, sender.stderr.read()
        assert len(seen) == n, f"{len(seen)} of {n} distinct messages"
        assert total == n, f"{total - n} duplicates"
        assert not any("dropped" in l and "syslog" in l for l in stderr if '"level":"WARN"' in l)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"

RSYSLOG_CONF = """
global(workDirectory="{work}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{insock}" RateLimit.Interval="0")
*.* action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp" TCP_Framing="octet-counted"
           template="RSYSLOG_SyslogProtocol23Format" queue.type="LinkedList" queue.size="100000"
           action.resumeRetryCount="-1")
*.* action(type="omfwd" target="127.0.0.1" port="{udp}" protocol="udp" template="RSYSLOG_ForwardFormat")
"""


def test_rsyslog_forwards_over_tcp_and_udp(run_agent, tmp_path):
    if not os.path.exists(RSYSLOGD):
        pytest.fail("rsyslogd is needed (tests/run.sh installs the rsyslog package)")
    agent = run_agent(config(tmp_path))
    udp, tcp = listening(agent)
    work = tmp_path / "rsyslog"
    work.mkdir()
    insock = tmp_path / "rsyslog-in.sock"
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(work=work, insock=insock, tcp=tcp, udp=udp))
    relay = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslog.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not insock.exists():
            assert relay.poll() is None, relay.stderr.read().decode()
            assert time.monotonic() < deadline, "rsyslogd did not create its socket"
            time.sleep(0.05)
        n = 1000
        logger("-u", str(insock), "-t", "relayed", "-p", "local0.notice",
               stdin="".join(f"via rsyslog {i}\n" for i in range(n)).encode())
        # Each message once over TCP (RFC 5424) and once over UDP (RFC 3164 with an RFC 3339
        # time). UDP may lose datagrams when the socket's receive buffer overflows: those the
        # kernel dropped must be counted, so received + dropped accounts for every one.
        versions = {1: [], None: []}
        dropped = 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for r in collect(agent, 2 * n - len(versions[1]) - len(versions[None]), timeout=1):
                assert r["attrs"]["syslog.appname"] == "relayed", r
                assert r["severityText"] == "notice" and r["attrs"]["syslog.facility"] == 16
                assert "syslog.parse_error" not in r["attrs"] and "syslog.hostname" in r["attrs"]
                assert abs(int(r["timeUnixNano"]) / 1e9 - time.time()) < 120
                versions[r["attrs"].get("syslog.version")].append(r["text"])
            dropped = metric(metrics(agent), "sonde_source_dropped_items_total", reason="udp_receive_buffer")
            if len(versions[1]) == n and len(versions[None]) + dropped == n:
                break
        want = sorted(f"via rsyslog {i}" for i in range(n))
        # rsyslog's %msg% keeps the space after the BSD tag's colon; RFC 5424 makes it part of
        # the message, and the source keeps the message as sent.
        assert sorted(t.removeprefix(" ") for t in versions[1]) == want, "over TCP"
        assert all(t.startswith(" ") for t in versions[1])
        assert len(set(versions[None])) == len(versions[None]), "duplicates over UDP"
        assert set(versions[None]) <= set(want)
        assert len(versions[None]) + dropped == n, f"UDP: {len(versions[None])} received, {dropped} dropped"
    finally:
        relay.terminate()
        relay.wait(timeout=10)


def test_tls_octet_counted_messages_arrive_and_plaintext_is_refused(run_agent, tmp_path):
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    agent = run_agent(config(tmp_path, source_extra=f'tls = {{ cert_file = "{cert}", key_file = "{key}" }}'))
    _, tcp = listening(agent)
    assert any('"tls":true' in l or "tls=true" in l for l in agent.stderr_lines)
    # Plaintext on the TLS port: the handshake fails, the connection is counted as refused.
    with socket.create_connection(("127.0.0.1", tcp), timeout=5) as c:
        c.sendall(b"<13>1 - - - - - - plaintext\n")
        c.settimeout(5)
        try:
            while c.recv(4096):
                pass
        except OSError:
            pass
    ctx = ssl.create_default_context(cafile=str(cert))
    n = 100
    with socket.create_connection(("127.0.0.1", tcp), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as c:
            for i in range(n):
                m = f"<14>1 2026-12-07T10:00:00Z host tlsapp - - - over tls {i}".encode()
                c.sendall(str(len(m)).encode() + b" " + m)
    got = collect(agent, n)
    assert sorted(r["text"] for r in got) == sorted(f"over tls {i}" for i in range(n))
    assert all(r["attrs"]["syslog.appname"] == "tlsapp" for r in got)
    m = metrics(agent)
    assert metric(m, "sonde_syslog_refused_connections_total", reason="handshake") == 1
    assert not any("plaintext" in (r["text"] or "") for r in got)
