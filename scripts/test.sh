#!/usr/bin/env bash
# Sets up and runs every test: formatting, lints, unit and /dev/fuse integration tests, then the
# guest suite (a real QEMU guest mounting eventfsd over virtio-fs). Run as root on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "guest tests"
scripts/guest-test.sh
