#!/usr/bin/env bash
# Browser end-to-end tests: real Chromium against a real huizhen server.
#
#   scripts/test-browser.sh SERVER_BINARY      e.g. scripts/test-browser.sh target/debug/huizhen
#
# 1. installs Debian's Chromium if /usr/bin/chromium is missing (apt; no browser downloads),
# 2. runs `npm ci` in tests/browser unless node_modules already matches package-lock.json,
# 3. type-checks the web client (tsc --checkJs, tests/browser/tsconfig.json) and checks its
#    message catalogue (tests/browser/i18n-check.mjs: keys in both languages, used, no literal),
# 4. in a private network namespace (only loopback exists, so nothing can leave the machine):
#    creates a throw-away data dir and config, sets up the network with the CLI (a township
#    health centre with a doctor, a county hospital with a cardiology specialist and its own
#    administrator, a pharmacist, a supervisor, the network's administrator), starts the
#    server, waits for /healthz, runs tests/browser/consultation.test.mjs, stops the server.
#
# Screenshots and the server log land in test-output/browser/. The last line printed is
# "N passed, N failed"; the exit status is 0 only when everything passed.
#
# Environment: KEEP_TMP=1 keeps the temporary data dir; CHROMIUM overrides the browser binary;
# HUIZHEN_CLIENT_DIR=web-client serves the web client from disk instead of the binary's copy.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_DIR="$ROOT/tests/browser"
OUT_DIR="$ROOT/test-output/browser"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
LISTEN="127.0.0.1:18443"
METRICS="127.0.0.1:18464"

summary_fail() {
  # Setup failed before any test ran: still end with the summary line.
  echo "error: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

# ---- phase 2: inside the private network namespace --------------------------------------------
if [[ "${1:-}" == "--inside-netns" ]]; then
  SERVER="$2"
  ip link set lo up

  TMP="$(mktemp -d -t huizhen-browser.XXXXXX)"
  SERVER_PID=""
  cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
      kill -TERM "$SERVER_PID" 2>/dev/null || true
      # Graceful shutdown first (it drains connections); then insist.
      for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$SERVER_PID" 2>/dev/null || true
      wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP_TMP:-}" == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
  }
  trap cleanup EXIT

  CONFIG="$TMP/huizhen.toml"
  cat >"$CONFIG" <<EOF
