#!/usr/bin/env bash
# The benchmark (npm run bench) reads each invocation's peak RSS from GNU time
# (/usr/bin/time -f %M): Node's child_process does not expose wait4's rusage.
set -euo pipefail
if ! dpkg-query -W -f='${Status}' time 2>/dev/null | grep -q 'install ok installed'; then
  echo "setup: installing time (for the benchmark's peak RSS)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
