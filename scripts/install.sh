#!/usr/bin/env bash
# install.sh - builds eventfsd and installs it with its man page, systemd units, QEMU
# vhost-user descriptor and examples; --uninstall removes exactly those files.
#
# Usage: scripts/install.sh [--prefix DIR] [--destdir DIR] [--no-build] [--uninstall]
#   --prefix DIR   where it goes (default /usr/local); /usr for a system install
#   --destdir DIR  stage under DIR instead of / (packaging); paths inside the installed files
#                  still name PREFIX
#   --no-build     do not run cargo: use the existing target/release/eventfsd and
#                  target/release/xtask (the man page generator), e.g. built as yourself with
#                  `cargo build --release --locked -p eventfsd -p xtask` before `sudo install.sh`
#   --uninstall    remove the files an install with the same --prefix/--destdir put there
#
# Installed, under DESTDIR/PREFIX:
#   bin/eventfsd
#   share/man/man1/eventfsd.1.gz             generated from the clap definition (crates/xtask)
#   lib/systemd/system/eventfsd@.socket, eventfsd@.service   (systemd also reads /usr/local)
#   share/eventfsd/policy.example.toml       the default host-source policy, written out
#   share/eventfsd/eventfsd.conf.example     template of /etc/eventfsd/VM.conf
#   share/eventfsd/default.evcat             the embedded catalog, for libvirt's <source dir>
#   share/doc/eventfsd/README.md
# and the vhost-user backend descriptor 90-eventfsd.json in share/qemu/vhost-user/ for
# PREFIX=/usr, else in DESTDIR/etc/qemu/vhost-user/ (libvirt reads /usr/share/qemu and /etc/qemu,
# not /usr/local/share). The packaged files name /usr/bin/eventfsd; it becomes PREFIX/bin/eventfsd.
# CARGO_TARGET_DIR is honoured.
set -euo pipefail
umask 022 # the installed directories and files are world-readable whatever the caller's umask

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/usr/local
DESTDIR=
BUILD=1
UNINSTALL=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
        --destdir) DESTDIR=${2:?--destdir needs a directory}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
die() { echo "install.sh: $*" >&2; exit 1; }
case "$PREFIX" in /*) ;; *) die "--prefix must be absolute: $PREFIX" ;; esac
# The prefix is written into unit files (ExecStart) and sed replacements: plain paths only.
case "$PREFIX" in *[!A-Za-z0-9/._+-]*) die "--prefix may hold only letters, digits and /._+-: $PREFIX" ;; esac
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] || die "--prefix / is not supported (use /usr)"
if [ -n "$DESTDIR" ]; then
    mkdir -p "$DESTDIR"
    DESTDIR=$(cd "$DESTDIR" && pwd)
fi
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET=$REPO/$TARGET ;; esac

# Installed path (without DESTDIR) of each file; the same list serves --uninstall.
BIN=$PREFIX/bin/eventfsd
MAN=$PREFIX/share/man/man1/eventfsd.1.gz
UNITDIR=$PREFIX/lib/systemd/system
SHARE=$PREFIX/share/eventfsd
DOC=$PREFIX/share/doc/eventfsd
if [ "$PREFIX" = /usr ]; then
    DESCRIPTOR=/usr/share/qemu/vhost-user/90-eventfsd.json
else
    DESCRIPTOR=/etc/qemu/vhost-user/90-eventfsd.json
fi
FILES=("$BIN" "$MAN" "$UNITDIR/eventfsd@.socket" "$UNITDIR/eventfsd@.service" "$DESCRIPTOR"
    "$SHARE/policy.example.toml" "$SHARE/eventfsd.conf.example" "$SHARE/default.evcat"
    "$DOC/README.md")

if [ "$UNINSTALL" = 1 ]; then
    for f in "${FILES[@]}"; do
        if [ -e "$DESTDIR$f" ] || [ -L "$DESTDIR$f" ]; then
            rm -f "$DESTDIR$f"
            echo "removed $DESTDIR$f"
        fi
    done
    # Only the directories that are eventfsd's own, and only when nothing else is in them.
    rmdir --ignore-fail-on-non-empty "$DESTDIR$SHARE" "$DESTDIR$DOC" 2>/dev/null || true
    [ -z "$DESTDIR" ] && echo "install.sh: run 'systemctl daemon-reload' to forget the units"
    exit 0
fi

if [ "$BUILD" = 1 ]; then
    (cd "$REPO" && cargo build --release --locked -p eventfsd -p xtask)
fi
for exe in eventfsd xtask; do
    [ -x "$TARGET/release/$exe" ] ||
        die "$TARGET/release/$exe missing: run 'cargo build --release --locked -p eventfsd -p xtask' (or drop --no-build)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
"$TARGET/release/xtask" man "$TMP" >/dev/null
# -n: no name or time stamp in the gzip header, so the same page gives the same bytes.
gzip -9n "$TMP/eventfsd.1"

# The files in the repository name the /usr install; other prefixes get their own paths.
substitute() { # src dest
    sed -e "s|/usr/bin/eventfsd|$PREFIX/bin/eventfsd|g" \
        -e "s|/usr/share/eventfsd|$SHARE|g" "$1" >"$2"
}
substitute "$REPO/packaging/systemd/eventfsd@.socket" "$TMP/eventfsd@.socket"
substitute "$REPO/packaging/systemd/eventfsd@.service" "$TMP/eventfsd@.service"
substitute "$REPO/packaging/qemu/90-eventfsd.json" "$TMP/90-eventfsd.json"
substitute "$REPO/packaging/systemd/eventfsd.conf.example" "$TMP/eventfsd.conf.example"

put() { # mode src installed-path
    install -D -m "$1" "$2" "$DESTDIR$3"
    echo "installed $DESTDIR$3"
}
put 0755 "$TARGET/release/eventfsd" "$BIN"
put 0644 "$TMP/eventfsd.1.gz" "$MAN"
put 0644 "$TMP/eventfsd@.socket" "$UNITDIR/eventfsd@.socket"
put 0644 "$TMP/eventfsd@.service" "$UNITDIR/eventfsd@.service"
put 0644 "$TMP/90-eventfsd.json" "$DESCRIPTOR"
put 0644 "$REPO/docs/policy.example.toml" "$SHARE/policy.example.toml"
put 0644 "$TMP/eventfsd.conf.example" "$SHARE/eventfsd.conf.example"
# A copy of the catalog compiled into the binary: a path libvirt can name (<source dir=...>);
# the daemon recognises it and serves the binary's own shared pages instead.
put 0644 "$REPO/crates/eventfs-core/catalog/default.evcat" "$SHARE/default.evcat"
put 0644 "$REPO/README.md" "$DOC/README.md"
if [ -z "$DESTDIR" ]; then
    echo "install.sh: next: systemctl daemon-reload; per VM: systemctl enable --now eventfsd@VM.socket (README, \"Install\")"
fi
