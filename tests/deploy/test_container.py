"""Sonde's container image, built for real with packaging/container/build.sh (buildah, no
registry) and run as a container runtime would run it (tests/deploy/container.py: `unshare` +
`chroot` into the image's root, read-only, a volume on /var/lib/sonde, the image's own user,
entry point and environment): it starts as the non-root user on a read-only root, its health
check passes, an OpenTelemetry SDK client outside reaches it on loopback, SIGTERM stops it within
`shutdown_timeout`, and a disk buffer it leaves on its volume is delivered by the next start.
Also: the Dockerfile's final stage, built by buildah, gives the same files and settings.

The image holds the binary under test ($SONDE_BIN, the debug build in the suite; set
SONDE_IMAGE_BIN=target/dist/sonde for the shipped size and footprint). Needs root and buildah
(tests/run.sh installs it); skipped otherwise, saying which is missing."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import ROOT, free_port, sonde_bin  # noqa: E402
import container as ct  # noqa: E402

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="building and running the image needs root (unshare, mount, chroot)"),
    pytest.mark.skipif(not ct.have_buildah(), reason="buildah not installed (apt-get install buildah; tests/run.sh does)"),
]

SHUTDOWN_TIMEOUT = 10.0  # the agent's default `shutdown_timeout`; the image's config leaves it so


@pytest.fixture(scope="module")
def image():
    binary = os.environ.get("SONDE_IMAGE_BIN") or sonde_bin()
    img = ct.build_image(binary, f"localhost/sonde-test:{os.getpid()}")
    mounted = ct.Mounted(img.id)
    yield img, mounted
    mounted.close()
    ct.remove_image(img.id)


@pytest.fixture
def containers():
    started = []
    yield started
    for c in started:
        c.kill()


def volume(tmp_path: Path, uid: int, gid: int) -> Path:
    """A host directory for /var/lib/sonde, owned by the image's user (as a runtime initialises a
    new volume from the image's directory)."""
    v = tmp_path / "volume"
    v.mkdir()
    os.chown(v, uid, gid)
    v.chmod(0o750)
    return v


def loopback_ports() -> dict:
    """The image's config binds 0.0.0.0; the tests keep to loopback, through the variables the
    config reads."""
    return {
        "SONDE_OTLP_GRPC": f"127.0.0.1:{free_port()}",
        "SONDE_OTLP_HTTP": f"127.0.0.1:{free_port()}",
        "SONDE_ADMIN": f"127.0.0.1:{free_port()}",
    }


def test_the_image_holds_the_binary_its_libraries_and_a_non_root_user(image):
    img, mounted = image
    files = ct.tree(mounted.root)
    binary = mounted.root / "usr/bin/sonde"
    # Exactly the libraries the binary links, each at the path the loader resolves it to.
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    wanted = set(re.findall(r"=> (/\S+)", ldd)) | set(re.findall(r"^\s*(/\S+) \(", ldd, re.M))
    libs = {p for p, v in files.items() if v[0] == "file" and ".so" in p}
    assert libs == wanted, (libs, wanted)
    executables = {p for p, v in files.items() if v[0] == "file" and int(v[-3], 8) & 0o111}
    assert executables == {"/usr/bin/sonde"} | wanted, executables
    assert "/etc/ssl/certs/ca-certificates.crt" in files
    assert (mounted.root / "etc/passwd").read_text().splitlines()[1].startswith("sonde:x:10001:10001:")
    assert "sonde:x:10001:" in (mounted.root / "etc/group").read_text()
    assert files["/var/lib/sonde"] == ("dir", "0o750", 10001, 10001)
    assert img.config["User"] == "10001:10001"
    assert set(img.config["ExposedPorts"]) == {"4317/tcp", "4318/tcp", "13133/tcp"}
    assert set(img.config["Volumes"]) == {"/var/lib/sonde"}
    size = sum(v[1] for v in files.values() if v[0] == "file")
    print(f"\nimage {img.id[:12]}: {size / 1e6:.1f} MB in {len(files)} paths, built in {img.build_seconds:.1f} s")
    for p in sorted(files):
        if files[p][0] == "file" and files[p][1] > 100_000:
            print(f"  {p}: {files[p][1] / 1e6:.2f} MB")


