#!/usr/bin/env bash
# The sandbox ("pause") image the CRI test (test/system/runtime-cri.test.ts) gives
# containerd's CRI plugin, built offline: busybox-static alone, its command `sleep`, made
# into an OCI layout tar by umoci. Built into .cache/cri/pause.tar; rebuilt only when
# busybox or the recipe changes. (containerd, runc and umoci come from runtimes.sh.)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/apt.sh
. scripts/lib/oci.sh

apt_install_missing --no-install-recommends containerd runc umoci busybox-static

out=.cache/cri
stamp="$out/pause.version"
# Bump the recipe number with any change below.
want="$(dpkg-query -W -f='${Version}' busybox-static) recipe-1"
if [ -f "$out/pause.tar" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "setup: building the sandbox (pause) image in $out" >&2
mkdir -p "$out"
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

r="$tmp/rootfs"
mkdir -p "$r"/{bin,dev,etc,proc,sys,tmp,run}
install -m 0755 /bin/busybox "$r/bin/busybox"
ln -s busybox "$r/bin/sleep"
ln -s busybox "$r/bin/sh"
echo 'root:x:0:0:root:/:/bin/sh' > "$r/etc/passwd"
echo 'root:x:0:' > "$r/etc/group"
# A sandbox only holds its namespaces: it sleeps until it is killed (StopPodSandbox).
oci_tar "$r" "$tmp" "$tmp/pause.tar" --config.entrypoint /bin/sleep --config.cmd 2147483647
mv "$tmp/pause.tar" "$out/pause.tar"
echo "$want" > "$stamp"
