#!/usr/bin/env bash
# Builds the Debian package target/deb/dss_VERSION_ARCH.deb from artifacts
# already built (it compiles nothing):
#   target/release/dss         cargo build --release -p dss-host
#   target/providers/*.wasm    scripts/build-providers.sh
# and packaging/ (the unit, the packaged dss.toml, the maintainer scripts,
# the man page). Needs dpkg-dev (dpkg-shlibdeps) and binutils (strip); runs
# as any user (dpkg-deb --root-owner-group). Prints the package's path.
#
#   scripts/build-deb.sh [--lintian]
#
# --lintian: then runs `lintian --fail-on error` on the package.
# Environment: DEB_REVISION (default 1), the Debian revision after the
# crate's version; SOURCE_DATE_EPOCH (default: the last commit's time), the
# time stamped on every file.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-deb: $*" >&2; exit 1; }

run_lintian=0
for arg in "$@"; do
  case "$arg" in
    --lintian) run_lintian=1 ;;
    -h | --help) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument $arg (usage: scripts/build-deb.sh [--lintian])" ;;
  esac
done

for tool in dpkg-deb dpkg-shlibdeps dpkg strip gzip md5sum; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt install dpkg-dev binutils"
done

# The artifacts.
bin=target/release/dss
[ -x "$bin" ] || die "$bin is missing: run cargo build --release -p dss-host"
# The shipped providers: one per directory of providers/.
providers=()
for dir in providers/*/; do
  name=$(basename "$dir")
  wasm="target/providers/$name.wasm"
  [ -f "$wasm" ] || die "$wasm is missing: run scripts/build-providers.sh"
  providers+=("$wasm")
done
((${#providers[@]})) || die "no provider in providers/"

# The version: host/Cargo.toml's, or the workspace's.
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' host/Cargo.toml | head -n1)
if [ -z "$version" ]; then
  version=$(awk '
    /^\[/ { section = $0; next }
    section == "[workspace.package]" && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }
  ' Cargo.toml)
fi
[ -n "$version" ] || die "no version in host/Cargo.toml nor in Cargo.toml's [workspace.package]"
version="$version-${DEB_REVISION:-1}"
arch=$(dpkg --print-architecture)

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

out=target/deb
deb="$out/dss_${version}_${arch}.deb"
mkdir -p "$out"
stage=$(mktemp -d "$PWD/$out/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
umask 022
root="$stage/root"

# Files: dirs 0755, files 0644, executables 0755 (set again below).
put() { # put SRC DEST [MODE]
  install -D -m "${3:-0644}" "$1" "$root/$2"
}

# The host, stripped as dh_strip does (debug information and symbols off:
# about 224 MB down to 40).
install -d "$root/usr/bin"
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
  -o "$root/usr/bin/dss" "$bin"
chmod 0755 "$root/usr/bin/dss"

for wasm in "${providers[@]}"; do
  put "$wasm" "usr/lib/dss/providers/$(basename "$wasm")"
done
install -d "$root/usr/share/dss"
cp -R www "$root/usr/share/dss/www"
put nginx/nginx.conf usr/share/dss/nginx/nginx.conf
put packaging/dss.service lib/systemd/system/dss.service

# Configuration (conffiles): the packaged dss.toml and the demo instance.
put packaging/dss.toml etc/dss/dss.toml
install -d "$root/etc/dss/providers.d"
{
  echo "# The demo, shipped with the package: FFmpeg test patterns that need"
  echo "# nothing else (play one: ffplay rtmp://127.0.0.1:1935/dss/demo-bars)."
  echo "# Delete this file to remove the demo; upgrades will not bring it back."
  echo "#"
  cat examples/demo/providers.d/demo.toml
} >"$root/etc/dss/providers.d/demo.toml"
for example in examples/demo/providers.d/*.toml; do
  [ "$(basename "$example")" = demo.toml ] && continue
  put "$example" "usr/share/doc/dss/examples/providers.d/$(basename "$example")"
done

# Documentation.
doc="$root/usr/share/doc/dss"
install -d "$doc" "$root/usr/share/man/man1"
gzip -9n <README.md >"$doc/README.md.gz"
put packaging/debian/copyright usr/share/doc/dss/copyright
date_r=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
cat >"$stage/changelog.Debian" <<EOF
dss ($version) unstable; urgency=medium

  * Built from the repository at commit $commit.

 -- DSS developers <dss-devel@lists.dynamicstreamserver.org>  $date_r
EOF
gzip -9n <"$stage/changelog.Debian" >"$doc/changelog.Debian.gz"
sed -e "s/^\.TH DSS 1 .*/.TH DSS 1 \"$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)\" \"dss $version\" \"User Commands\"/" \
  packaging/dss.1 | gzip -9n >"$root/usr/share/man/man1/dss.1.gz"
if [ -f packaging/debian/lintian-overrides ]; then
  put packaging/debian/lintian-overrides usr/share/lintian/overrides/dss
fi

# Modes, whatever the checkout's were.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$root/usr/bin/dss"

# Control files.
install -d "$root/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
(cd "$root" && find etc -type f | LC_ALL=C sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
  LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

# Shared libraries the host links (glibc's, libgcc's), as dpkg-shlibdeps
# finds them; it wants a debian/control to read.
mkdir -p "$stage/src/debian"
printf 'Source: dss\n\nPackage: dss\nArchitecture: any\n' >"$stage/src/debian/control"
shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O -e"$root/usr/bin/dss" 2>"$stage/shlibdeps.err" |
  sed -n 's/^shlibs:Depends=//p') || { cat "$stage/shlibdeps.err" >&2; die "dpkg-shlibdeps failed"; }
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no library dependency of $bin"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" \
  -e "s/@SHLIBS_DEPENDS@/$shlibs/" packaging/debian/control.in >"$root/DEBIAN/control"
chmod 0644 "$root/DEBIAN/control"

# The same time on every file.
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null

if ((run_lintian)); then
  command -v lintian >/dev/null || die "lintian is missing: apt install lintian"
  lintian --fail-on error --display-info "$deb"
fi
echo "$deb"