def test_the_agent_runs_as_its_user_on_a_read_only_root_and_answers_outside_clients(image, containers, tmp_path):
    img, mounted = image
    uid, gid = ct.user_of(img.config)
    env = loopback_ports()
    c = ct.Container(mounted.root, tmp_path / "mnt", volume(tmp_path, uid, gid), img.config, env)
    containers.append(c)
    admin = f"http://{env['SONDE_ADMIN']}"
    startup = ct.wait_ready(f"{admin}/health/ready", c.proc, timeout=30, started=c.started)

    st = c.status()
    assert st["Uid"].split() == [str(uid)] * 4 and st["Gid"].split() == [str(gid)] * 4, st
    assert st["Groups"].split() == [str(gid)], st["Groups"]
    assert st["CapEff"] == "0000000000000000", st["CapEff"]
    # PID 1 of its own PID namespace, like a container's entry point.
    assert st["NSpid"].split()[-1] == "1", st["NSpid"]
    mounts = {l.split()[4]: l.split()[5].split(",") for l in Path(f"/proc/{c.pid}/mountinfo").read_text().splitlines()}
    assert "ro" in mounts["/"], mounts["/"]
    assert "rw" in mounts["/var/lib/sonde"], mounts["/var/lib/sonde"]

    # The image's HEALTHCHECK, run inside the container (its mount and PID namespaces, root, user):
    # the command as written, with the admin port this test gave the agent.
    test = img.config["Healthcheck"]["Test"]
    assert test[0] == "CMD", test
    check = [a.replace("127.0.0.1:13133", env["SONDE_ADMIN"]) for a in test[1:]]
    r = c.exec_in(check)
    assert r.returncode == 0, (check, r.stdout, r.stderr)
    # ...and it fails when nothing answers, so the pass above means something.
    r = c.exec_in([a.replace(env["SONDE_ADMIN"], f"127.0.0.1:{free_port()}") for a in check])
    assert r.returncode != 0

    # A real OTLP client outside the container, over HTTP on loopback; the image's config prints
    # what it receives (stdout exporter, text).
    name = f"container-probe-{uuid.uuid4().hex[:12]}"
    send_span(f"http://{env['SONDE_OTLP_HTTP']}", name)
    assert wait_line(c, name, timeout=20), "the span never reached the agent's stdout"

    rss, _ = ct.rss_kib(c.pid)
    rc, took = c.stop(signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT + 5)
    assert rc == 0, c.proc.stderr.read().decode()[-3000:]
    assert took < SHUTDOWN_TIMEOUT + 1, f"took {took:.1f} s to stop"
    print(f"\ncontainer: ready {startup * 1000:.0f} ms after start, RSS {rss / 1024:.1f} MiB, stopped in {took:.2f} s")


def send_span(base: str, name: str):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tp = TracerProvider(resource=Resource.create({"service.name": "container-test"}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=10)))
    with tp.get_tracer("test").start_as_current_span(name):
        pass
    tp.shutdown()


