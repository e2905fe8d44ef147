#!/usr/bin/env bash
# package-test.sh - builds the Debian package and test-installs it in a scratch root, leaving
# the host untouched.
#
#   1. scripts/package-deb.sh (--no-build when target/release/eventfsd exists, unless --build);
#   2. dpkg-deb --info: the control fields; Depends covers the binary's newest GLIBC_ symbol;
#   3. dpkg-deb --contents: exactly the expected files, owned by root, with their modes;
#   4. dpkg --root=SCRATCH -i: installed; dpkg -L lists the same files;
#   5. the installed files: eventfsd --version and --print-capabilities, the vhost-user
#      descriptor (JSON, "type": "fs", binary /usr/bin/eventfsd), the man page (title, and
#      every long option of --help), the units (systemd-analyze verify against the scratch
#      root), and the service's ExecStart run under systemd-socket-activate: it serves the
#      inherited socket, writes vm1.prom, and stops on SIGTERM;
#   6. dpkg --root -r, then --purge: nothing of the package is left;
#   7. scripts/install.sh --prefix /usr/local into a scratch DESTDIR: the paths in the units,
#      descriptor (/etc/qemu/vhost-user) and example follow the prefix; --uninstall removes
#      every file it installed;
#   8. the host's dpkg status and log are unchanged.
# dpkg logs to SCRATCH (its default log is the host's, even with --root). A check whose tool is
# missing (systemd-analyze, systemd-socket-activate, objdump; the dpkg install needs root) is
# skipped, or fails when EVENTFSD_REQUIRE_PREREQS=1 (as in CI). The last line is
# "N passed, M failed, K skipped"; the exit status is 0 only when M is 0.
#
# Usage: scripts/package-test.sh [--build]
# shellcheck disable=SC2317 # the functions run through check() and the traps
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
BUILD=0
while [ $# -gt 0 ]; do
    case "$1" in
        --build) BUILD=1; shift ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
        *) echo "package-test: unknown argument: $1" >&2; exit 2 ;;
    esac
done
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET=$REPO/$TARGET ;; esac
REQUIRE=${EVENTFSD_REQUIRE_PREREQS:-0}
VERSION=$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml")
ARCH=$(dpkg --print-architecture)
# Every file of the package (directories aside), sorted.
EXPECTED="/usr/bin/eventfsd
/usr/lib/systemd/system/eventfsd@.service
/usr/lib/systemd/system/eventfsd@.socket
/usr/share/doc/eventfsd/README.md
/usr/share/doc/eventfsd/copyright
/usr/share/eventfsd/default.evcat
/usr/share/eventfsd/eventfsd.conf.example
/usr/share/eventfsd/policy.example.toml
/usr/share/man/man1/eventfsd.1.gz
/usr/share/qemu/vhost-user/90-eventfsd.json"

