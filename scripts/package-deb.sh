#!/usr/bin/env bash
# package-deb.sh - builds the Debian package target/debian/eventfsd_VERSION_ARCH.deb.
#
# Usage: scripts/package-deb.sh [--no-build]
#   --no-build   use the existing target/release/eventfsd and target/release/xtask
#                (see scripts/install.sh)
#
# The package holds what `scripts/install.sh --prefix /usr` installs, staged with --destdir, plus
# the Debian copyright file; the binary is stripped (a Debian package ships no debug info).
# Version: the workspace's (Cargo.toml); Architecture: dpkg --print-architecture; Depends:
# dpkg-shlibdeps (dpkg-dev), else libc6 from the binary's newest GLIBC_ symbol version
# (objdump -T). No maintainer scripts: units are not enabled or started by the package.
# Maintainer: $DEBFULLNAME <$DEBEMAIL> when both are set. Nothing is left outside target/.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD_ARGS=(--no-build); shift ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
        *) echo "package-deb.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
die() { echo "package-deb.sh: $*" >&2; exit 1; }
for tool in dpkg dpkg-deb strip; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev binutils)"
done
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET=$REPO/$TARGET ;; esac

VERSION=$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml")
[ -n "$VERSION" ] || die "no version in [workspace.package] of Cargo.toml"
ARCH=$(dpkg --print-architecture)
MAINTAINER="eventfsd developers <eventfsd-developers@invalid>"
if [ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ]; then
    MAINTAINER="$DEBFULLNAME <$DEBEMAIL>"
fi
# Same input, same package: file times are clamped to the last commit's (dpkg-deb reads this).
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
# debian/eventfsd is where dpkg-shlibdeps expects a package's files, next to debian/control.
ROOT=$STAGE/debian/eventfsd
"$REPO/scripts/install.sh" --prefix /usr --destdir "$ROOT" "${BUILD_ARGS[@]}" >/dev/null
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$ROOT/usr/bin/eventfsd"
cat >"$ROOT/usr/share/doc/eventfsd/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: eventfsd

Files: *
Copyright: the eventfsd authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0.
EOF

mkdir -p "$ROOT/DEBIAN" # also how dpkg-shlibdeps finds the package's root
if command -v dpkg-shlibdeps >/dev/null; then
    printf 'Source: eventfsd\n\nPackage: eventfsd\nArchitecture: any\n' >"$STAGE/debian/control"
    DEPENDS=$(cd "$STAGE" && dpkg-shlibdeps -O -edebian/eventfsd/usr/bin/eventfsd |
        sed -n 's/^shlibs:Depends=//p')
else
    command -v objdump >/dev/null || die "neither dpkg-shlibdeps nor objdump found (apt-get install dpkg-dev)"
    glibc=$(objdump -T "$ROOT/usr/bin/eventfsd" | grep -o 'GLIBC_[0-9][0-9.]*' |
        sed 's/GLIBC_//' | sort -uV | tail -n1)
    DEPENDS="libc6 (>= ${glibc:-2.34})"
    echo "package-deb.sh: dpkg-shlibdeps not found; Depends: $DEPENDS (from objdump -T)" >&2
fi
[ -n "$DEPENDS" ] || die "could not compute Depends"

# Debian policy: files under /etc are configuration files, kept on upgrade and removal.
if [ -d "$ROOT/etc" ]; then
    (cd "$ROOT" && find etc -type f | sed 's|^|/|' | sort) >"$ROOT/DEBIAN/conffiles"
fi
INSTALLED_SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat >"$ROOT/DEBIAN/control" <<EOF
Package: eventfsd
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $INSTALLED_SIZE
Depends: $DEPENDS
Suggests: qemu-system-x86, libvirt-daemon-system
Section: admin
Priority: optional
Description: vhost-user virtio-fs daemon serving a tracefs tree to QEMU guests
 eventfsd gives a QEMU guest a tracefs-shaped tree over vhost-user virtio-fs, so that
 ftrace tools in the guest (shell scripts, trace-cmd, perfetto) work against it: either an
 embedded kernel event catalog with emulated control files, or a policy-checked private
 instance of the host's live tracefs.
 .
 The package installs systemd units (eventfsd@VM.socket), a QEMU vhost-user backend
 descriptor for libvirt, a man page and an example policy.
EOF

OUT=$TARGET/debian
mkdir -p "$OUT"
DEB=$OUT/eventfsd_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
