#!/usr/bin/env bash
# The walk-through's cluster on one machine: master (etcd), worker01 and worker02 (each
# with a flannelette agent), joined by an underlay 172.16.1.0/24; pod "ubuntu" on worker01
# and "ubuntu2" on worker02, added through the real libcni with flannel's CNI config. It
# pings across nodes (ttl=62: one hop per node), shows each hop's kernel state as the
# walk-through does, runs the explainer, and tears everything down (also on failure).
# Every node, the underlay bridge and each pod is a network namespace named
# fld<random>-*; the root namespace is never touched.
#   scripts/demo.sh [--keep] [--reference] [--backend vxlan|host-gw] [--dual-stack]
#   scripts/demo.sh --cleanup PREFIX
#     --keep       leave the cluster up, and print how to look at it and clean it up
#     --reference  pods through the reference bridge + host-local (/usr/lib/cni), with the
#                  config flannel would delegate, instead of our flannel, bridge, host-local
#     --backend    the agents' backend: vxlan (the walk-through's, default) or host-gw
#                  (a route via each node's address, no encapsulation)
#     --dual-stack IPv6 too: fd00:172:16:1::/64 on the underlay, pods in fd00:10:244::/56
#     --cleanup    stop and remove what a --keep run left (PREFIX as it printed)
# Needs root, and `bash scripts/setup.sh && npm run build` done (npm run demo does both).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
keep=0
reference=0
backend=vxlan
dual=0
cleanup_prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --reference) reference=1 ;;
    --backend) backend="${2:?--backend needs vxlan or host-gw}"; shift ;;
    --dual-stack) dual=1 ;;
    --cleanup) cleanup_prefix="${2:?--cleanup needs the PREFIX a --keep run printed}"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case "$backend" in vxlan|host-gw) ;; *) echo "demo: --backend is vxlan or host-gw, not $backend" >&2; exit 2 ;; esac
# shellcheck source=scripts/demo/lib.sh
. "$root/scripts/demo/lib.sh"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
cnitool_bin="$root/.cache/cnitool"

if [ -n "$cleanup_prefix" ]; then
  [[ "$cleanup_prefix" =~ ^fld[0-9a-f]{6}$ ]] || die "not a demo prefix: $cleanup_prefix"
  prefix="$cleanup_prefix"
  state="/tmp/flannelette-demo-$prefix"
  cni_path="$(cat "$state/cni_path" 2>/dev/null || echo /usr/lib/cni)"
  teardown
  echo "demo: removed $prefix-* and $state"
  exit 0
fi

for cmd in etcd etcdctl ping tcpdump; do command -v "$cmd" >/dev/null || die "$cmd is missing: run bash scripts/setup.sh"; done
[ -x "$cnitool_bin" ] || die "no $cnitool_bin: run bash scripts/setup.sh"
[ -f "$root/dist/flannelette.cjs" ] || die "no dist/: run npm run build"

prefix="fld$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
state="/tmp/flannelette-demo-$prefix"
bin="$state/bin"
mkdir -p "$state/pids" "$state/pods"

finish() {
  local rc=$?
  if [ "$keep" = 1 ] && [ "$rc" = 0 ]; then
    bold "left up (--keep)"
    echo "nodes:    ip netns exec $prefix-worker01 ip route     (also $prefix-master, $prefix-worker02)"
    echo "pods:     ip netns exec $prefix-ubuntu ping 10.244.2.2 (also $prefix-ubuntu2)"
    [ "$dual" = 1 ] && echo "          ip netns exec $prefix-ubuntu ping fd00:10:244:2::2"
    echo "etcd:     ip netns exec $prefix-master env ETCDCTL_API=3 etcdctl --endpoints $etcd_url get --prefix /coreos.com/network"
    echo "logs:     $state/*.log"
    echo "clean up: bash scripts/demo.sh --cleanup $prefix"
    return
  fi
  teardown
  if [ "$rc" = 0 ]; then echo; echo "demo: done; removed every namespace and process it made"; else echo "demo: failed (exit $rc); cleaned up" >&2; fi
}
trap finish EXIT
trap 'exit 130' INT TERM

if [ "$reference" = 1 ]; then
  cni_path=/usr/lib/cni
else
  cni_path="$bin"
fi
echo "$cni_path" >"$state/cni_path"
bold "installing flannelette into $bin (scripts/install.sh)"
bash "$root/scripts/install.sh" "$bin" 2>&1 | sed 's/^/  /'
[ "$reference" = 1 ] && echo "  pods go through the reference plugins in /usr/lib/cni (--reference)"

if [ "$dual" = 1 ]; then
  bold "underlay 172.16.1.0/24 + fd00:172:16:1::/64: master .100, worker01 .101, worker02 .102 (namespaces $prefix-*)"
else
  bold "underlay 172.16.1.0/24: master .100, worker01 .101, worker02 .102 (namespaces $prefix-*)"
fi
make_underlay
start_etcd
echo "etcd in master on $etcd_url"
etcdctl_ put /coreos.com/network/config "$network_config" >/dev/null
on master env ETCDCTL_API=3 etcdctl --endpoints "$etcd_url" get /coreos.com/network/config

bold "a flannelette agent on each worker (each subnet file names the walk-through's subnet, which the agent claims)"
for node in worker01 worker02; do
  start_agent "$node"
  wait_lease "$node"
  echo "$node: $(tr '\n' ' ' <"$state/$node/subnet.env")"
done
on master env ETCDCTL_API=3 etcdctl --endpoints "$etcd_url" get --prefix /coreos.com/network/subnets

bold "pods, added through libcni with flannel's config"
for node in worker01 worker02; do write_cni_conf "$node"; done
add_pod ubuntu worker01
add_pod ubuntu2 worker02
ip1="$(pod_ip ubuntu)"
ip2="$(pod_ip ubuntu2)"
if [ "$dual" = 1 ]; then
  printf '%-8s %-12s %-18s %s\n' NAME IP IPV6 NODE ubuntu "$ip1" "$(pod_ip6 ubuntu)" worker01 ubuntu2 "$ip2" "$(pod_ip6 ubuntu2)" worker02
else
  printf '%-8s %-12s %s\n' NAME IP NODE ubuntu "$ip1" worker01 ubuntu2 "$ip2" worker02
fi

if [ "$backend" = host-gw ]; then walk_host_gw; else walk_vxlan; fi
[ "$dual" = 1 ] && walk_ipv6
bold "how the entries got onto worker01: its agent's log"
sed 's/^/  /' "$state/agent-worker01.log"
bold "IPAM: host-local's lease on worker02"
leases="$state/worker02/networks/cni0"
on worker02 ls "$leases"
on worker02 cat "$leases/$ip2"; echo

bold "flannelette explain $ip1 --to $ip2 (on worker01)"
if [ "$reference" = 1 ]; then
  echo "(skipped with --reference)"
elif ! ip netns exec "$prefix-worker01" "$bin/.flannelette/flannelette" explain "$ip1" --to "$ip2" \
  --data-dir "$state/worker01/networks" --cache-dir "$state/worker01/cache"; then
  echo "(the explainer failed: see above)"
fi
if [ "$dual" = 1 ] && [ "$reference" = 0 ]; then
  ip61="$(pod_ip6 ubuntu)" ip62="$(pod_ip6 ubuntu2)"
  bold "flannelette explain $ip61 --to $ip62 (on worker01)"
  ip netns exec "$prefix-worker01" "$bin/.flannelette/flannelette" explain "$ip61" --to "$ip62" \
    --data-dir "$state/worker01/networks" --cache-dir "$state/worker01/cache" || echo "(the explainer failed: see above)"
fi