[server]
listen = "$LISTEN"
cert_dir = "$TMP/certs"
[storage]
data_dir = "$TMP/data"
[media]
udp_bind = "127.0.0.1:0"
announce = ["127.0.0.1"]
# Two workers: one check runs a second room, which lands on the second worker's port.
workers = 2
[metrics]
listen = "$METRICS"
# The institution's zone, named so the client is told one (timezone-scenario.mjs runs a browser
# in another).
[display]
time_zone = "UTC"
EOF

  # A fresh random password per run; it only ever lives in this process tree.
  PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)"
  : >"$OUT_DIR/user-add.log"
  # One administrative command through the CLI, before the server starts; its output is kept.
  admin() {
    local what="$1"
    shift
    if ! "$SERVER" --config "$CONFIG" "$@" >>"$OUT_DIR/user-add.log" 2>&1; then
      cat "$OUT_DIR/user-add.log" >&2
      summary_fail "could not $what with '$SERVER $1 $2'"
    fi
  }
  # An account with the run's password: USERNAME DISPLAY_NAME ROLE [more `user add` options].
  add_account() {
    local username="$1" name="$2" role="$3"
    shift 3
    if ! printf '%s\n' "$PASSWORD" | "$SERVER" --config "$CONFIG" user add \
        --username "$username" --display-name "$name" --role "$role" --password-stdin "$@" \
        >>"$OUT_DIR/user-add.log" 2>&1; then
      cat "$OUT_DIR/user-add.log" >&2
      summary_fail "could not create the $role account '$username' with '$SERVER user add'"
    fi
  }
  # The network: the doctor at a township health centre (the first run's "Default institution",
  # renamed), a cardiologist at the county hospital whom the doctor puts on the care team.
  add_account doc "Dr. Wang" doctor --title 主治医师 --specialty "General practice"
  admin "rename the default institution" institution rename \
    --institution "Default institution" --name 青山镇卫生院 --kind township_clinic
  admin "add the county hospital" institution add --name 县人民医院 --kind hospital
  admin "add the cardiology department" department add --institution 县人民医院 --name 心血管内科
  add_account spec 赵敏 specialist --institution 县人民医院 --department 心血管内科 \
    --title 主任医师 --specialty Cardiology
  # The administrators: the network's, and the county hospital's own (admin-scenario.mjs).
  add_account netadmin "Administrator Li" admin
  add_account countyadmin "Administrator Chen" institution_admin --institution 县人民医院
  add_account pharm "Pharmacist Zhou" pharmacist
  add_account sup "Regulator Sun" supervisor

  "$SERVER" --config "$CONFIG" serve >"$OUT_DIR/server.log" 2>&1 &
  SERVER_PID=$!

  # Wait for /healthz (the first start also generates the TLS certificate).
  healthy=0
  for _ in $(seq 120); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    if curl -ksf --max-time 2 "https://$LISTEN/healthz" >/dev/null 2>&1; then healthy=1; break; fi
    sleep 0.5
  done
  if [[ "$healthy" != 1 ]]; then
    echo "--- server log (tail) ---" >&2
    tail -n 50 "$OUT_DIR/server.log" >&2 || true
    summary_fail "the server did not become healthy at https://$LISTEN/healthz"
  fi

  set +e
  HUIZHEN_URL="https://$LISTEN" HUIZHEN_METRICS_URL="http://$METRICS/metrics" \
    HUIZHEN_USER=doc HUIZHEN_PASSWORD="$PASSWORD" HUIZHEN_SPECIALIST=spec \
    HUIZHEN_PHARMACIST=pharm HUIZHEN_SUPERVISOR=sup \
    HUIZHEN_ADMIN=netadmin HUIZHEN_INSTITUTION_ADMIN=countyadmin \
    HUIZHEN_TEST_OUTPUT="$OUT_DIR" CHROMIUM="$CHROMIUM" \
    node "$BROWSER_DIR/consultation.test.mjs" 2>&1 | tee "$OUT_DIR/test.log"
  status=${PIPESTATUS[0]}
  set -e

  if [[ "$status" != 0 ]]; then
    echo "--- server log (tail; full log in test-output/browser/server.log) ---"
    tail -n 40 "$OUT_DIR/server.log" || true
  fi
  # The summary line must be the very last line.
  summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$OUT_DIR/test.log" | tail -n 1 || true)"
  echo "${summary:-0 passed, 1 failed}"
  if [[ -z "$summary" && "$status" == 0 ]]; then status=1; fi
  exit "$status"
fi

# ---- phase 1: preparation (needs the network for apt and npm) ---------------------------------
if [[ $# -ne 1 ]]; then
  echo "usage: $0 SERVER_BINARY" >&2
  exit 2
fi
[[ -x "$1" ]] || summary_fail "server binary '$1' is not executable"
SERVER="$(realpath "$1")"

as_root() {
  if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi
}

if [[ ! -x "$CHROMIUM" ]]; then
  echo "installing chromium (apt)…" >&2
  as_root apt-get update -q >&2 || summary_fail "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 \
    || summary_fail "could not install chromium"
fi
command -v node >/dev/null || summary_fail "node is not installed"
command -v curl >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl >&2
command -v ip >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 >&2

# npm ci only when the lock file changed since the last install (the stamp holds its hash).
LOCK_HASH="$(sha256sum "$BROWSER_DIR/package-lock.json" | cut -d' ' -f1)"
STAMP="$BROWSER_DIR/node_modules/.huizhen-lock-sha256"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$LOCK_HASH" ]]; then
  (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund >&2) || summary_fail "npm ci failed"
  echo "$LOCK_HASH" >"$STAMP"
fi

echo "type-checking web-client/js (tsc --checkJs --strict)…" >&2
"$BROWSER_DIR/node_modules/.bin/tsc" -p "$BROWSER_DIR/tsconfig.json" || summary_fail "tsc found type errors"
echo "checking the message catalogue (tests/browser/i18n-check.mjs)…" >&2
node "$BROWSER_DIR/i18n-check.mjs" >&2 || summary_fail "the message catalogue check failed"

mkdir -p "$OUT_DIR"
# Made absolute here, before the working directory can matter.
if [[ -n "${HUIZHEN_CLIENT_DIR:-}" ]]; then
  HUIZHEN_CLIENT_DIR="$(realpath "$HUIZHEN_CLIENT_DIR")"
  export HUIZHEN_CLIENT_DIR
fi
# The test itself runs with no network but loopback. unshare -n needs root (or user namespaces).
if [[ "$(id -u)" == 0 ]]; then
  exec unshare -n -- "${BASH_SOURCE[0]}" --inside-netns "$SERVER"
else
  exec unshare -r -n -- "${BASH_SOURCE[0]}" --inside-netns "$SERVER"
fi
