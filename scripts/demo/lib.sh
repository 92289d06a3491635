# Pieces of the three-node demo (sourced by scripts/demo.sh). Everything lives in network
# namespaces named "$prefix-*" and in the state dir "$state"; nothing touches the root
# namespace. Each daemon's PID is written under "$state/pids/" so that cleanup stops
# exactly the processes this run started, even from another shell (--cleanup).

etcd_url=http://172.16.1.100:2379
# The walk-through's config; --backend host-gw and --dual-stack change the backend's type
# and add flannel's IPv6 keys.
if [ "${backend:-vxlan}" = vxlan ] && [ "${dual:-0}" = 0 ]; then
  network_config='{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}'
else
  ipv6_keys=''
  [ "${dual:-0}" = 1 ] && ipv6_keys='"EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","IPv6SubnetLen":64,'
  network_config="{\"Network\":\"10.244.0.0/16\",\"SubnetLen\":24,$ipv6_keys\"Backend\":{\"Type\":\"${backend:-vxlan}\"}}"
fi
# node name -> underlay address, as in the walk-through (master has no pods, no agent).
declare -A node_ip=([master]=172.16.1.100 [worker01]=172.16.1.101 [worker02]=172.16.1.102)
# --dual-stack: the same hosts in fd00:172:16:1::/64.
declare -A node_ip6=([master]=fd00:172:16:1::100 [worker01]=fd00:172:16:1::101 [worker02]=fd00:172:16:1::102)

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
    [ "${dual:-0}" = 1 ] && ip -n "$prefix-$node" addr add "${node_ip6[$node]}/64" dev enp0s8 nodad
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
  if [ "${dual:-0}" = 1 ]; then
    # And the IPv6 subnet that mirrors it (fd00:10:244:1::/64 for 10.244.1.0/24).
    printf 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=%s.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:%s::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n' \
      "${node_subnet[$node]}" "${node_subnet[$node]##*.}" >"$state/$node/subnet.env"
  else
    printf 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=%s.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n' "${node_subnet[$node]}" >"$state/$node/subnet.env"
  fi
  start_daemon "agent-$node" "$node" "$bin/.flannelette/flannelette" agent \
    --etcd-endpoints "$etcd_url" --iface enp0s8 --ip-masq --subnet-file "$state/$node/subnet.env"
}

# Waits until the agent holds its lease (and has rewritten the subnet file).
wait_lease() {
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
    local ranges="[{\"subnet\":\"$subnet\"}]" routes="{\"dst\":\"$FLANNEL_NETWORK\"}"
    if [ -n "${FLANNEL_IPV6_SUBNET:-}" ]; then
      # The agent's IPv6 gateway is the subnet's ::1, so its network is the text before it.
      ranges="$ranges,[{\"subnet\":\"${FLANNEL_IPV6_SUBNET%::1/*}::/${FLANNEL_IPV6_SUBNET#*/}\"}]"
      routes="$routes,{\"dst\":\"$FLANNEL_IPV6_NETWORK\"}"
    fi
    cat >"$dir/net.d/10-flannel.conflist" <<EOF
{"cniVersion":"1.0.0","name":"cni0","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,
 "isDefaultGateway":true,"hairpinMode":true,"ipMasq":$([ "$FLANNEL_IPMASQ" = true ] && echo false || echo true),"mtu":$FLANNEL_MTU,
 "ipam":{"type":"host-local","dataDir":"$dir/networks","ranges":[$ranges],
 "routes":[$routes]}}]}
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
pod_ip6() { ip -n "$prefix-$1" -6 -o addr show dev eth0 scope global | awk '{split($4, a, "/"); print a[1]}'; }

# Pings $2 from pod ubuntu while tcpdump on worker01's enp0s8 catches one packet matching
# $1 (-e: with its MACs) into $state/$3; dies unless the reply says ttl=62 (two routed hops).
ping_captured() {
  local filter="$1" to="$2" out="$3" pid
  # shellcheck disable=SC2086
  ip netns exec "$prefix-worker01" timeout 10 tcpdump -l -c 1 -vv ${4:-} -ni enp0s8 $filter >"$state/$out" 2>/dev/null &
  pid=$!
  sleep 0.5
  on ubuntu ping -c 3 -w 6 "$to" | tee "$state/ping.txt"
  grep -q 'ttl=62' "$state/ping.txt" || die "expected ttl=62 (two routed hops: worker01, worker02)"
  wait "$pid" || true
}

