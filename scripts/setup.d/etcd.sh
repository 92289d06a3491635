#!/usr/bin/env bash
# etcd for the overlay agent's tests and the demo: Debian's etcd-server (3.4) and
# etcd-client (etcdctl, used by the demo). Never left running: the package's service is
# not started (no systemd here; policy-rc.d may deny it anyway), and if a service
# manager did start it, it is stopped, since tests and the demo run their own etcd inside
# a network namespace with a temp data dir.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

apt_install_missing --no-install-recommends etcd-server etcd-client
if [ ${#APT_INSTALLED[@]} -gt 0 ]; then
  if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi
