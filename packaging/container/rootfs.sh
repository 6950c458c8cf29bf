#!/usr/bin/env bash
# Lays out the container image's root file system in DEST from a built `sonde` binary: the
# binary (stripped), exactly the shared libraries it links (read from `ldd`) at the paths the
# dynamic loader looks for them, their Debian copyright files, the CA certificates (for TLS
# exporters), /etc/passwd and /etc/group with the non-root `sonde` user (10001:10001), an
# nsswitch.conf for name lookups, and the data directory /var/lib/sonde (owned by sonde, the
# image's volume). Mount points /proc, /sys, /dev and /tmp are empty directories.
#
# One script, so that both ways of building the image give the same tree:
#   - packaging/container/build.sh (buildah, no registry) runs it into a `FROM scratch`
#     container's mount;
#   - packaging/container/Dockerfile runs it in its build stage and copies the tree into
#     `FROM scratch`.
# The image's configuration file (/etc/sonde/sonde.toml) is added by each of them, as the one
# file users replace.
#
# Usage: rootfs.sh BINARY DEST        (as root: DEST's files are owned by root, the data dir by 10001)
# Needs: ldd (libc-bin), strip (binutils), dpkg-query, /etc/ssl/certs/ca-certificates.crt
# (ca-certificates) on the machine that builds — a Debian system of the release the binary was
# built on, since the libraries come from it.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BINARY DEST" >&2
    exit 2
fi
bin=$(readlink -f "$1")
dest=$2
uid=10001
gid=10001

for tool in ldd strip dpkg-query; do
    command -v "$tool" >/dev/null || { echo "rootfs.sh: $tool not found" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "rootfs.sh: $bin is not an executable" >&2; exit 1; }
certs=/etc/ssl/certs/ca-certificates.crt
[ -s "$certs" ] || { echo "rootfs.sh: $certs missing (install ca-certificates)" >&2; exit 1; }

mkdir -p "$dest"
cd "$dest"
install -d -m 0755 usr/bin etc/sonde etc/ssl/certs usr/share/doc/sonde var/lib proc sys dev
install -d -m 1777 tmp
install -d -m 0750 -o "$uid" -g "$gid" var/lib/sonde

# The binary, without symbols or line tables (a stripped dist binary is about a fifth of it).
strip -o usr/bin/sonde "$bin"
chmod 0755 usr/bin/sonde

# The libraries: each path `ldd` names, as a regular file at that path (the loader's built-in
# search path on Debian includes /lib/x86_64-linux-gnu, so no ld.so.cache is needed). linux-vdso
# is the kernel's and has no file.
libs=$(ldd "$bin" | awk '
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || { echo "rootfs.sh: ldd named no libraries for $bin" >&2; exit 1; }
if ldd "$bin" | grep -q "not found"; then
    echo "rootfs.sh: $bin links a library that is not installed:" >&2
    ldd "$bin" >&2
    exit 1
fi
for lib in $libs; do
    install -D -m 0755 "$(readlink -f "$lib")" ".$lib"
    # The Debian package that ships the library, and its licence next to it.
    pkg=$(dpkg-query -S "$lib" 2>/dev/null | head -n1 | cut -d: -f1) || true
    if [ -z "$pkg" ]; then
        pkg=$(dpkg-query -S "$(readlink -f "$lib")" 2>/dev/null | head -n1 | cut -d: -f1) || true
    fi
    if [ -n "$pkg" ] && [ -f "/usr/share/doc/$pkg/copyright" ]; then
        install -D -m 0644 "/usr/share/doc/$pkg/copyright" "usr/share/doc/$pkg/copyright"
    fi
done

install -m 0644 "$certs" etc/ssl/certs/ca-certificates.crt

here=$(dirname "$(readlink -f "$0")")
install -m 0644 "$here/../../LICENSE" usr/share/doc/sonde/LICENSE

printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nsonde:x:%s:%s:Sonde observability agent:/var/lib/sonde:/usr/sbin/nologin\n' \
    "$uid" "$gid" > etc/passwd
printf 'root:x:0:\nsonde:x:%s:\n' "$gid" > etc/group
# glibc's lookups (getaddrinfo for exporter endpoints): the files and DNS back ends are part of
# libc itself since glibc 2.34, so no libnss_* library is needed.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > etc/nsswitch.conf
chmod 0644 etc/passwd etc/group etc/nsswitch.conf
