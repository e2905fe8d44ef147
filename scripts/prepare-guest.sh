#!/usr/bin/env bash
# prepare-guest.sh - build everything the eventfsd test guest needs.
#
# * installs qemu-system-x86, busybox-static and cpio when missing (apt-get);
# * fetches a Debian 6.1 guest kernel (apt-get download linux-image-6.1.0-<N>-amd64),
#   unpacks it with dpkg -x and keeps only vmlinuz and the few modules the guest
#   needs (cached in .cache/guest/kernel/, fetched once);
# * fetches Debian's trace-cmd with its libraries and libtraceevent's plugins (apt-get
#   download; cached in .cache/guest/trace-cmd/, fetched once) for the real-client tests;
# * always rebuilds .cache/guest/initramfs.cpio.gz from busybox-static, those modules,
#   scripts/guest-init.sh (as /init), guest-tests/*.sh (as /guest-tests/), trace-cmd and
#   target/release/tracefs-rawread (the perfetto-style raw reader; built by guest-test.sh),
#   each with the shared libraries it loads.
#
# Usage: scripts/prepare-guest.sh [--expected-env FILE] [--refresh-kernel] [--quiet]
#   --expected-env FILE  copy FILE into the initramfs as /guest-tests/expected.env
#                        (guest-test.sh uses it to pass host-computed expectations)
#   --refresh-kernel     drop the cached kernel and fetch the newest one again
#   --quiet              only print the final "where things are" lines
# Environment:
#   EVENTFSD_GUEST_KERNEL_PKG  force a kernel package (e.g. linux-image-6.1.0-50-amd64)
#   EVENTFSD_CACHE_DIR         cache directory (default: <repo>/.cache/guest)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${EVENTFSD_CACHE_DIR:-$REPO/.cache/guest}
KDIR=$CACHE/kernel
INITRAMFS=$CACHE/initramfs.cpio.gz
# Load order matters: each module only depends on the ones before it.
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci fuse virtiofs virtio_blk"

EXPECTED_ENV=""
REFRESH=0
QUIET=0
while [ $# -gt 0 ]; do
    case "$1" in
        --expected-env) EXPECTED_ENV=$2; shift 2 ;;
        --refresh-kernel) REFRESH=1; shift ;;
        --quiet) QUIET=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "prepare-guest: unknown argument: $1" >&2; exit 2 ;;
    esac
done

say() { [ "$QUIET" = 1 ] || echo "prepare-guest: $*"; }
die() { echo "prepare-guest: ERROR: $*" >&2; exit 1; }

TMPDIRS=()
cleanup() {
    local d
    for d in "${TMPDIRS[@]}"; do
        [ -n "$d" ] && rm -rf -- "$d"
    done
}
trap cleanup EXIT

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep 'install ok installed' >/dev/null
}

ensure_packages() {
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]}"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; then
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
        fi
    fi
}

# Newest linux-image-6.1.0-<N>-amd64 (signed preferred, else -unsigned) that apt can fetch.
pick_kernel_pkg() {
    local names
    names=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
        grep -E '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' || true)
    if [ -z "$names" ]; then
        say "apt-cache knows no linux-image-6.1.0-*-amd64; running apt-get update" >&2
        apt-get update >&2
        names=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
            grep -E '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' || true)
    fi
    [ -n "$names" ] || return 1
    local n p
    for n in $(echo "$names" | sed -E 's/^linux-image-6\.1\.0-([0-9]+)-.*/\1/' | sort -rnu); do
        for p in "linux-image-6.1.0-$n-amd64" "linux-image-6.1.0-$n-amd64-unsigned"; do
            # (grep without -q: with pipefail, an early exit would SIGPIPE the writer)
            echo "$names" | grep -x "$p" >/dev/null || continue
            if apt-cache policy "$p" 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null; then
                echo "$p"
                return 0
            fi
        done
    done
    return 1
}

kernel_cached() {
    [ -s "$KDIR/vmlinuz" ] && [ -s "$KDIR/PACKAGE" ] || return 1
    if [ -n "${EVENTFSD_GUEST_KERNEL_PKG:-}" ] &&
        [ "$(cat "$KDIR/PACKAGE")" != "$EVENTFSD_GUEST_KERNEL_PKG" ]; then
        return 1
    fi
    local m
    for m in $MODULES; do
        [ -s "$KDIR/modules/$m.ko" ] || return 1
    done
}

