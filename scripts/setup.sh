#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian machine, then builds the
# libcni test driver. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh

apt_install_missing iproute2 iptables nftables iputils-ping tcpdump openssl util-linux procps \
  golang-go golang-github-appc-cni-dev containernetworking-plugins

[ -x node_modules/.bin/node ] || npm ci --no-audit --no-fund

# Per-area extras (runtimes, etcd, images...), each idempotent.
for extra in scripts/setup.d/*.sh; do
  [ -e "$extra" ] && bash "$extra"
done

# The libcni driver (our cnitool), built against Debian's libcni source.
if [ -f test/helpers/cnitool/main.go ]; then
  out=.cache/cnitool
  if [ ! -x "$out" ] || [ test/helpers/cnitool/main.go -nt "$out" ]; then
    mkdir -p .cache/gopath/src
    echo "setup: building the libcni driver" >&2
    GOPATH="$PWD/.cache/gopath:/usr/share/gocode" GO111MODULE=off GOCACHE="$PWD/.cache/gocache" \
      go build -o "$out" ./test/helpers/cnitool
  fi
fi
