#!/usr/bin/env bash
# What the real-runtime tests need (test/runtime-*.test.ts): Debian's podman, containerd and
# runc, umoci to build an OCI image offline, and busybox-static for a registry-free rootfs.
# Builds into .cache/runtimes/:
#   rootfs/      a busybox rootfs (podman --rootfs copies it per run)
#   busybox.tar  an OCI layout tar of the same rootfs, for `ctr image import`
# Idempotent: installs only missing packages, rebuilds only when busybox or the recipe changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/apt.sh
. scripts/lib/oci.sh

# --no-install-recommends: podman's recommends (crun, slirp4netns, fuse-overlayfs, uidmap...)
# are unused here; runc is the runtime the tests use.
apt_install_missing --no-install-recommends podman containerd runc umoci busybox-static conmon

out=.cache/runtimes
stamp="$out/busybox.version"
# Rebuilt when busybox or this recipe changes (bump the recipe number with it).
want="$(dpkg-query -W -f='${Version}' busybox-static) recipe-1"
if [ -f "$out/busybox.tar" ] && [ -x "$out/rootfs/bin/busybox" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "setup: building the busybox rootfs and OCI image in $out" >&2
rm -rf "$out"
mkdir -p "$out"
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The rootfs: busybox with a link per applet, the mount points a runtime expects, and a
# passwd/group so that `id` and runtimes resolving user 0 find root.
r="$tmp/rootfs"
mkdir -p "$r"/{bin,dev,etc,proc,sys,tmp,run,root,var}
chmod 1777 "$r/tmp"
install -m 0755 /bin/busybox "$r/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$r/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"
echo 'root:x:0:' > "$r/etc/group"
# Mount points podman and containerd bind files onto: present, so no runtime writes into
# the rootfs to make them.
: > "$r/etc/hosts"
: > "$r/etc/resolv.conf"
: > "$r/etc/hostname"

# The OCI image, offline: one layer from the rootfs, a config that runs sh.
oci_tar "$r" "$tmp" "$tmp/busybox.tar" --config.cmd /bin/sh --config.env PATH=/bin

mv "$r" "$out/rootfs"
mv "$tmp/busybox.tar" "$out/busybox.tar"
echo "$want" > "$stamp"