fetch_kernel() {
    local pkg=${EVENTFSD_GUEST_KERNEL_PKG:-}
    if [ -z "$pkg" ]; then
        pkg=$(pick_kernel_pkg) || die "no linux-image-6.1.0-<N>-amd64 package found via apt-cache"
    fi
    say "fetching guest kernel package $pkg"
    mkdir -p "$CACHE"
    local work
    work=$(mktemp -d "$CACHE/.fetch.XXXXXX")
    TMPDIRS+=("$work")
    chmod 0777 "$work" # lets apt's _apt user write the download (no "unsandboxed" warning)
    (cd "$work" && apt-get download "$pkg") || die "apt-get download $pkg failed"
    local deb
    deb=$(ls "$work"/*.deb 2>/dev/null | head -n1)
    [ -n "$deb" ] || die "apt-get download produced no .deb"
    dpkg -x "$deb" "$work/x"
    local vmlinuz
    vmlinuz=$(ls "$work"/x/boot/vmlinuz-* 2>/dev/null | head -n1)
    [ -n "$vmlinuz" ] || die "no /boot/vmlinuz-* in $pkg"
    local moddir
    moddir=$(ls -d "$work"/x/lib/modules/*/ 2>/dev/null | head -n1)
    [ -n "$moddir" ] || die "no /lib/modules/<ver>/ in $pkg"

    local new=$work/kernel
    mkdir -p "$new/modules"
    cp "$vmlinuz" "$new/vmlinuz"
    cp "$work"/x/boot/config-* "$new/config" 2>/dev/null || true
    basename "$moddir" >"$new/KVER"
    local m f
    for m in $MODULES; do
        f=$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n1)
        if [ -z "$f" ]; then
            if grep -q "/$m.ko" "$moddir/modules.builtin" 2>/dev/null; then
                say "module $m is built into the kernel; skipping"
                : >"$new/modules/$m.builtin"
                # an empty marker keeps kernel_cached() happy and tells init to skip it
                printf 'builtin\n' >"$new/modules/$m.ko"
                continue
            fi
            die "module $m not found in $pkg"
        fi
        case "$f" in
            *.ko.xz) ensure_packages xz-utils; xz -dc "$f" >"$new/modules/$m.ko" ;;
            *.ko.zst) ensure_packages zstd; zstd -qdc "$f" >"$new/modules/$m.ko" ;;
            *.ko.gz) gzip -dc "$f" >"$new/modules/$m.ko" ;;
            *) cp "$f" "$new/modules/$m.ko" ;;
        esac
    done
    echo "$pkg" >"$new/PACKAGE"
    dpkg-deb -f "$deb" Version >"$new/VERSION"
    rm -rf "$KDIR"
    mv "$new" "$KDIR"
}

# Debian's trace-cmd and what it loads, unpacked once into $TCDIR/root.
TCDIR=$CACHE/trace-cmd
TRACE_CMD_PKGS="trace-cmd libtracefs1 libtraceevent1 libtraceevent1-plugin libzstd1"

fetch_trace_cmd() {
    [ -x "$TCDIR/root/usr/bin/trace-cmd" ] && return 0
    local new=$TCDIR.new
    rm -rf "$new"
    mkdir -p "$new/dl" "$new/root"
    say "downloading $TRACE_CMD_PKGS"
    if ! (cd "$new/dl" && apt-get download $TRACE_CMD_PKGS >/dev/null 2>&1); then
        apt-get update >/dev/null
        (cd "$new/dl" && apt-get download $TRACE_CMD_PKGS >/dev/null 2>&1) ||
            die "apt-get download $TRACE_CMD_PKGS failed"
    fi
    local deb
    for deb in "$new"/dl/*.deb; do dpkg-deb -x "$deb" "$new/root"; done
    rm -rf "$new/dl" "$TCDIR"
    mv "$new" "$TCDIR"
}

# install_with_libs FILE DEST ROOT: FILE at ROOT/DEST plus every shared library it loads, at
# the path the loader finds it (libraries unpacked under $TCDIR/root go to their Debian path).
install_with_libs() {
    local file=$1 dest=$2 root=$3 lib rel
    install -D -m 0755 "$file" "$root/$dest"
    for lib in $(LD_LIBRARY_PATH=$TCDIR/root/usr/lib/x86_64-linux-gnu ldd "$file" |
        awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
        rel=${lib#"$TCDIR/root"}
        [ -e "$root$rel" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$rel"
    done
}

install_guest_tools() {
    local root=$1 plugin
    install_with_libs "$TCDIR/root/usr/bin/trace-cmd" usr/bin/trace-cmd "$root"
    for plugin in "$TCDIR"/root/usr/lib/x86_64-linux-gnu/traceevent/plugins/*.so; do
        install_with_libs "$plugin" "${plugin#"$TCDIR/root/"}" "$root"
    done
    local rawread=$REPO/target/release/tracefs-rawread
    if [ -x "$rawread" ]; then
        install_with_libs "$rawread" usr/bin/tracefs-rawread "$root"
    else
        say "warning: $rawread not built (cargo build --release -p tracefs-raw); the raw-reader test will fail"
    fi
}

build_initramfs() {
    local busybox
    busybox=$(command -v busybox || true)
    [ -n "$busybox" ] || busybox=/bin/busybox
    [ -x "$busybox" ] || die "busybox not found"
    if ! file -L "$busybox" 2>/dev/null | grep 'statically linked' >/dev/null; then
        # `file` may be missing; fall back to ldd's verdict
        if ldd "$busybox" >/dev/null 2>&1; then
            die "$busybox is not statically linked (install busybox-static)"
        fi
    fi

    local root
    root=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-initramfs.XXXXXX")
    TMPDIRS+=("$root")
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,mnt,root,etc,lib/modules/eventfsd,guest-tests}
    chmod 1777 "$root/tmp"
    cp "$busybox" "$root/bin/busybox"
    local applet rel
    for applet in $("$root/bin/busybox" --list-full); do
        case "$applet" in
            bin/busybox) continue ;;
            bin/*) rel=busybox ;;
            sbin/*) rel=../bin/busybox ;;
            usr/bin/* | usr/sbin/*) rel=../../bin/busybox ;;
            *) continue ;;
        esac
        [ -e "$root/$applet" ] || ln -s "$rel" "$root/$applet"
    done
    # /dev/console must exist before devtmpfs is mounted or init starts without stdio.
    if [ "$(id -u)" = 0 ]; then
        mknod -m 600 "$root/dev/console" c 5 1
        mknod -m 666 "$root/dev/null" c 1 3
    fi
    local m
    for m in $MODULES; do
        if [ -e "$KDIR/modules/$m.builtin" ]; then continue; fi
        cp "$KDIR/modules/$m.ko" "$root/lib/modules/eventfsd/$m.ko"
    done
    echo "$MODULES" >"$root/lib/modules/eventfsd/ORDER"
    cat "$KDIR/KVER" >"$root/etc/eventfsd-guest-kernel"
    install -m 0755 "$REPO/scripts/guest-init.sh" "$root/init"
    # the guest-side mount helper users install in their guests (guest/eventfsd-mount)
    install -m 0755 "$REPO/guest/eventfsd-mount" "$root/usr/sbin/eventfsd-mount"
    # ... and as mount(8)'s helper for fstab's "eventfsd" type (README, "Guest")
    ln -sf eventfsd-mount "$root/usr/sbin/mount.eventfsd"
    install_guest_tools "$root"
    local t n=0
    for t in "$REPO"/guest-tests/*.sh; do
        [ -e "$t" ] || continue
        install -m 0755 "$t" "$root/guest-tests/"
        n=$((n + 1))
    done
    if [ -n "$EXPECTED_ENV" ]; then
        [ -r "$EXPECTED_ENV" ] || die "--expected-env $EXPECTED_ENV not readable"
        install -m 0644 "$EXPECTED_ENV" "$root/guest-tests/expected.env"
    fi
    echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
    echo "root:x:0:" >"$root/etc/group"

    local tmp
    tmp=$(mktemp "$CACHE/.initramfs.XXXXXX")
    TMPDIRS+=("$tmp")
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$INITRAMFS"
    say "initramfs: $n guest test script(s)${EXPECTED_ENV:+, expected.env from $EXPECTED_ENV}"
}

ensure_packages qemu-system-x86 busybox-static cpio
mkdir -p "$CACHE"
if [ "$REFRESH" = 1 ]; then rm -rf "$KDIR"; fi
if kernel_cached; then
    say "guest kernel cached: $(cat "$KDIR/PACKAGE") $(cat "$KDIR/VERSION" 2>/dev/null)"
else
    fetch_kernel
fi
fetch_trace_cmd
build_initramfs

echo "kernel:    $KDIR/vmlinuz ($(cat "$KDIR/PACKAGE") $(cat "$KDIR/VERSION" 2>/dev/null), $(cat "$KDIR/KVER"))"
echo "modules:   $KDIR/modules/"
echo "initramfs: $INITRAMFS ($(du -h "$INITRAMFS" | cut -f1))"
