#!/usr/bin/env bash
# Installs what ckpt needs and is missing: node modules, redis-server, zstd and lz4, a working CRIU (>= 4.2).
# Idempotent: a second run checks and changes nothing. Every step says what it does.
#
# Environment:
#   CKPT_DATA_DIR   where the private CRIU goes (default: <repo>/.data)
#   CKPT_CRIU_SUITE Debian suite to take criu from when the system one is too old (default: forky)
# Flags:
#   --with-browser  also install Chromium (the dashboard's browser test needs it)
set -euo pipefail
with_browser=0
for arg in "$@"; do
  case $arg in
    --with-browser) with_browser=1 ;;
    *) echo "setup: unknown flag $arg" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data_dir=${CKPT_DATA_DIR:-$repo/.data}
suite=${CKPT_CRIU_SUITE:-forky}
prefix=$data_dir/criu
say() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# ---- node modules --------------------------------------------------------------------------------
lock_stamp=$repo/node_modules/.ckpt-lock-hash
want_hash=$(sha256sum "$repo/package-lock.json" | cut -d' ' -f1)
if [[ -f $lock_stamp && $(cat "$lock_stamp") == "$want_hash" ]]; then
  say "node modules: up to date"
else
  say "node modules: installing (npm install, as locked)"
  (cd "$repo" && npm install --no-audit --no-fund --loglevel=error)
  echo "$want_hash" >"$lock_stamp"
fi

# ---- apt helpers ---------------------------------------------------------------------------------
apt_updated=0
apt_install() {
  [[ $(id -u) == 0 ]] || fail "need root to install $* (apt-get)"
  if [[ $apt_updated == 0 ]]; then say "apt: updating package lists"; apt-get update -qq; apt_updated=1; fi
  say "apt: installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---- redis-server --------------------------------------------------------------------------------
if command -v redis-server >/dev/null; then
  say "redis-server: present ($(redis-server --version | grep -o 'v=[0-9.]*'))"
else
  apt_install redis-server
fi

# ---- zstd and lz4 (storage.remote packs checkpoints with them; Node 20's zlib has neither) --------
for tool in zstd lz4; do
  if command -v "$tool" >/dev/null; then
    say "$tool: present"
  else
    apt_install "$tool"
  fi
done

# ---- Chromium (tests only) ----------------------------------------------------------------------
if [[ $with_browser == 1 ]]; then
  if command -v chromium >/dev/null; then
    say "chromium: present"
  else
    apt_install chromium
  fi
fi

# ---- CRIU ----------------------------------------------------------------------------------------
# The newest of: configured CRIU_BIN, the system criu, the private prefix; it must be >= 4.2 and pass `criu check`.
private_criu=$prefix/bin/criu
criu_ok() { # $1: command; prints version when usable
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/^Version: *//p') || return 1
  [[ -n $v ]] || return 1
  local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  (( major > 4 || (major == 4 && minor >= 2) )) || { say "criu at $1 is $v, need >= 4.2"; return 1; }
  if [[ -z ${CKPT_SETUP_SKIP_CRIU_CHECK:-} ]]; then
    "$1" check >/dev/null 2>&1 || { say "criu at $1 ($v) fails 'criu check'"; return 1; }
  fi
  echo "$v"
}

install_private_criu() {
  say "criu: unpacking criu from Debian '$suite' into $prefix (no system package is changed)"
  command -v apt-get >/dev/null || fail "apt-get is needed to fetch criu"
  local work=$data_dir/criu-apt
  mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/debs"
  local arch; arch=$(dpkg --print-architecture)
  local mirror="http://deb.debian.org/debian"
  # Reuse the host's Debian mirror when it has one configured (deb822 or one-line format).
  local host_mirror
  host_mirror=$(grep -rhE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -1 | tr -d ' ' || true)
  [[ -n $host_mirror ]] && mirror=${host_mirror%/}
  # Signatures are checked against the host's Debian archive keyring.
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$work/sources.list"
  local aptopts=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists="$work/lists" -o Dir::Cache::archives="$work/archives"
    -o APT::Architecture="$arch" -o Acquire::Languages=none -o APT::Sandbox::User=root)
  say "criu: reading the '$suite' package list from $mirror"
  apt-get "${aptopts[@]}" -o APT::Update::Error-Mode=any update -qq || fail "could not read the '$suite' package list from $mirror"
  local pkgs=(criu libcompel1 libc6 libprotobuf-c1 libnl-3-200 libnet9 libnftables1 libgnutls30t64 libbsd0 libuuid1 libmd0
    libmnl0 libnftnl11 libjansson4 libxtables12 libp11-kit0 libidn2-0 libunistring5 libtasn1-6 libnettle8t64 libhogweed6t64
    libgmp10 libffi8 libedit2 libtinfo6)
  say "criu: downloading ${#pkgs[@]} packages"
  (cd "$work/debs" && apt-get "${aptopts[@]}" download "${pkgs[@]}" >/dev/null)
  rm -rf "$prefix.new" && mkdir -p "$prefix.new/root"
  for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$prefix.new/root"; done
  local libdir; libdir=$(dirname "$(find "$prefix.new/root" -name 'ld-linux-*.so.*' | head -1)")
  [[ -d $libdir ]] || fail "no dynamic loader found in the unpacked packages"
  local loader; loader=$(find "$prefix.new/root" -name 'ld-linux-*.so.*' | head -1)
  mkdir -p "$prefix.new/bin"
  # A wrapper that runs the private criu with the prefix's own loader and libc.
  cat >"$prefix.new/bin/criu" <<WRAP
#!/bin/sh
exec "${loader/$prefix.new/$prefix}" --library-path "${libdir/$prefix.new/$prefix}" "$prefix/root/usr/sbin/criu" "\$@"
WRAP
  chmod 0755 "$prefix.new/bin/criu"
  rm -rf "$prefix" && mv "$prefix.new" "$prefix"
  rm -rf "$work/debs"
}

criu_version=""
if [[ -n ${CKPT_CRIU_BIN:-} ]] && criu_version=$(criu_ok "$CKPT_CRIU_BIN"); then
  say "criu: using CKPT_CRIU_BIN=$CKPT_CRIU_BIN ($criu_version)"
elif command -v criu >/dev/null && criu_version=$(criu_ok "$(command -v criu)"); then
  say "criu: using the system criu ($criu_version)"
elif [[ -x $private_criu ]] && criu_version=$(criu_ok "$private_criu"); then
  say "criu: private criu $criu_version at $private_criu passes 'criu check'"
else
  install_private_criu
  criu_version=$(criu_ok "$private_criu") || fail "the private criu does not pass 'criu check' ($private_criu check)"
  say "criu: installed $criu_version at $private_criu; 'criu check' passes"
fi
chmod 0700 "$data_dir"
say "ready"
