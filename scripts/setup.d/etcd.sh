#!/usr/bin/env bash
# etcd for the overlay agent's tests and the demo: Debian's etcd-server (3.4) and
# etcd-client (etcdctl, used by the demo). Never left running: the package's service is
# not started (no systemd here; policy-rc.d may deny it anyway), and if a service
# manager did start it, it is stopped, since tests and the demo run their own etcd inside
# a network namespace with a temp data dir.
set -euo pipefail
missing=()
for p in etcd-server etcd-client; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi
