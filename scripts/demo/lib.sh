# Pieces of the three-node demo (sourced by scripts/demo.sh). Everything lives in network
# namespaces named "$prefix-*" and in the state dir "$state"; nothing touches the root
# namespace. Each daemon's PID is written under "$state/pids/" so that cleanup stops
# exactly the processes this run started, even from another shell (--cleanup).

etcd_url=http://172.16.1.100:2379
network_config='{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}'
# node name -> underlay address, as in the walk-through (master has no pods, no agent).
declare -A node_ip=([master]=172.16.1.100 [worker01]=172.16.1.101 [worker02]=172.16.1.102)

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Shows a command as typed on a node, then runs it there.
on() {
  local where="$1"; shift
  printf '\033[2mroot@%s:~# %s\033[0m\n' "$where" "$*"
  ip netns exec "$prefix-$where" "$@"
}
die() { echo "demo: $*" >&2; exit 1; }

# The underlay: a bridge in its own namespace ("the wire"), a veth to each node; the node
# end is enp0s8 with the node's address, as on the walk-through's VMs.
make_underlay() {
  ip netns add "$prefix-wire"
  ip -n "$prefix-wire" link set lo up
  ip -n "$prefix-wire" link add br0 type bridge
  ip -n "$prefix-wire" link set br0 up
  local node
  for node in master worker01 worker02; do
    ip netns add "$prefix-$node"
    ip -n "$prefix-$node" link set lo up
    ip -n "$prefix-wire" link add "u-$node" type veth peer name enp0s8 netns "$prefix-$node"
    ip -n "$prefix-wire" link set "u-$node" master br0 up
    ip -n "$prefix-$node" addr add "${node_ip[$node]}/24" dev enp0s8
    ip -n "$prefix-$node" link set enp0s8 up
  done
}

# A daemon inside a node namespace, its output in "$state/<name>.log", its PID recorded.
start_daemon() {
  local name="$1" node="$2"; shift 2
  ip netns exec "$prefix-$node" "$@" >"$state/$name.log" 2>&1 &
  echo $! >"$state/pids/$name"
}

etcdctl_() { ip netns exec "$prefix-master" env ETCDCTL_API=3 etcdctl --endpoints "$etcd_url" "$@"; }

start_etcd() {
  start_daemon etcd master etcd --name master --data-dir "$state/etcd" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster master=http://127.0.0.1:2380
  local i
  for i in $(seq 100); do
    etcdctl_ endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$state/etcd.log" >&2
  die "etcd did not become healthy"
}

# node name -> the pod subnet the walk-through's node had (Kubernetes gave them in join order).
declare -A node_subnet=([worker01]=10.244.1 [worker02]=10.244.2)

# The agent on a worker. Its subnet file is seeded with the walk-through's subnet, as a node
# whose lease expired while it was down: the agent claims that subnet again. (A fresh node
# gets a free subnet at random, as flannel picks them.)
start_agent() {
  local node="$1"
  mkdir -p "$state/$node"
  printf 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=%s.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n' "${node_subnet[$node]}" >"$state/$node/subnet.env"
  start_daemon "agent-$node" "$node" "$bin/.flannelette/flannelette" agent \
    --etcd-endpoints "$etcd_url" --iface enp0s8 --ip-masq --subnet-file "$state/$node/subnet.env"
}

# Waits until the agent holds its lease (and has rewritten the subnet file).
wait_subnet_file() {
  local node="$1" i
  for i in $(seq 100); do
    grep -qE 'info +(claimed|kept|renewed) lease' "$state/agent-$node.log" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$state/agent-$node.log" >&2
  die "the agent on $node took no lease"
}

# The node's CNI config, as kube-flannel's cni-conf.json (flannel delegating to bridge with
# hairpin and a default route), with every state path inside "$state". With --reference,
# the bridge + host-local config that flannel would hand its delegate, written by hand.
write_cni_conf() {
  local node="$1" dir="$state/$node"
  mkdir -p "$dir/net.d"
  if [ "$reference" = 1 ]; then
    # shellcheck disable=SC1091
    . "$dir/subnet.env"
    local subnet; subnet="$(network_of "$FLANNEL_SUBNET")"
    cat >"$dir/net.d/10-flannel.conflist" <<EOF
{"cniVersion":"1.0.0","name":"cni0","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,
 "isDefaultGateway":true,"hairpinMode":true,"ipMasq":$([ "$FLANNEL_IPMASQ" = true ] && echo false || echo true),"mtu":$FLANNEL_MTU,
 "ipam":{"type":"host-local","dataDir":"$dir/networks","ranges":[[{"subnet":"$subnet"}]],
 "routes":[{"dst":"$FLANNEL_NETWORK"}]}}]}
EOF
  else
    cat >"$dir/net.d/10-flannel.conflist" <<EOF
{"cniVersion":"1.0.0","name":"cni0","plugins":[{"type":"flannel","subnetFile":"$dir/subnet.env",
 "dataDir":"$dir/flannel","ipam":{"dataDir":"$dir/networks"},
 "delegate":{"hairpinMode":true,"isDefaultGateway":true}}]}
EOF
  fi
}

# "10.244.1.1/24" -> "10.244.1.0/24" (host-local wants the network, the subnet file has the gateway).
network_of() {
  local a b c d len=${1#*/} n
  IFS=. read -r a b c d <<<"${1%/*}"
  n=$(( ((a << 24) | (b << 16) | (c << 8) | d) & (0xffffffff << (32 - len)) & 0xffffffff ))
  echo "$((n >> 24 & 255)).$((n >> 16 & 255)).$((n >> 8 & 255)).$((n & 255))/$len"
}

# Runs our libcni driver on a node as a runtime would: a bare environment but for PATH
# (containerd passes its own on; the reference bridge looks up iptables there).
cni() {
  local node="$1"; shift
  ip netns exec "$prefix-$node" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NETCONFPATH="$state/$node/net.d" CNI_PATH="$cni_path" \
    CNI_CACHE_DIR="$state/$node/cache" "$cnitool_bin" "$@"
}

add_pod() {
  local pod="$1" node="$2"
  ip netns add "$prefix-$pod"
  echo "$node" >"$state/pods/$pod"
  cni "$node" add cni0 "/var/run/netns/$prefix-$pod" >"$state/$pod.result.json" || die "ADD of $pod on $node failed"
}

pod_ip() { ip -n "$prefix-$1" -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]}'; }

# Whether a PID runs (a zombie does not: after --keep, our daemons' parent is gone and
# whoever adopted them may be slow to reap).
running() {
  local st
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null)" && [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

# Stops a recorded daemon: TERM, then KILL after 5 s. Only if the PID still runs a
# command line naming our state dir (a PID may have been reused since).
stop_daemon() {
  local pidfile="$1" pid i
  pid="$(cat "$pidfile" 2>/dev/null)" || return 0
  if [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$state"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

# Undoes everything of this run, in reverse: pods (DEL through libcni), agents, etcd,
# namespaces, state dir. Safe to run twice and after a failure at any step.
teardown() {
  local f pod
  for f in "$state"/pods/*; do
    [ -e "$f" ] || continue
    pod="$(basename "$f")"
    cni "$(cat "$f")" del cni0 "/var/run/netns/$prefix-$pod" >/dev/null 2>&1 || true
    rm -f "$f"
  done
  for f in "$state"/pids/agent-*; do [ -e "$f" ] && stop_daemon "$f"; done
  [ -e "$state/pids/etcd" ] && stop_daemon "$state/pids/etcd"
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$prefix-" || true); do
    ip netns delete "$ns" 2>/dev/null || true
  done
  rm -rf "$state"
}
