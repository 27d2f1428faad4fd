#!/usr/bin/env bash
# Provision the media plane: print the root folder that holds Asterisk (>= 20) and SIPp.
#
# Uses an `asterisk` already on PATH when it is version 20 or later (prints "/", the host root).
# Otherwise builds, once, a minimal Debian unstable root with debootstrap in a cache folder
# outside the repository and prints its path. Safe to run again: a finished root is reused.
# The Debian mirror is read from this machine's apt configuration, never written here.
set -euo pipefail

cache_dir="${VOXCAST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/voxcast}"
root="$cache_dir/sid-root"
stamp="$root/.voxcast-provisioned"
packages="asterisk,asterisk-modules,asterisk-config,sip-tester"

log() { echo "provision: $*" >&2; }

asterisk_major() {  # the major version of the asterisk on PATH, or nothing
  local version
  version=$("$1" -V 2>/dev/null | sed -n 's/^Asterisk \([0-9][0-9]*\)\..*/\1/p')
  echo "${version:-}"
}

if [ "${VOXCAST_USE_HOST_ASTERISK:-1}" = 1 ] && command -v asterisk >/dev/null && command -v sipp >/dev/null; then
  major=$(asterisk_major "$(command -v asterisk)")
  if [ -n "$major" ] && [ "$major" -ge 20 ]; then
    log "using the asterisk $major on PATH"
    echo /
    exit 0
  fi
fi

if [ -f "$stamp" ]; then
  echo "$root"
  exit 0
fi

mirror_from_apt() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources \
          | grep -v -- '-security' | head -n 1)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
          /etc/apt/sources.list | grep -v -- '-security' | head -n 1)
  fi
  echo "$uri"
}

mirror=$(mirror_from_apt)
if [ -z "$mirror" ]; then
  log "no Debian mirror found in the apt configuration"
  exit 1
fi

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi

log "building a Debian unstable root with Asterisk and SIPp in $root (about a minute)"
rm -rf "$root.partial"
mkdir -p "$cache_dir"
debootstrap --variant=minbase --include="$packages" sid "$root.partial" "$mirror" >&2 \
  || { log "debootstrap failed; see $root.partial/debootstrap/debootstrap.log"; exit 1; }
# The host's resolver may not be on loopback; Asterisk here only ever talks to 127.0.0.1.
echo "nameserver 127.0.0.1" > "$root.partial/etc/resolv.conf"
rm -rf "$root"
mv "$root.partial" "$root"
touch "$stamp"
echo "$root"