def wait_line(c: ct.Container, needle: str, timeout: float) -> bool:
    """Reads the container's stdout until a line holds `needle` (deadline: `timeout`)."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(c.proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.2):
            continue
        chunk = os.read(c.proc.stdout.fileno(), 65536)
        if not chunk:
            return False
        buf = (buf + chunk)[-1_000_000:]
        if needle.encode() in buf:
            return True
    return False


def test_idle_rss_in_the_container_is_the_bare_binarys(image, containers, tmp_path):
    """The same file run bare on the host (its libraries are the host's, byte for byte the ones
    in the image) and in the container, side by side, idle: the resident sets agree."""
    img, mounted = image
    uid, gid = ct.user_of(img.config)
    env = loopback_ports()
    c = ct.Container(mounted.root, tmp_path / "mnt", volume(tmp_path, uid, gid), img.config, env)
    containers.append(c)
    cfg = tmp_path / "bare.toml"
    cfg.write_text((mounted.root / "etc/sonde/sonde.toml").read_text().replace(
        'data_dir = "/var/lib/sonde"', f'data_dir = "{tmp_path / "bare-data"}"'))
    benv = loopback_ports()
    bare = subprocess.Popen([str(mounted.root / "usr/bin/sonde"), "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env={"PATH": os.environ["PATH"], **benv})
    try:
        t_bare = time.monotonic()
        ready_c = ct.wait_ready(f"http://{env['SONDE_ADMIN']}/health/ready", c.proc, 30, c.started)
        ready_b = ct.wait_ready(f"http://{benv['SONDE_ADMIN']}/health/ready", bare, 30, t_bare)
        # Both have run their first host metrics scrape at start; let them settle.
        time.sleep(3)
        (rc, _), (rb, _) = ct.rss_kib(c.pid), ct.rss_kib(bare.pid)
    finally:
        bare.send_signal(signal.SIGTERM)
        bare.wait(timeout=15)
    print(f"\nidle RSS: container {rc / 1024:.1f} MiB (ready in {ready_c * 1000:.0f} ms), "
          f"bare {rb / 1024:.1f} MiB (ready in {ready_b * 1000:.0f} ms)")
    assert abs(rc - rb) <= max(2048, 0.1 * rb), (rc, rb)


DISK_CONFIG = """
[agent]
data_dir = "/var/lib/sonde"
shutdown_timeout = "{shutdown}s"

[sources.otlp]
type = "otlp"
grpc = "${{SONDE_OTLP_GRPC}}"
http = "${{SONDE_OTLP_HTTP}}"

