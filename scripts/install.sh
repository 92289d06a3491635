#!/usr/bin/env bash
# Installs flannelette's CNI plugins into DIR (default /opt/cni/bin), self-contained:
# the pinned Node 24 runtime goes to DIR/.flannelette/node, and each plugin DIR/<name> is
# a short script with that runtime's absolute path as its #! line, which runs its one
# bundled file, DIR/.flannelette/<name>.cjs, with V8's code for it cached in
# DIR/.flannelette/cache (a part of a plugin, dist/<name>.<part>.cjs, is copied beside it:
# one it loads only on a rare path, or bridge's DEL prelude, which its launcher runs first
# on every DEL). So a runtime can exec DIR/bridge with an empty environment,
# whatever Node (if any) the host has.
#   scripts/install.sh [DIR] [--conf FILE]   (--conf also copies FILE into /etc/cni/net.d)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir=/opt/cni/bin
conf=""
while [ $# -gt 0 ]; do
  case "$1" in
    --conf) conf="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
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
# The native addon (flock, setns, netlink, posix_spawn): the plugins cannot run without it.
[ -f "$root/dist/flannelette.node" ] || { echo "install: no dist/flannelette.node; run npm run build (it needs a C compiler)" >&2; exit 1; }
cp "$root/dist/flannelette.node" "$dir/.flannelette/flannelette.node.new"
mv -f "$dir/.flannelette/flannelette.node.new" "$dir/.flannelette/flannelette.node"
echo "installed $dir/.flannelette/flannelette.node" >&2

