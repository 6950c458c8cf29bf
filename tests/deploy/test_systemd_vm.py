"""The Debian package under a real systemd, in a QEMU virtual machine: tests/deploy/systemd_vm.sh
(which boots Debian 12, installs the .deb with dpkg -i and runs tests/deploy/systemd_vm_check.sh
inside). Here it packages the suite's own build (the dev profile, $SONDE_BIN's target/debug).

Slow: the VM is emulated (TCG). Measured on the 2-core machine while other builds ran on it:
4-10 minutes with a cached VM image (~/.cache/sonde-vm), plus 4.5-5.5 minutes to build the
image the first time; the recipe this follows took about a minute per boot-check-poweroff cycle
on a quiet machine. Its own command is `bash tests/deploy/systemd_vm.sh`. Needs root;
SONDE_SKIP_VM_TEST=1 skips it."""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, sonde_bin


@pytest.mark.skipif(os.geteuid() != 0, reason="the VM test needs root (debootstrap, chroot, mkfs -d)")
@pytest.mark.skipif(os.environ.get("SONDE_SKIP_VM_TEST") == "1", reason="SONDE_SKIP_VM_TEST=1")
def test_the_debian_package_runs_under_a_real_systemd():
    packaged = Path(sonde_bin()).resolve() == (ROOT / "target" / "debug" / "sonde").resolve()
    assert packaged or os.environ.get("SONDE_VM_PROFILE"), (
        "the VM test packages target/debug/sonde; set SONDE_VM_PROFILE to package another profile"
    )
    profile = os.environ.get("SONDE_VM_PROFILE", "dev")
    r = subprocess.run(["bash", str(ROOT / "tests/deploy/systemd_vm.sh"), "--profile", profile],
                       capture_output=True, text=True, timeout=1500, cwd=ROOT)
    print(r.stdout[-6000:])
    failed = [l for l in r.stdout.splitlines() if l.startswith("FAIL:")]
    assert r.returncode == 0, "\n".join(failed) or (r.stdout[-4000:] + r.stderr[-4000:])
    assert "PASS: dpkg -i sonde.deb" in r.stdout and "FAILS=0" in r.stdout
