#!/usr/bin/env bash
# Builds (once) the Debian 12 virtual machine image the systemd test boots: a debootstrap
# `minbase` root with systemd as PID 1, the packages Sonde's .deb and the checks need (adduser,
# procps for /bin/kill, curl as the OTLP client inside the guest), a kernel with a small
# initramfs, and `vmtest.service`, which runs /payload/run.sh (a 9p share from the host) once
# after boot, writes its output to the second serial port and powers the machine off.
# The recipe and its pitfalls: shared/systemd-vm.md.
#
# The image is cached outside the work tree, keyed by this script's hash:
#   ${SONDE_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sonde-vm}/<hash>/{vmlinuz,initrd.img,img.ext4}
# Prints that directory on the last line of stdout. Needs root and debootstrap; reaches only
# Debian's package archive (deb.debian.org) while building. The guest itself gets no network.
set -euo pipefail

cache=${SONDE_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sonde-vm}
hash=$(sha256sum "$0" | cut -c1-16)
out=$cache/$hash
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -s "$out/img.ext4" ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
    echo "vm image: cached" >&2
    echo "$out"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "vm_image.sh: needs root (debootstrap, chroot, mkfs.ext4 -d)" >&2; exit 1; }
command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}
work=$(mktemp -d "$cache/build.XXXXXX")
cleanup() {
    for m in proc dev sys; do umount "$work/root/$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
start=$(date +%s)
cd "$work"
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,udev,procps,adduser,curl \
    bookworm root http://deb.debian.org/debian > debootstrap.log 2>&1 || {
    tail -20 debootstrap.log >&2
    exit 1
}
echo svm > root/etc/hostname
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\npayload /payload 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0\n' > root/etc/fstab
mkdir -p root/payload root/etc/initramfs-tools/conf.d
# A small initramfs (only what finds the root disk): a faster install and about 3 s less boot.
echo MODULES=list > root/etc/initramfs-tools/conf.d/modules-list
printf 'virtio_pci\nvirtio_blk\next4\n' > root/etc/initramfs-tools/modules
cat > root/etc/systemd/system/vmtest.service <<'UNIT'
[Unit]
Description=Run /payload/run.sh once after boot, then power off
After=multi-user.target
RequiresMountsFor=/payload
SuccessAction=poweroff
FailureAction=poweroff

[Service]
# Type=simple, not oneshot: the start job ends at once, so `systemctl is-system-running --wait`
# inside run.sh can answer "running".
Type=simple
ExecStart=/bin/sh -c 'stty -F /dev/ttyS1 raw -echo 2>/dev/null; /bin/sh /payload/run.sh >/dev/ttyS1 2>&1; echo "VMTEST-RC=$?" >/dev/ttyS1'
RuntimeMaxSec=1200

[Install]
WantedBy=multi-user.target
UNIT
systemctl --root=root enable vmtest.service >/dev/null 2>&1
mount -t proc proc root/proc
mount --bind /dev root/dev
mount -t sysfs sys root/sys
chroot root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    linux-image-amd64 initramfs-tools > kernel.log 2>&1 || { tail -20 kernel.log >&2; exit 1; }
chroot root apt-get clean
rm -rf root/var/lib/apt/lists/*
for m in proc dev sys; do umount "root/$m"; done
cp root/boot/vmlinuz-*-amd64 vmlinuz
cp root/boot/initrd.img-*-amd64 initrd.img
# A whole-disk ext4 with no partition table: the kernel is given with -kernel/-initrd.
mkfs.ext4 -q -F -L root -d root img.ext4 2G
mkdir -p "$out.tmp"
mv vmlinuz initrd.img img.ext4 "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
# Images of earlier versions of this script are not used again.
find "$cache" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}' \
    ! -name "$hash" -exec rm -rf {} +
echo "vm image: built in $(( $(date +%s) - start )) s" >&2
echo "$out"
