# Sourced by scripts/setup.sh and scripts/setup.d/*.sh: install Debian packages only when
# missing, so a second setup run only checks (no apt-get update, no network).

# apt_install_missing [apt-get install option...] package...
# Options (words starting with "-", e.g. --no-install-recommends) go to apt-get install.
# Sets APT_INSTALLED to the packages it installed (empty when nothing was missing).
apt_install_missing() {
  local opts=() p
  APT_INSTALLED=()
  for p in "$@"; do
    if [[ $p == -* ]]; then
      opts+=("$p")
    elif ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      APT_INSTALLED+=("$p")
    fi
  done
  [ ${#APT_INSTALLED[@]} -gt 0 ] || return 0
  echo "setup: installing ${APT_INSTALLED[*]}" >&2
  # One update per setup run: setup.sh and each setup.d script source this file, and the
  # marker is exported to the scripts it starts.
  if [ -z "${FLANNELETTE_APT_UPDATED:-}" ]; then
    apt-get update -qq
    export FLANNELETTE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${opts[@]}" "${APT_INSTALLED[@]}" >/dev/null
}
