# An OCI image built offline with umoci, for the runtimes the tests drive (sourced by
# scripts/setup.d/runtimes.sh and sandbox-image.sh).

# oci_tar ROOTFS WORKDIR TAR CONFIG-OPTION...: an OCI layout tar of one layer holding ROOTFS,
# its config set by the `umoci config` options given, for this machine's architecture.
oci_tar() {
  local rootfs="$1" work="$2" tar="$3"
  shift 3
  local img="$work/oci"
  umoci init --layout "$img"
  umoci new --image "$img:latest"
  umoci unpack --image "$img:latest" "$work/bundle" >/dev/null
  cp -a "$rootfs/." "$work/bundle/rootfs/"
  umoci repack --image "$img:latest" "$work/bundle"
  umoci config --image "$img:latest" "$@" --architecture "$(dpkg --print-architecture)" --os linux
  umoci gc --layout "$img"
  tar -C "$img" -cf "$tar" .
}
