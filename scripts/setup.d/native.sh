#!/usr/bin/env bash
# The native addon (native/flannelette.c, built by scripts/build.mjs) needs a C compiler
# and N-API's header (node_api.h, from any Node: the ABI is stable). Without them the
# build only warns and the plugins use flock(1), nsenter and child_process, slower.
set -euo pipefail
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
want=()
command -v cc >/dev/null 2>&1 || want+=(gcc libc6-dev)
[ -f /usr/include/node/node_api.h ] || [ -f /usr/local/include/node/node_api.h ] || want+=(libnode-dev)
missing=()
for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (for the native addon)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
