#!/usr/bin/env bash
# One flannel node, two pods: installs our plugins into a temp dir, makes a "node" network
# namespace and two pod namespaces, and ADDs both pods through the real libcni (our
# cnitool) with conf/10-flannelette.conflist, as containerd would. Then pings, shows the
# pod's routes and cni0's ports, DELs and tears everything down. The root namespace is
# never touched; everything lives in namespaces named flt-demo-<random>-*.
#   scripts/demo-one-node.sh [--keep] [--reference]
#     --keep       leave the namespaces up, and print how to clean them up
#     --reference  drive the reference Go plugins (/usr/lib/cni) instead of ours
# Needs root, and `bash scripts/setup.sh && npm run build` done.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
keep=0
reference=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    --reference) reference=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $arg" >&2; exit 2 ;;
  esac
done

node_js="$root/node_modules/.bin/node"
cnitool_bin="$root/.cache/cnitool"
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces)" >&2; exit 1; }
[ -x "$cnitool_bin" ] || { echo "demo: no $cnitool_bin; run bash scripts/setup.sh" >&2; exit 1; }
[ -x "$node_js" ] && ls "$root"/dist/*.cjs >/dev/null 2>&1 || { echo "demo: run npm ci && npm run build first" >&2; exit 1; }

id="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
prefix="flt-demo-$id"
node_ns="$prefix-node"
pods=("$prefix-pod1" "$prefix-pod2")
work="$(mktemp -d /tmp/flannelette-demo.XXXXXX)"
made=()
added=()

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A bare environment, as a runtime gives: only what the driver documents.
cni() {
  ip netns exec "$node_ns" env -i NETCONFPATH="$work/net.d" CNI_PATH="$cni_path" \
    CNI_CACHE_DIR="$work/cache" "$cnitool_bin" "$@"
}

cleanup() {
  local rc=$?
  if [ "$keep" = 1 ] && [ "$rc" = 0 ]; then
    bold "left up (--keep)"
    echo "namespaces: ${made[*]}"
    echo "look:     ip netns exec ${pods[0]} ping ${ips[1]:-10.244.1.3}"
    echo "DEL:      for p in ${added[*]}; do ip netns exec $node_ns env -i NETCONFPATH=$work/net.d CNI_PATH=$cni_path CNI_CACHE_DIR=$work/cache $cnitool_bin del cni0 /var/run/netns/\$p; done"
    echo "clean up: for n in ${made[*]}; do ip netns delete \$n; done; rm -rf $work"
    return
  fi
  # Best effort: DEL whatever is still added, then drop the namespaces (which takes any
  # remaining veth and cni0 with them) and the temp dir with its leases.
  for p in "${added[@]}"; do cni del cni0 "/var/run/netns/$p" >/dev/null 2>&1 || true; done
  for n in "${made[@]}"; do ip netns delete "$n" 2>/dev/null || true; done
  rm -rf "$work"
  [ "$rc" = 0 ] || echo "demo: failed (exit $rc); cleaned up" >&2
}
trap cleanup EXIT

if [ "$reference" = 1 ]; then
  cni_path=/usr/lib/cni
  bold "plugins: the reference, $cni_path"
else
  cni_path="$work/bin"
  bold "installing our plugins: scripts/install.sh $cni_path"
  bash "$root/scripts/install.sh" "$cni_path" 2>&1 | sed 's/^/  /'
fi

bold "namespaces: node $node_ns, pods ${pods[*]}"
for n in "$node_ns" "${pods[@]}"; do
  ip netns add "$n"
  made+=("$n")
  ip -n "$n" link set lo up
done

# The example config, with host-local's store moved into the temp dir.
mkdir -p "$work/net.d"
"$node_js" -e '
  const fs = require("node:fs");
  const [src, dst, dataDir] = process.argv.slice(1);
  const conf = JSON.parse(fs.readFileSync(src, "utf8"));
  for (const p of conf.plugins) if (p.ipam) p.ipam.dataDir = dataDir;
  fs.writeFileSync(dst, JSON.stringify(conf, null, 2));
' "$root/conf/10-flannelette.conflist" "$work/net.d/10-flannelette.conflist" "$work/networks"
bold "NETCONFPATH=$work/net.d/10-flannelette.conflist"
cat "$work/net.d/10-flannelette.conflist"

bold "ADD through libcni: cnitool add cni0 /var/run/netns/<pod>"
ips=()
rows=()
for p in "${pods[@]}"; do
  t0=$(date +%s%N)
  result="$(cni add cni0 "/var/run/netns/$p")"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  added+=("$p")
  # Address and host-side veth, from the result: the veth is the interface with no sandbox that is not the bridge.
  read -r ip veth < <("$node_js" -e '
    const r = JSON.parse(process.argv[1]);
    const veth = r.interfaces.find((i) => !i.sandbox && i.name !== "cni0");
    console.log(r.ips[0].address.split("/")[0], veth ? veth.name : "?");
  ' "$result")
  ips+=("$ip")
  rows+=("$(printf '%-24s %-14s %-14s %s ms' "$p" "$ip" "$veth" "$ms")")
done
printf '%-24s %-14s %-14s %s\n' POD IP "HOST VETH" ADD
printf '%s\n' "${rows[@]}"

bold "ping ${pods[0]} -> ${pods[1]} (${ips[1]}), and -> the gateway 10.244.1.1"
ip netns exec "${pods[0]}" ping -n -c 2 -i 0.2 -w 3 "${ips[1]}" | sed 's/^/  /'
ip netns exec "${pods[0]}" ping -n -c 2 -i 0.2 -w 3 10.244.1.1 | sed 's/^/  /'

bold "ip route in ${pods[0]}"
ip -n "${pods[0]}" route | sed 's/^/  /'

bold "bridge link in the node"
bridge -d -n "$node_ns" link | sed 's/^/  /'
bold "leases: $work/networks/cni0"
ls "$work/networks/cni0" | sed 's/^/  /'

bold "CHECK through libcni"
for p in "${pods[@]}"; do
  if err="$(cni check cni0 "/var/run/netns/$p" 2>&1)"; then echo "  $p: ok"; else echo "  $p: FAILED: $err"; fi
done
[ "$reference" = 0 ] || echo "  (v1.1.1 fails CHECK on any result route without a gateway, as flannel's are: a known bug)"

[ "$keep" = 1 ] && exit 0

bold "DEL through libcni"
for p in "${pods[@]}"; do
  cni del cni0 "/var/run/netns/$p"
  echo "  $p: deleted"
done
added=()
echo "  veths left in the node: $(ip -n "$node_ns" -o link show type veth | wc -l)"
# host-local names each lease file by its address.
echo "  leases left: $(ls -1 "$work/networks/cni0" | grep -cE '^([0-9]+\.){3}[0-9]+$|:' || true)"
