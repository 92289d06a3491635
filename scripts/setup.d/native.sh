#!/usr/bin/env bash
# The native addon (native/flannelette.c, built by scripts/build.mjs) needs a C compiler
# and N-API's header (node_api.h, from any Node: the ABI is stable). Without them the
# build fails: the plugins reach the kernel only through the addon.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"
want=()
command -v cc >/dev/null 2>&1 || want+=(gcc libc6-dev)
[ -f /usr/include/node/node_api.h ] || [ -f /usr/local/include/node/node_api.h ] || want+=(libnode-dev)
[ ${#want[@]} -eq 0 ] || apt_install_missing "${want[@]}"
