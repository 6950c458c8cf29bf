"""Packaging: the systemd unit, the Debian package, the container image and the Kubernetes
examples — linted by real tools and kept consistent with the binary's flags, ports and paths.
(No container engine runs here, so the image itself cannot be built in the tests.)"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cli, sonde_bin

PKG = ROOT / "packaging"
ADMIN_ROUTES = {"/metrics", "/health/live", "/health/ready", "/config"}


def validate_config_text(tmp_path, text, name="c.toml"):
    f = tmp_path / name
    f.write_text(text)
    r = run_cli("validate", "--config", str(f), env={"SONDE_HOST_ROOT": "/", "SONDE_INTERVAL": "10s"})
    assert r.returncode == 0, f"{name}: {r.stderr}"


def test_packaged_configs_are_valid(tmp_path):
    validate_config_text(tmp_path, (PKG / "sonde.toml").read_text(), "etc.toml")
    validate_config_text(tmp_path, (PKG / "container" / "sonde.toml").read_text(), "container.toml")


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.fail("systemd-analyze missing: tests/run.sh installs the Debian package `systemd`")
    # verify checks that the commands exist and the units it depends on load: lay the unit, the
    # binary, /bin/kill (ExecReload) and the system's own units out in a root.
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").mkdir(parents=True)
    shutil.copy(sonde_bin(), root / "usr/bin/sonde")
    shutil.copy(shutil.which("kill") or "/bin/kill", root / "bin/kill")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    unit = root / "etc/systemd/system/sonde.service"
    shutil.copy(PKG / "systemd" / "sonde.service", unit)
    r = subprocess.run([analyze, "verify", f"--root={root}", str(unit)], capture_output=True, text=True, timeout=60)
    # Messages about the host's own units are not ours: only lines naming sonde.service count.
    ours = [l for l in (r.stdout + r.stderr).splitlines() if "sonde.service" in l]
    assert r.returncode == 0 and not ours, r.stdout + r.stderr


def test_systemd_unit_has_the_promised_settings():
    unit = (PKG / "systemd" / "sonde.service").read_text()
    for line in [
        "Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=sonde", "ConfigurationDirectory=sonde",
        "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=", "PrivateTmp=yes", "CapabilityBoundingSet=",
        "SupplementaryGroups=adm systemd-journal", "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/bin/sonde run --config /etc/sonde/sonde.toml",
    ]:
        assert line in unit, line
    # The unit's data dir (StateDirectory) is the packaged config's data_dir.
    assert 'data_dir = "/var/lib/sonde"' in (PKG / "sonde.toml").read_text()


def test_dockerfile_passes_hadolint_and_matches_the_binary():
    dockerfile = PKG / "container" / "Dockerfile"
    hadolint = shutil.which("hadolint") or str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "hadolint")
    r = subprocess.run([hadolint, "--failure-threshold", "warning", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    text = dockerfile.read_text()
    assert re.search(r"^EXPOSE 4317 4318 13133$", text, re.M)
    assert re.search(r"^USER 10001:10001$", text, re.M), "runs as non-root"
    assert "/health/ready" in text and '"/usr/bin/sonde", "health"' in text
    assert "COPY packaging/container/sonde.toml /etc/sonde/sonde.toml" in text
    # The flags the image uses exist.
    assert run_cli("health", "--help").returncode == 0
    assert "--admin" in run_cli("--help").stdout


def k8s_docs():
    for f in sorted((PKG / "kubernetes").glob("*.yaml")):
        yield f, list(yaml.safe_load_all(f.read_text()))


def test_kubernetes_manifests_validate_against_the_schemas():
    import kubernetes_validate

    for f, docs in k8s_docs():
        for d in docs:
            kubernetes_validate.validate(d, "1.30", strict=True)


def test_kubernetes_examples_are_consistent_with_the_binary(tmp_path):
    ports_expected = {"otlp-grpc": 4317, "otlp-http": 4318}
    for f, docs in k8s_docs():
        configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        workloads = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]
        assert workloads, f
        for cm in configmaps.values():
            validate_config_text(tmp_path, cm["data"]["sonde.toml"], f"{f.stem}.toml")
        for w in workloads:
            spec = w["spec"]["template"]["spec"]
            (sonde,) = [c for c in spec["containers"] if c["name"] == "sonde"]
            assert sonde["args"] == ["run", "--config", "/etc/sonde/sonde.toml"]
            mounts = {m["mountPath"]: m for m in sonde["volumeMounts"]}
            assert "/etc/sonde" in mounts and "/var/lib/sonde" in mounts
            ports = {p["name"]: p["containerPort"] for p in sonde["ports"]}
            for name, port in ports_expected.items():
                assert ports.get(name) == port, (f, ports)
            for probe in ("livenessProbe", "readinessProbe"):
                p = sonde[probe]
                path = p["httpGet"]["path"] if "httpGet" in p else p["exec"]["command"][-1].split("13133")[-1]
                assert path in ADMIN_ROUTES, (f, probe, path)
            volumes = {v["name"]: v for v in spec["volumes"]}
            cm_name = next(v["configMap"]["name"] for v in volumes.values() if "configMap" in v)
            assert cm_name in configmaps
        if any(d["kind"] == "DaemonSet" for d in docs):
            ds = next(d for d in docs if d["kind"] == "DaemonSet")
            spec = ds["spec"]["template"]["spec"]
            assert spec["hostNetwork"] and spec["hostPID"]
            cm = yaml.safe_load(yaml.safe_dump(configmaps))  # copy
            text = next(iter(cm.values()))["data"]["sonde.toml"]
            assert 'root_path = "/hostfs"' in text
            # Container logs: the kubelet's layout, read in the CRI format from the mounted /var/log.
            assert 'include = ["/var/log/pods/*/*/*.log"]' in text and 'format = "cri"' in text
            varlog = next(m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == "/var/log")
            host = next(v for v in spec["volumes"] if v["name"] == varlog["name"])
            assert host["hostPath"]["path"] == "/var/log"
            assert any(m["mountPath"] == "/hostfs" for m in spec["containers"][0]["volumeMounts"])


def cargo_deb():
    for cand in (shutil.which("cargo-deb"), str(ROOT / ".tools" / "bin" / "cargo-deb")):
        if cand and Path(cand).exists():
            return cand
    pytest.fail("cargo-deb missing: tests/run.sh installs it into .tools/")


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb") / "sonde.deb"
    # The test suite builds the dev profile only; packaging that binary keeps CI short. A release
    # package is `cargo deb -p sonde --profile dist`.
    r = subprocess.run(
        [cargo_deb(), "deb", "-p", "sonde", "--no-build", "--profile", "dev", "--no-strip", "--fast", "-o", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def test_debian_package_contents_and_maintainer_scripts(deb, tmp_path):
    contents = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ("./usr/bin/sonde", "./etc/sonde/sonde.toml", "./usr/lib/systemd/system/sonde.service",
                 "./usr/share/doc/sonde/copyright"):
        assert re.search(rf"\s{re.escape(path)}$", contents, re.M), (path, contents)
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: sonde" in info and "adduser" in info
    # A binary with packed relocations (agent/build.rs) needs glibc 2.36, which dpkg-shlibdeps
    # does not see (it is a version, not a symbol): the package must say it, or it installs
    # where the binary cannot start (Ubuntu 22.04's glibc 2.35, say).
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    versions = subprocess.run(["readelf", "-V", str(root / "usr/bin/sonde")], capture_output=True, text=True,
                              check=True).stdout
    depends = next(l for l in info.splitlines() if l.strip().startswith("Depends:"))
    if "GLIBC_ABI_DT_RELR" in versions:
        assert "libc6 (>= 2.36)" in depends, depends
    ctrl = tmp_path / "ctrl"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(ctrl)], check=True)
    assert (ctrl / "conffiles").read_text().split() == ["/etc/sonde/sonde.toml"]
    postinst = (ctrl / "postinst").read_text()
    assert "adduser --system" in postinst and "sonde" in postinst
    assert "systemctl" in postinst or "deb-systemd-helper" in postinst, "the unit is enabled on install"
    postrm = (ctrl / "postrm").read_text()
    assert 'if [ "$1" = "purge" ]' in postrm
    for script in ("postinst", "postrm", "prerm"):
        r = subprocess.run(["sh", "-n", str(ctrl / script)], capture_output=True, text=True)
        assert r.returncode == 0, (script, r.stderr)


def test_the_packaged_binary_runs_and_validates_the_packaged_config(deb, tmp_path):
    root = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    binary = root / "usr/bin/sonde"
    r = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("sonde 0.1.0")
    r = subprocess.run([str(binary), "validate", "--config", str(root / "etc/sonde/sonde.toml")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
