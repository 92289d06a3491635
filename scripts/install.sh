#!/usr/bin/env bash
# Installs flannelette's CNI plugins into DIR (default /opt/cni/bin), self-contained:
# the pinned Node 24 runtime goes to DIR/.flannelette/node, and each plugin is its one
# bundled file with that runtime's absolute path as its #! line. So a runtime can exec
# DIR/bridge with an empty environment, whatever Node (if any) the host has.
#   scripts/install.sh [DIR] [--conf FILE]   (--conf also copies FILE into /etc/cni/net.d)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir=/opt/cni/bin
conf=""
while [ $# -gt 0 ]; do
  case "$1" in
    --conf) conf="$2"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) dir="$1"; shift ;;
  esac
done

[ -d "$root/dist" ] || (cd "$root" && npm run -s build)
node_bin="$(readlink -f "$root/node_modules/.bin/node")"
[ -x "$node_bin" ] || { echo "install: no Node 24 in node_modules; run npm ci first" >&2; exit 1; }

mkdir -p "$dir/.flannelette"
dir="$(cd "$dir" && pwd)"
# Replace, never overwrite in place: a running plugin keeps its old inode.
cp "$node_bin" "$dir/.flannelette/node.new" && mv -f "$dir/.flannelette/node.new" "$dir/.flannelette/node"
for js in "$root"/dist/*.cjs; do
  name="$(basename "$js" .cjs)"
  [ "$name" = flannelette ] && target="$dir/.flannelette/flannelette" || target="$dir/$name"
  { printf '#!%s/.flannelette/node\n' "$dir"; cat "$js"; } > "$target.new"
  chmod 0755 "$target.new"
  mv -f "$target.new" "$target"
  echo "installed $target" >&2
done

if [ -n "$conf" ]; then
  mkdir -p /etc/cni/net.d
  install -m 0644 "$conf" "/etc/cni/net.d/$(basename "$conf")"
  echo "installed /etc/cni/net.d/$(basename "$conf")" >&2
fi