# V8's code for each plugin bundle, kept per verb after its first run (VERSION's is made
# here), so that a call compiles almost nothing: ADD ~4.5 ms faster (measured), ~3 ms of
# it more than Node's own compile cache gives, which keeps only the code compiled before
# the bundle runs. A cache file is named after its bundle's size and mtime (V8 itself checks only
# the length of the source) and written through a temp file and rename; one that cannot
# be read or written is silently not used. Emptied here: the bundles change.
rm -rf "$dir/.flannelette/cache"
mkdir -p "$dir/.flannelette/cache"
# A JavaScript string literal of a path. Paths are absolute, as the #! line is, so that a
# copy of a plugin elsewhere still runs.
jsstr() { printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"; }
stub() { # BUNDLE CACHE-PREFIX ADDON [DEL-PRELUDE]
  cat <<EOF
'use strict';
// Written by flannelette's scripts/install.sh: runs the plugin's bundle with V8's cached code.
// The exit, first: once process.exit has run the 'exit' listeners (the caches below are
// written there), the addon's _exit(2) instead of Node's teardown, which joins V8's worker
// threads (one may be finishing a background compile: milliseconds). Set before the plugin
// runs, so that a plugin calling process.exit itself exits the same way. The loaded addon
// is left for the bundles (src/sys/addon.ts), which would otherwise each load it again.
try {
  const addon = { exports: {} };
  process.dlopen(addon, $(jsstr "$3"));
  if (typeof addon.exports.exit === 'function') process.reallyExit = addon.exports.exit;
  globalThis[Symbol.for('flannelette.addon')] = addon.exports;
} catch {}
const { readFileSync, renameSync, statSync, writeFileSync } = require('node:fs');
const { Script } = require('node:vm');
// Only the spec's verbs get a cache: a file per any other CNI_COMMAND would let input
// grow the directory without bound.
const verb = process.env.CNI_COMMAND ?? '';
const cached = /^(ADD|DEL|CHECK|STATUS|GC|VERSION)\$/.test(verb);
/** Compiles \`file\` with its cached code for this verb (kept under \`prefix\`), and runs it. */
function run(file, prefix) {
  const st = statSync(file);
  const cache = cached ? \`\${prefix}-\${st.size}-\${st.mtimeMs}-\${verb}.v8\` : undefined;
  let data;
  if (cache) try { data = readFileSync(cache); } catch {}
  const script = new Script(\`(function (exports, require, module, __filename, __dirname) {\${readFileSync(file, 'utf8')}\n})\`, { filename: file, cachedData: data });
  if (cache && (data === undefined || script.cachedDataRejected)) {
    process.once('exit', () => {
      const tmp = \`\${cache}.\${process.pid}\`;
      try { writeFileSync(tmp, script.createCachedData()); renameSync(tmp, cache); } catch {}
    });
  }
  const m = { exports: {} };
  script.runInThisContext()(m.exports, require, m, file, file.slice(0, file.lastIndexOf('/')));
}
// Once the plugin is done, exit at once (through the addon's exit above).
process.once('beforeExit', () => process.exit());
EOF
  if [ -n "${4:-}" ]; then
    cat <<EOF
// A DEL first starts what it will wait for longest (see the prelude), then loads the plugin.
// Only a head start: a prelude that cannot run leaves the DEL to the plugin, as without it.
if (verb === 'DEL') try { run($(jsstr "$4"), $(jsstr "$2.prelude")); } catch {}
EOF
  fi
  cat <<EOF
run($(jsstr "$1"), $(jsstr "$2"));
EOF
}
for js in "$root"/dist/*.cjs; do
  name="$(basename "$js" .cjs)"
  case "$name" in
    *.*) # A part of plugin <name>: one it loads only when needed (scripts/build.mjs ON_DEMAND), or its DEL prelude.
      cp "$js" "$dir/.flannelette/$name.cjs.new" && mv -f "$dir/.flannelette/$name.cjs.new" "$dir/.flannelette/$name.cjs"
      continue ;;
  esac
  if [ "$name" = flannelette ]; then
    # The agent and explain command: long-lived or interactive, one file as it is.
    target="$dir/.flannelette/flannelette"
    { printf '#!%s/.flannelette/node\n' "$dir"; cat "$js"; } > "$target.new"
  else
    target="$dir/$name"
    bundle="$dir/.flannelette/$name.cjs"
    cp "$js" "$bundle.new" && mv -f "$bundle.new" "$bundle"
    # A plugin's DEL prelude (src/main/<name>.prelude.ts), installed beside it as a part.
    prelude=""
    [ -f "$root/dist/$name.prelude.cjs" ] && prelude="$dir/.flannelette/$name.prelude.cjs"
    # One V8 worker thread, not four: a plugin call is one short process, and the others
    # cost their start and their join at exit (~3 % of a host-local DEL or GC, measured in
    # the benchmark). A Node option, not a V8 flag: the code caches stay valid.
    # (src/cni/invoke.ts isOurPlugin reads this line.)
    { printf '#!%s/.flannelette/node --v8-pool-size=1\n' "$dir"; stub "$bundle" "$dir/.flannelette/cache/$name" "$dir/.flannelette/flannelette.node" "$prelude"; } > "$target.new"
  fi
  chmod 0755 "$target.new"
  mv -f "$target.new" "$target"
  # Fills VERSION's cache (and shows that the plugin starts).
  [ "$name" = flannelette ] || env -i CNI_COMMAND=VERSION "$target" </dev/null >/dev/null
  echo "installed $target" >&2
done

# Caches bridge's ADD, CHECK and DEL code too, with one pod in private namespaces
# (scripts/warm-caches.mjs). Best effort: where namespaces cannot be made (an install from
# an unprivileged container) the first real calls make the caches instead.
if [ -x "$dir/bridge" ] && command -v unshare >/dev/null 2>&1 &&
  unshare --net "$dir/.flannelette/node" "$root/scripts/warm-caches.mjs" "$dir" 2>/dev/null; then
  echo "cached the code of bridge ADD, CHECK and DEL" >&2
else
  echo "code of bridge ADD, CHECK and DEL not cached yet (no private namespaces here): the first calls will" >&2
fi

if [ -n "$conf" ]; then
  mkdir -p /etc/cni/net.d
  install -m 0644 "$conf" "/etc/cni/net.d/$(basename "$conf")"
  echo "installed /etc/cni/net.d/$(basename "$conf")" >&2
fi
