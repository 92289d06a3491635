#!/usr/bin/env bash
# The benchmark (npm run bench) reads each invocation's peak RSS from GNU time
# (/usr/bin/time -f %M): Node's child_process does not expose wait4's rusage; and times
# the kernel's deletion inside each DEL with strace -T.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"
apt_install_missing time strace