# The walk-through (vxlan): each hop's state, as in the blog post.
walk_vxlan() {
  bold "ubuntu (worker01) pings ubuntu2 (worker02)"
  # The capture on worker01's underlay shows the VXLAN packet: UDP to 8472, VNI 1.
  ping_captured "udp port 8472" "$ip2" tcpdump.txt

  walk_pod
  bold "3. worker01: onlink route via flannel.1, PERMANENT neighbour, fdb entry to worker02"
  on worker01 ip route
  on worker01 ip neigh show "$gw2"
  local mac2; mac2="$(ip -n "$prefix-worker01" neigh show "$gw2" | awk '{print $5}')"
  on worker01 bridge fdb show dev flannel.1
  on worker01 ip -d link show flannel.1
  bold "4. on the wire: encapsulated in VXLAN, from 172.16.1.101 to 172.16.1.102:8472"
  sed 's/^/  /' "$state/tcpdump.txt"
  bold "5-7. worker02: decapsulated, routed to cni0 and the pod"
  on worker02 ip route get "$ip2"
  bold "who published worker02's VTEP: its lease in etcd (MAC $mac2)"
  show_lease
}

# --backend host-gw: no overlay device; worker01 routes worker02's subnet via worker02.
walk_host_gw() {
  bold "ubuntu (worker01) pings ubuntu2 (worker02)"
  # The capture on worker01's underlay shows the pod's own packet (host-gw does not encapsulate).
  ping_captured "icmp and host $ip2" "$ip2" tcpdump.txt -e
  walk_pod
  bold "3. worker01: a route to worker02's subnet via worker02's address on enp0s8 (no overlay device)"
  on worker01 ip route
  on worker01 ip neigh show 172.16.1.102
  on worker01 ip -br link
  bold "4. on the wire: the pod's packet itself, from worker01's MAC to worker02's"
  sed 's/^/  /' "$state/tcpdump.txt"
  bold "5-7. worker02: routed to cni0 and the pod"
  on worker02 ip route get "$ip2"
  bold "who published worker02's address: its lease in etcd (no backend data)"
  show_lease
}

# Steps 1 and 2, the same for every backend; sets subnet2 and gw2 (worker02's subnet and its .0).
walk_pod() {
  bold "1. in the pod: the route to $ip2"
  on ubuntu ip route
  on ubuntu ip route get "$ip2"
  bold "2. worker01: the pod's veth is a port of cni0"
  on worker01 ip -br link show master cni0
  on worker01 ip -4 -br addr show dev cni0
  subnet2="$(ip -n "$prefix-ubuntu2" -4 -o route show dev eth0 scope link | awk '{print $1}')"
  gw2="${subnet2%/*}"
}

# worker02's lease: its key names both subnets when dual-stack, hence --prefix then.
show_lease() {
  local key="/coreos.com/network/subnets/${gw2}-${subnet2#*/}"
  if [ "${dual:-0}" = 1 ]; then
    on master env ETCDCTL_API=3 etcdctl --endpoints "$etcd_url" get --prefix "$key"
  else
    on master env ETCDCTL_API=3 etcdctl --endpoints "$etcd_url" get "$key"
  fi
}

# --dual-stack: the same walk over IPv6 (flannel-v6.1, or host-gw's IPv6 route).
walk_ipv6() {
  local to; to="$(pod_ip6 ubuntu2)"
  bold "IPv6: ubuntu (worker01) pings ubuntu2 (worker02) at $to"
  if [ "$backend" = host-gw ]; then
    ping_captured "icmp6 and host $to" "$to" tcpdump6.txt -e
  else
    # IPv6 pods ride VXLAN over the underlay's IPv6: UDP to 8472 from fd00:172:16:1::101.
    ping_captured "ip6 and udp port 8472" "$to" tcpdump6.txt
  fi
  bold "IPv6 1. in the pod, and on worker01"
  on ubuntu ip -6 route show
  on worker01 ip -6 route show
  if [ "$backend" = vxlan ]; then
    on worker01 ip -6 neigh show dev flannel-v6.1
    on worker01 bridge fdb show dev flannel-v6.1
    on worker01 ip -d link show flannel-v6.1
  fi
  bold "IPv6 2. on the wire"
  sed 's/^/  /' "$state/tcpdump6.txt"
  bold "IPv6 3. worker02: routed to cni0 and the pod"
  on worker02 ip -6 route get "$to"
}

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