PASS=0
FAIL=0
SKIP=0
note() { echo "package-test: $*"; }
ok() { PASS=$((PASS + 1)); note "PASS $*"; }
bad() { FAIL=$((FAIL + 1)); note "FAIL $*"; }
skip() { # name reason
    if [ "$REQUIRE" = 1 ]; then
        bad "$1: $2 (EVENTFSD_REQUIRE_PREREQS=1)"
    else
        SKIP=$((SKIP + 1))
        note "SKIP $1: $2"
    fi
}
check() { # name command...: PASS when the command succeeds
    local name=$1
    shift
    if "$@"; then ok "$name"; else bad "$name"; fi
}
finish() {
    echo "$PASS passed, $FAIL failed, $SKIP skipped"
    [ "$FAIL" = 0 ]
    exit $?
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eventfsd-package-test.XXXXXX")
DPID=""
cleanup() {
    stop_pid "$DPID"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

host_state() { # what a test install must not change on the host
    local f
    for f in /var/lib/dpkg/status /var/log/dpkg.log; do
        if [ -e "$f" ]; then md5sum "$f"; else echo "absent $f"; fi
    done
}
HOST_BEFORE=$(host_state)

# 1. Build.
args=()
if [ "$BUILD" = 0 ] && [ -x "$TARGET/release/eventfsd" ]; then
    args=(--no-build)
    if [ ! -x "$TARGET/release/xtask" ]; then
        (cd "$REPO" && cargo build --release --locked -p xtask) || { bad "build xtask"; finish; }
    fi
    note "reusing $TARGET/release/eventfsd"
fi
DEB=$("$REPO/scripts/package-deb.sh" "${args[@]}" | tail -n1)
if [ -n "$DEB" ] && [ -f "$DEB" ] && [ "$DEB" = "$TARGET/debian/eventfsd_${VERSION}_${ARCH}.deb" ]; then
    ok "package built: ${DEB#"$REPO"/}"
else
    bad "package built (package-deb.sh printed '$DEB')"
    finish
fi

# 2. Control fields.
field_is() { [ "$(dpkg-deb -f "$DEB" "$1")" = "$2" ]; }
check "control Package: eventfsd" field_is Package eventfsd
check "control Version: $VERSION (Cargo.toml)" field_is Version "$VERSION"
check "control Architecture: $ARCH" field_is Architecture "$ARCH"
check "control Section: admin" field_is Section admin
check "control Priority: optional" field_is Priority optional
check "control Suggests: qemu-system-x86, libvirt-daemon-system" \
    field_is Suggests "qemu-system-x86, libvirt-daemon-system"
check "control Maintainer and Description present" \
    test -n "$(dpkg-deb -f "$DEB" Maintainer)" -a -n "$(dpkg-deb -f "$DEB" Description)"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - ./usr/bin/eventfsd >"$TMP/eventfsd.packaged"
if command -v objdump >/dev/null; then
    need=$(objdump -T "$TMP/eventfsd.packaged" | grep -o 'GLIBC_[0-9][0-9.]*' |
        sed 's/GLIBC_//' | sort -uV | tail -n1)
    have=$(echo "$DEPENDS" | sed -n 's/.*libc6 (>= \([^)]*\)).*/\1/p')
    if [ -n "$need" ] && [ -n "$have" ] && dpkg --compare-versions "$have" ge "$need"; then
        ok "Depends: $DEPENDS (the binary needs GLIBC_$need)"
    else
        bad "Depends: '$DEPENDS' does not cover GLIBC_$need"
    fi
else
    skip "Depends covers the binary's GLIBC_ version" "objdump not found (binutils)"
fi

# 3. Contents.
dpkg-deb --contents "$DEB" >"$TMP/contents"
files=$(awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' "$TMP/contents" | sort)
if [ "$files" = "$EXPECTED" ]; then
    ok "contents: exactly the $(echo "$EXPECTED" | wc -l) expected files"
else
    bad "contents differ from the expected files:"
    diff <(echo "$EXPECTED") <(echo "$files") | sed 's/^/    /'
fi
check "contents: every entry owned by root/root" \
    test -z "$(awk '$2 != "root/root"' "$TMP/contents")"
modes_ok() {
    awk '
        $6 == "./usr/bin/eventfsd" { if ($1 != "-rwxr-xr-x") bad = 1; next }
        $1 ~ /^d/ { if ($1 != "drwxr-xr-x") bad = 1; next }
        { if ($1 != "-rw-r--r--") bad = 1 }
        END { exit bad }
    ' "$TMP/contents"
}
check "contents: modes 0755 (binary, directories) and 0644 (the rest)" modes_ok

# 4. Install into a scratch root.
ROOT=$TMP/root
ADMIN=$ROOT/var/lib/dpkg
mkdir -p "$ADMIN/info" "$ADMIN/updates"
touch "$ADMIN/status" "$ADMIN/available"
# --log: dpkg's default log is the host's /var/log/dpkg.log even with --root.
# --force-depends: the scratch root has no libc6 package. --path-include: undo a host's
# path-exclude (slim images drop /usr/share/doc and man pages).
DPKG=(dpkg "--root=$ROOT" "--log=$TMP/dpkg.log" --force-depends "--path-include=*")
status_of() { dpkg-query "--admindir=$ADMIN" -W -f='${Status}' eventfsd 2>/dev/null; }
INSTALLED=0
if [ "$(id -u)" != 0 ]; then
    skip "dpkg --root -i / -r / --purge and the installed files" "needs root (file owners)"
elif "${DPKG[@]}" -i "$DEB" >"$TMP/dpkg-i.log" 2>&1 && [ "$(status_of)" = "install ok installed" ]; then
    ok "dpkg --root -i: install ok installed"
    INSTALLED=1
else
    bad "dpkg --root -i (status '$(status_of)'):"
    sed 's/^/    /' "$TMP/dpkg-i.log"
fi

if [ "$INSTALLED" = 1 ]; then
    listed=$(dpkg-query "--admindir=$ADMIN" -L eventfsd | while read -r p; do
        [ -d "$ROOT$p" ] || echo "$p"
    done | sort)
    check "dpkg -L: the expected files, all present under the root" \
        test "$listed" = "$EXPECTED" -a -z "$(for p in $EXPECTED; do [ -f "$ROOT$p" ] || echo "$p"; done)"

    # 5. The installed files.
    BIN=$ROOT/usr/bin/eventfsd
    check "eventfsd --version: eventfsd $VERSION" test "$("$BIN" --version)" = "eventfsd $VERSION"
    caps_ok() {
        "$BIN" --print-capabilities | python3 -c 'import json, sys; assert json.load(sys.stdin)["type"] == "fs"'
    }
    check "eventfsd --print-capabilities: JSON with \"type\": \"fs\"" caps_ok
    descriptor_ok() {
        python3 - "$ROOT/usr/share/qemu/vhost-user/90-eventfsd.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["type"] == "fs", d
assert d["binary"] == "/usr/bin/eventfsd", d
assert "features" not in d, d  # libvirt ignores them; QEMU's schema has none for fs
assert d["description"], d
EOF
    }
    check "vhost-user descriptor: JSON, type fs, binary /usr/bin/eventfsd, no features" descriptor_ok
    check "vhost-user descriptor sorts after virtiofsd's 50-*.json" \
        test "$(printf '%s\n' 50-virtiofsd.json 50-qemu-virtiofsd.json 90-eventfsd.json | sort | tail -n1)" = 90-eventfsd.json
    zcat "$ROOT/usr/share/man/man1/eventfsd.1.gz" >"$TMP/eventfsd.1"
    check "man page: .TH EVENTFSD 1" grep -q '^\.TH EVENTFSD 1 ' "$TMP/eventfsd.1"
    # roff writes a hyphen as \-.
    missing=$("$BIN" --help | grep -o -- '--[a-z][a-z-]*' | sort -u | while read -r opt; do
        grep -qF -- "${opt//-/\\-}" "$TMP/eventfsd.1" || echo "$opt"
    done)
    check "man page: every long option of --help (--socket-path, ...)${missing:+; missing: $missing}" \
        test -z "$missing" -a -n "$(grep -F -- '\-\-socket\-path' "$TMP/eventfsd.1")"
    UNITS=$ROOT/usr/lib/systemd/system
    # shellcheck disable=SC2016 # $EVENTFSD_OPTS is the unit's, not ours
    check "service: ExecStart=/usr/bin/eventfsd --stats-file /run/eventfsd/%i.prom \$EVENTFSD_OPTS" \
        grep -qxF 'ExecStart=/usr/bin/eventfsd --stats-file /run/eventfsd/%i.prom $EVENTFSD_OPTS' \
        "$UNITS/eventfsd@.service"
    check "socket: ListenStream=/run/eventfsd/%i.sock" \
        grep -qxF 'ListenStream=/run/eventfsd/%i.sock' "$UNITS/eventfsd@.socket"

    # systemd-analyze verify checks that ExecStart exists, under --root: a root made of the
    # host's units (for sysinit.target & co.), the installed units and binary.
    host_units=""
    for d in /usr/lib/systemd/system /lib/systemd/system; do
        [ -f "$d/sysinit.target" ] && { host_units=$d; break; }
    done
    if ! command -v systemd-analyze >/dev/null; then
        skip "systemd-analyze verify" "systemd-analyze not found (package systemd)"
    elif ! systemd-analyze --help 2>&1 | grep -q -- '--root'; then
        skip "systemd-analyze verify" "this systemd-analyze has no --root"
    elif [ -z "$host_units" ]; then
        skip "systemd-analyze verify" "no sysinit.target on this host to verify against"
    else
        V=$TMP/verify-root
        mkdir -p "$V/usr/lib/systemd" "$V/usr/bin"
        cp -a "$host_units" "$V/usr/lib/systemd/system"
        cp "$UNITS/eventfsd@.service" "$UNITS/eventfsd@.socket" "$V/usr/lib/systemd/system/"
        cp "$BIN" "$V/usr/bin/eventfsd"
        verify() { systemd-analyze verify --man=no "--root=$V" eventfsd@vm1.socket eventfsd@vm1.service 2>&1; }
        out=$(verify)
        rc=$?
        if [ "$rc" = 0 ] && [ -z "$out" ]; then
            ok "systemd-analyze verify eventfsd@vm1.socket eventfsd@vm1.service: no warning"
        else
            bad "systemd-analyze verify (rc $rc):"
            mapfile -t lines <<<"$out"
            printf '    %s\n' "${lines[@]}"
        fi
        # The control: the same verify does notice a missing binary.
        rm "$V/usr/bin/eventfsd"
        check "systemd-analyze verify notices a missing ExecStart binary (control)" \
            grep -q 'eventfsd is not executable' <<<"$(verify)"
    fi

    # The service's ExecStart, socket-activated as systemd would: the daemon finds the socket
    # in LISTEN_FDS, serves the QEMU that connects, writes its Prometheus file, stops on SIGTERM.
    if ! command -v systemd-socket-activate >/dev/null; then
        skip "socket-activated ExecStart" "systemd-socket-activate not found (package systemd)"
    else
        SA=$TMP/run-eventfsd
        mkdir -p "$SA"
        (umask 022 && exec systemd-socket-activate -l "$SA/vm1.sock" "$BIN" --stats-file "$SA/vm1.prom") \
            >"$SA/log" 2>&1 &
        DPID=$!
        for _ in $(seq 1 50); do [ -S "$SA/vm1.sock" ] && break; sleep 0.1; done
        # A connection is what makes systemd-socket-activate exec the daemon (it keeps the pid).
        python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.close()' \
            "$SA/vm1.sock" 2>>"$SA/log"
        served=0
        for _ in $(seq 1 100); do
            grep -q 'vhost-user: frontend connected' "$SA/log" && grep -q 'vm="vm1"' "$SA/vm1.prom" 2>/dev/null &&
                { served=1; break; }
            sleep 0.1
        done
        if [ "$served" = 1 ]; then
            ok "socket-activated eventfsd served the inherited socket and wrote vm1.prom (vm=\"vm1\")"
        else
            bad "socket-activated eventfsd did not serve the inherited socket:"
            sed 's/^/    /' "$SA/log"
        fi
        # systemd's default UMask is 0022: the file node_exporter reads is world-readable.
        check "vm1.prom is mode 644 (readable by node_exporter)" \
            test "$(stat -c %a "$SA/vm1.prom" 2>/dev/null)" = 644
        kill -TERM "$DPID" 2>/dev/null
        stopped=0
        for _ in $(seq 1 100); do # TimeoutStopSec=10
            kill -0 "$DPID" 2>/dev/null || { stopped=1; break; }
            sleep 0.1
        done
        if [ "$stopped" = 1 ]; then
            wait "$DPID"
            rc=$?
            DPID=""
            check "socket-activated eventfsd stopped on SIGTERM within 10 s (exit status $rc)" test "$rc" = 0
            # The socket is systemd's (RemoveOnStop=): a restarted daemon serves it again.
            check "socket-activated eventfsd left the inherited socket file in place" test -S "$SA/vm1.sock"
        else
            bad "socket-activated eventfsd still runs 10 s after SIGTERM"
            sed 's/^/    /' "$SA/log"
        fi
    fi

    # 6. Remove, then purge.
    if "${DPKG[@]}" -r eventfsd >"$TMP/dpkg-r.log" 2>&1 && [ "$(status_of)" != "install ok installed" ]; then
        st=$(status_of)
        ok "dpkg --root -r: removed (status: ${st:-none, no conffiles to keep})"
    else
        bad "dpkg --root -r:"
        sed 's/^/    /' "$TMP/dpkg-r.log"
    fi
    check "after -r: no file of the package left" \
        test -z "$(for p in $EXPECTED; do [ -e "$ROOT$p" ] && echo "$p"; done)"
    if "${DPKG[@]}" --purge eventfsd >"$TMP/dpkg-purge.log" 2>&1 &&
        ! status_of | grep -q 'installed\|config-files'; then
        ok "dpkg --root --purge: the package is gone from the database"
    else
        bad "dpkg --root --purge (status '$(status_of)'):"
        sed 's/^/    /' "$TMP/dpkg-purge.log"
    fi
    left=$(cd "$ROOT" && find . -mindepth 1 -not -path ./var -not -path './var/lib' \
        -not -path './var/lib/dpkg' -not -path './var/lib/dpkg/*')
    check "after --purge: nothing left in the root but dpkg's database${left:+; left: $left}" \
        test -z "$left"
fi

# 7. install.sh with another prefix, then --uninstall.
DEST=$TMP/destdir
if "$REPO/scripts/install.sh" --no-build --prefix /usr/local --destdir "$DEST" >"$TMP/install.log" 2>&1; then
    ok "install.sh --prefix /usr/local --destdir: $(grep -c '^installed ' "$TMP/install.log") files"
    check "install.sh: ExecStart=/usr/local/bin/eventfsd in the service" \
        grep -q '^ExecStart=/usr/local/bin/eventfsd ' "$DEST/usr/local/lib/systemd/system/eventfsd@.service"
    check "install.sh: descriptor in /etc/qemu/vhost-user naming /usr/local/bin/eventfsd" \
        grep -q '"binary": "/usr/local/bin/eventfsd"' "$DEST/etc/qemu/vhost-user/90-eventfsd.json"
    check "install.sh: the conf example points at /usr/local/share/eventfsd" \
        grep -q '/usr/local/share/eventfsd/policy.example.toml' "$DEST/usr/local/share/eventfsd/eventfsd.conf.example"
    "$REPO/scripts/install.sh" --uninstall --prefix /usr/local --destdir "$DEST" >"$TMP/uninstall.log" 2>&1
    left=$(find "$DEST" -not -type d)
    check "install.sh --uninstall: removed all $(grep -c '^removed ' "$TMP/uninstall.log") files${left:+; left: $left}" \
        test -z "$left" -a "$(grep -c '^removed ' "$TMP/uninstall.log")" = "$(grep -c '^installed ' "$TMP/install.log")"
else
    bad "install.sh --prefix /usr/local --destdir:"
    sed 's/^/    /' "$TMP/install.log"
fi

# 8. The host.
check "host's /var/lib/dpkg/status and /var/log/dpkg.log unchanged" test "$(host_state)" = "$HOST_BEFORE"
finish
