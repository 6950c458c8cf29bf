#!/usr/bin/env bash
# Sonde's Debian package under a real systemd: boots Debian 12 (systemd 252 as PID 1) in a QEMU
# virtual machine (software emulation: KVM is not usable on the project's machines), installs
# the .deb with `dpkg -i` and runs tests/deploy/systemd_vm_check.sh inside it: READY=1, reload,
# the watchdog, stop draining, the user and hardening in force, the journal, the
# `systemd-analyze security` score against peers' units, the idle footprint against a bare run.
# Prints the guest's check lines and a summary; exits non-zero when a check failed.
#
# Usage (as root, from the repository):
#   bash tests/deploy/systemd_vm.sh [--profile dev|release|dist] [--deb FILE]
#     --profile  which build to package (default: dev, the binary the test suite builds;
#                `release`/`dist` build it first with `cargo build`). The checks are the same;
#                the footprint figures only mean something for dist.
#     --deb      install this package instead of building one.
# The VM image is built once and cached (tests/deploy/vm_image.sh: ~/.cache/sonde-vm/<hash>).
# The guest has no network; everything it needs is in the image or the 9p share.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
profile=dev
deb=
while [ $# -gt 0 ]; do
    case $1 in
        --profile) profile=$2; shift 2 ;;
        --deb) deb=$2; shift 2 ;;
        *) echo "usage: $0 [--profile dev|release|dist] [--deb FILE]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "systemd_vm.sh: needs root (debootstrap, chroot)" >&2; exit 1; }
t_all=$(date +%s)

# QEMU from bookworm-backports: the machine's qemu-utils 10.0 (backports) breaks bookworm's
# qemu-system-x86 7.2 (shared/systemd-vm.md, pitfall 2).
if ! command -v qemu-system-x86_64 >/dev/null; then
    if [ ! -e /etc/apt/sources.list.d/bookworm-backports.sources ]; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            > /etc/apt/sources.list.d/bookworm-backports.sources
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports \
        qemu-system-x86 >/dev/null
fi

t0=$(date +%s)
img=$(bash tests/deploy/vm_image.sh | tail -n1)
echo "== vm image: $img ($(($(date +%s) - t0)) s)"

work=$(mktemp -d /tmp/sonde-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/payload/peer_units"
if [ -z "$deb" ]; then
    t0=$(date +%s)
    case $profile in
        dev) dir=debug ;;
        *) dir=$profile; nice -n 10 cargo build --profile "$profile" --locked --bin sonde ;;
    esac
    [ -x "target/$dir/sonde" ] || { echo "no target/$dir/sonde: cargo build first" >&2; exit 1; }
    cargo_deb=$(command -v cargo-deb || echo "$repo/.tools/bin/cargo-deb")
    [ -x "$cargo_deb" ] || cargo install --quiet --locked cargo-deb --version 3.8.0 --root .tools
    # Stripped (cargo-deb's default): the debug binary is ~350 MB with its debug info.
    "$cargo_deb" deb -p sonde --no-build --profile "$profile" --fast -o "$work/payload/sonde.deb" >/dev/null
    echo "== .deb ($profile): $(du -h "$work/payload/sonde.deb" | cut -f1) in $(($(date +%s) - t0)) s"
else
    cp "$deb" "$work/payload/sonde.deb"
fi
cp tests/deploy/systemd_vm_check.sh "$work/payload/run.sh"
cp tests/deploy/peer_units/*.service "$work/payload/peer_units/"

t0=$(date +%s)
# snapshot=on: the guest's writes go to a throw-away overlay; the cached image stays pristine.
timeout 1200 qemu-system-x86_64 -accel tcg -m 1024 -smp 1 \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1" \
    -drive "file=$img/img.ext4,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$work/payload,mount_tag=payload,security_model=none" \
    -nic none -display none -monitor none -no-reboot \
    -serial "file:$work/console.log" -serial "file:$work/results.log" || true
vm_s=$(($(date +%s) - t0))

tr -d '\r' < "$work/results.log" > "$work/results.txt" || true
cat "$work/results.txt"
pass=$(grep -c '^PASS:' "$work/results.txt" || true)
fail=$(grep -c '^FAIL:' "$work/results.txt" || true)
echo
echo "== summary"
grep '^FIGURE:' "$work/results.txt" | sed 's/^FIGURE: /  /' || true
echo "  vm run (qemu start to power-off): ${vm_s} s; whole script: $(($(date +%s) - t_all)) s"
if ! grep -q '^VMTEST-RC=0$' "$work/results.txt"; then
    echo "-- the guest's console (last 40 lines):"
    tail -n 40 "$work/console.log" | tr -d '\r'
    [ -n "${SONDE_VM_KEEP:-}" ] && { cp -r "$work" "$SONDE_VM_KEEP"; echo "kept in $SONDE_VM_KEEP"; }
    echo "systemd vm: $pass passed, $((fail > 0 ? fail : 1)) failed"
    exit 1
fi
echo "systemd vm: $pass passed, $fail failed"
