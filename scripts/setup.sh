#!/usr/bin/env bash
# Installs what ckpt needs and is missing: node modules, redis-server, zstd and lz4, a working CRIU (>= 4.2).
# Idempotent: a second run checks and changes nothing. Every step says what it does.
#
# Environment:
#   CKPT_DATA_DIR   where the private CRIU goes (default: <repo>/.data)
#   CKPT_CRIU_SUITE Debian suite to take criu from when the system one is too old (default: forky)
# Flags:
#   --with-browser         also install Chromium (the dashboard's browser test needs it)
#   --no-node-modules      leave node_modules alone (the image installs them itself, without dev dependencies)
#   --print-debian-mirror  print the Debian mirror the host's apt configuration names (what the CRIU download uses), and stop
#   --apt-etc DIR          read the apt configuration from DIR instead of /etc/apt
set -euo pipefail
with_browser=0
node_modules=1
print_mirror=0
apt_etc=/etc/apt
while (($#)); do
  case $1 in
    --with-browser) with_browser=1 ;;
    --no-node-modules) node_modules=0 ;;
    --print-debian-mirror) print_mirror=1 ;;
    --apt-etc) [[ $# -ge 2 ]] || { echo "setup: --apt-etc needs a folder" >&2; exit 2; }; apt_etc=$2; shift ;;
    *) echo "setup: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data_dir=${CKPT_DATA_DIR:-$repo/.data}
suite=${CKPT_CRIU_SUITE:-forky}
prefix=$data_dir/criu
say() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# ---- Node.js -------------------------------------------------------------------------------------
# The versions the suite runs on (scripts/test-node-versions.sh); older ones lack what ckpt uses.
tested_node="20, 22 and 24"
command -v node >/dev/null || fail "Node.js is not installed: ckpt needs Node.js >= 20 (tested: $tested_node)"
node_version=$(node --version)
node_major=${node_version#v}; node_major=${node_major%%.*}
[[ $node_major =~ ^[0-9]+$ ]] && ((node_major >= 20)) \
  || fail "Node.js $node_version is too old: ckpt needs Node.js >= 20 (tested: $tested_node)"

# ---- the host's Debian mirror ---------------------------------------------------------------------
# The first Debian archive (not security, not a third-party repository) in the host's apt sources, one-line
# (sources.list, *.list) or deb822 (*.sources) format. Its suites do not matter: only the address is reused.
debian_mirror() {
  local files=() f
  [[ -f $apt_etc/sources.list ]] && files+=("$apt_etc/sources.list")
  for f in "$apt_etc"/sources.list.d/*.list "$apt_etc"/sources.list.d/*.sources; do [[ -f $f ]] && files+=("$f"); done
  ((${#files[@]})) || return 1
  # One-line: `deb [options] URI suite ...`; deb822: `URIs: URI [URI...]`. Comments and deb-src lines are not sources.
  sed -e 's/#.*//' "${files[@]}" \
    | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/ && $i ~ /:\/\//) { print $i; break } }
           tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' \
    | grep -E '^https?://[^ ]+/debian/?$' | head -1 | sed 's:/*$::'
}
if [[ $print_mirror == 1 ]]; then
  mirror=$(debian_mirror) && [[ -n $mirror ]] || fail "no Debian mirror in the apt configuration under $apt_etc (sources.list, sources.list.d/*.list, *.sources)"
  echo "$mirror"
  exit 0
fi
say "node: $node_version"

# ---- node modules --------------------------------------------------------------------------------
lock_stamp=$repo/node_modules/.ckpt-lock-hash
want_hash=$(sha256sum "$repo/package-lock.json" | cut -d' ' -f1)
if [[ $node_modules == 0 ]]; then
  say "node modules: left as they are (--no-node-modules)"
elif [[ -f $lock_stamp && $(cat "$lock_stamp") == "$want_hash" ]]; then
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
  # The mirror the host already trusts and reaches; ckpt carries no address of its own.
  local mirror
  mirror=$(debian_mirror) && [[ -n $mirror ]] \
    || fail "no Debian mirror in the apt configuration under $apt_etc (sources.list, sources.list.d/*.list, *.sources): add one, or install criu >= 4.2 yourself and set criu.bin"
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
