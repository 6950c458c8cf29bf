#!/usr/bin/env bash
# Builds Sonde's container image with buildah, without a container registry: `FROM scratch` plus
# the tree packaging/container/rootfs.sh lays out (the binary, exactly the shared libraries it
# links, CA certificates, a passwd/group with the non-root `sonde` user, the data volume) and the
# image's configuration file. The image's settings (user, ports, volume, health check, entry
# point) are those of packaging/container/Dockerfile, which builds the same tree for users with a
# registry; tests/deploy/test_container.py checks that the two agree.
#
# Usage (as root, from anywhere):
#   packaging/container/build.sh [--binary PATH] [--tag NAME] [--archive FILE]
#     --binary   the sonde binary to put in the image (default: target/dist/sonde, built with
#                `cargo build --profile dist --locked --bin sonde`)
#     --tag      the image name (default: localhost/sonde:VERSION, also tagged :latest)
#     --archive  also write the image as a docker-archive tarball (for `docker load` / `podman load`)
# Prints the image id on the last line of stdout.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
binary=$repo/target/dist/sonde
tag=
archive=
while [ $# -gt 0 ]; do
    case $1 in
        --binary) binary=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --archive) archive=$2; shift 2 ;;
        *) echo "usage: $0 [--binary PATH] [--tag NAME] [--archive FILE]" >&2; exit 2 ;;
    esac
done
command -v buildah >/dev/null || { echo "build.sh: buildah not found (apt-get install buildah)" >&2; exit 1; }
[ -x "$binary" ] || {
    echo "build.sh: no binary at $binary (cargo build --profile dist --locked --bin sonde)" >&2
    exit 1
}
version=$("$binary" --version | awk '{print $2}')
[ -n "$tag" ] || tag=localhost/sonde:$version

# Docker format throughout: OCI image configurations have no HEALTHCHECK.
export BUILDAH_FORMAT=docker
ctr=$(buildah from --quiet scratch)
cleanup() { buildah rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
mnt=$(buildah mount "$ctr")
bash "$repo/packaging/container/rootfs.sh" "$binary" "$mnt"
install -m 0644 "$repo/packaging/container/sonde.toml" "$mnt/etc/sonde/sonde.toml"
buildah umount "$ctr" >/dev/null

# The same settings as the Dockerfile's final stage, in the same order (PATH: the one Docker and
# buildah give an image built FROM scratch).
buildah config \
    --user 10001:10001 \
    --port 4317/tcp --port 4318/tcp --port 13133/tcp \
    --volume /var/lib/sonde \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SONDE_ADMIN=0.0.0.0:13133 \
    --healthcheck 'CMD /usr/bin/sonde health --url http://127.0.0.1:13133/health/ready' \
    --healthcheck-interval 15s --healthcheck-timeout 3s --healthcheck-start-period 10s --healthcheck-retries 3 \
    --entrypoint '["/usr/bin/sonde"]' \
    --cmd '["run", "--config", "/etc/sonde/sonde.toml"]' \
    --os linux --arch amd64 \
    "$ctr"
id=$(buildah commit --quiet --format docker --squash "$ctr" "$tag")
case $tag in
    *:latest) ;;
    *) buildah tag "$id" "${tag%:*}:latest" ;;
esac
if [ -n "$archive" ]; then
    rm -f "$archive"
    buildah push --quiet "$id" "docker-archive:$archive:${tag%:*}:latest"
fi
echo "$id"