[exporters.upstream]
type = "otlp"
protocol = "http/protobuf"
endpoint = "http://127.0.0.1:{port}"
buffer = {{ type = "disk", max_size = "64MiB" }}
batch = {{ max_age = "20ms" }}
"""


def test_sigterm_leaves_the_disk_buffer_on_the_volume_and_the_next_start_delivers_it(image, containers, tmp_path):
    """The destination is down: what the agent accepted waits in its disk buffer on the volume.
    SIGTERM stops it within shutdown_timeout; the segments stay on the volume, and a new
    container on the same volume delivers every span once the destination is up."""
    img, mounted = image
    uid, gid = ct.user_of(img.config)
    vol = volume(tmp_path, uid, gid)
    sink_grpc, sink_http = free_port(), free_port()
    cfg = tmp_path / "sonde.toml"
    cfg.write_text(DISK_CONFIG.format(shutdown=5, port=sink_http))
    cfg.chmod(0o644)

    env = loopback_ports()
    c = ct.Container(mounted.root, tmp_path / "mnt1", vol, img.config, env, config_file=cfg)
    containers.append(c)
    ct.wait_ready(f"http://{env['SONDE_ADMIN']}/health/ready", c.proc, timeout=30, started=c.started)
    names = [f"spooled-{i}-{uuid.uuid4().hex[:8]}" for i in range(20)]
    for n in names:
        send_span(f"http://{env['SONDE_OTLP_HTTP']}", n)
    spool = vol / "buffers" / "upstream"
    deadline = time.monotonic() + 10
    while not list(spool.glob("*.seg")):
        assert time.monotonic() < deadline, f"no disk buffer segment on the volume: {list(vol.rglob('*'))}"
        time.sleep(0.05)
    rc, took = c.stop(signal.SIGTERM, timeout=15)
    err = c.proc.stderr.read().decode()
    assert rc == 0, err[-3000:]
    # The worker's retry of the batch in flight holds the stop until shutdown_timeout; the batch
    # stays in the buffer. One second of slack for the process to exit after it.
    assert took < 5 + 1, f"took {took:.1f} s to stop (shutdown_timeout 5 s)\n{err[-3000:]}"
    print(f"\ndisk buffer run: stopped in {took:.2f} s (destination down, shutdown_timeout 5 s)")
    segs = sorted(spool.glob("*.seg"))
    assert segs and all(s.stat().st_uid == uid for s in segs), [(s, s.stat().st_uid) for s in segs]
    held = b"".join(s.read_bytes() for s in segs)
    assert all(n.encode() in held for n in names), "a span is missing from the segments on the volume"

    # The destination comes up; a new container on the same volume sends the backlog.
    out = tmp_path / "sink.jsonl"
    sink = subprocess.Popen([sys.executable, str(ROOT / "tests" / "otlp_sink.py"), "--grpc-port", str(sink_grpc),
                             "--http-port", str(sink_http), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert sink.stdout.readline().strip() == b"READY"
        env = loopback_ports()
        c2 = ct.Container(mounted.root, tmp_path / "mnt2", vol, img.config, env, config_file=cfg)
        containers.append(c2)
        got = set()
        deadline = time.monotonic() + 30
        while not set(names) <= got:
            assert time.monotonic() < deadline, f"delivered {len(got & set(names))} of {len(names)}"
            got = received_span_names(out)
            time.sleep(0.1)
        rc, _ = c2.stop(signal.SIGTERM, timeout=15)
        assert rc == 0
    finally:
        sink.send_signal(signal.SIGTERM)
        try:
            sink.wait(timeout=5)
        except subprocess.TimeoutExpired:
            sink.kill()
            sink.wait(timeout=5)


def received_span_names(out: Path) -> set:
    import base64
    import json

    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts

    names = set()
    if not out.exists():
        return names
    for line in out.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec["signal"] != "traces":
            continue
        req = ts.ExportTraceServiceRequest.FromString(base64.b64decode(rec["body"]))
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                names.update(s.name for s in ss.spans)
    return names


def dockerfile_final_stage() -> str:
    text = (ROOT / "packaging" / "container" / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)
    final = "FROM " + stages[-1]
    assert final.startswith("FROM scratch\n"), final[:80]
    # The build stage lays the tree out with rootfs.sh, as build.sh does.
    assert "bash packaging/container/rootfs.sh target/dist/sonde /rootfs" in stages[-2]
    return final


def test_the_dockerfile_final_stage_builds_the_same_image(image, tmp_path):
    """The Dockerfile's build stage needs a registry (rust:…-slim-bookworm); its final stage is
    built here by buildah from the tree rootfs.sh makes of the same binary, which is what the build
    stage's RUN makes. Files, owners, modes and settings must equal build.sh's image."""
    img, mounted = image
    binary = os.environ.get("SONDE_IMAGE_BIN") or sonde_bin()
    ctx = tmp_path / "ctx"
    (ctx / "packaging" / "container").mkdir(parents=True)
    subprocess.run(["bash", str(ROOT / "packaging/container/rootfs.sh"), binary, str(ctx / "rootfs")], check=True,
                   capture_output=True, timeout=300)
    shutil.copy(ROOT / "packaging/container/sonde.toml", ctx / "packaging/container/sonde.toml")
    (ctx / "Containerfile").write_text("FROM scratch AS build\nCOPY rootfs /rootfs\n\n" + dockerfile_final_stage())
    tag = f"localhost/sonde-dockerfile-test:{os.getpid()}"
    r = subprocess.run(["buildah", "bud", "--quiet", "--format", "docker", "--layers=false", "-f",
                        str(ctx / "Containerfile"), "-t", tag, str(ctx)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    other = None
    try:
        other = ct.Mounted(tag)
        ours, theirs = ct.tree(mounted.root), ct.tree(other.root)
        diff = {p: (ours.get(p), theirs.get(p)) for p in set(ours) | set(theirs) if ours.get(p) != theirs.get(p)}
        assert not diff, diff
        cfg = ct.inspect_config(tag)
        for key in ("User", "ExposedPorts", "Volumes", "Env", "Entrypoint", "Cmd", "Healthcheck"):
            assert cfg.get(key) == img.config.get(key), (key, cfg.get(key), img.config.get(key))
    finally:
        if other:
            other.close()
        ct.remove_image(tag)
