#!/usr/bin/env bash
# Browser end-to-end tests: real Chromium and Firefox against a real huizhen server.
#
#   scripts/test-browser.sh SERVER_BINARY      e.g. scripts/test-browser.sh target/debug/huizhen
#
# 1. installs Debian's Chromium, Firefox ESR and coturn if /usr/bin/chromium, /usr/bin/firefox-esr
#    or /usr/bin/turnserver is missing (apt; no browser downloads),
# 2. runs `npm ci` in tests/browser unless node_modules already matches package-lock.json
#    (playwright-core drives Chromium, puppeteer-core drives Firefox over WebDriver BiDi; neither
#    downloads a browser),
# 3. type-checks the web client (tsc --checkJs, tests/browser/tsconfig.json) and checks its
#    message catalogue (tests/browser/i18n-check.mjs: keys in both languages, used, no literal),
# 4. in a private network namespace (nothing can leave the machine: loopback, and a veth pair
#    whose two ends both stay in the namespace, 198.18.0.1 and 198.18.0.2, with a default route
#    through it, because Firefox gathers no loopback ICE candidate and gathers none at all
#    without a default route; the server's media binds to and announces 198.18.0.1):
#    creates a throw-away data dir and config, sets up the network with the CLI (a township
#    health centre with a doctor, a county hospital with a cardiology specialist and its own
#    administrator, a pharmacist, a supervisor, the network's administrator), starts the
#    server, waits for /healthz, runs tests/browser/consultation.test.mjs, stops the server.
#    (Its TURN scenario, tests/browser/turn-scenario.mjs, starts and stops a coturn and a second
#    server of its own in the same namespace: it is told the binary and the veth addresses. Its
#    cap scenario, tests/browser/cap-scenario.mjs, puts the impairment proxy huizhen-impair on
#    one page's path: the binary beside the server's, else built here with cargo.)
#
# Screenshots and the server log land in test-output/browser/. The last line printed is
# "N passed, N failed"; the exit status is 0 only when everything passed.
#
# Environment: KEEP_TMP=1 keeps the temporary data dir; CHROMIUM and FIREFOX override the browser
# binaries; HUIZHEN_CLIENT_DIR=web-client serves the web client from disk instead of the binary's
# copy.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_DIR="$ROOT/tests/browser"
OUT_DIR="$ROOT/test-output/browser"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
FIREFOX="${FIREFOX:-/usr/bin/firefox-esr}"
LISTEN="127.0.0.1:18443"
METRICS="127.0.0.1:18464"
# The media address: one end of a veth pair inside the test's namespace (a benchmarking range,
# RFC 2544, that exists nowhere else here); 127.0.0.1 when no veth can be made.
MEDIA_ADDR="198.18.0.1"
MEDIA_PEER="198.18.0.2"

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
  # Firefox needs a non-loopback address and a default route to gather a candidate at all; both
  # ends of the pair stay in this namespace, so the route leads nowhere but back into it.
  FIREFOX_UNAVAILABLE=""
  if ! {
    ip link add hz0 type veth peer name hz1 &&
      ip addr add "$MEDIA_ADDR/24" dev hz0 && ip addr add "$MEDIA_PEER/24" dev hz1 &&
      ip link set hz0 up && ip link set hz1 up &&
      ip route add default via "$MEDIA_PEER" dev hz0
  } >"$OUT_DIR/netns.log" 2>&1; then
    cat "$OUT_DIR/netns.log" >&2
    FIREFOX_UNAVAILABLE="no veth pair could be made in the test's network namespace"
    FIREFOX_UNAVAILABLE+=" (test-output/browser/netns.log); run scripts/test-browser.sh as root"
    echo "warning: $FIREFOX_UNAVAILABLE; media stays on 127.0.0.1, the Firefox checks fail" >&2
    MEDIA_ADDR="127.0.0.1"
  fi

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
udp_bind = "$MEDIA_ADDR:0"
announce = ["$MEDIA_ADDR"]
# Two workers: one check runs a second room, which lands on the second worker's port.
workers = 2
[metrics]
listen = "$METRICS"
[webhooks]
# tests/browser/webhook-scenario.mjs receives events on a plain HTTP server on loopback, and
# takes it down for a while: an event is given up after three attempts a fraction of a second
# apart (not twelve over hours), to be sent again from the console.
allow_http_loopback = true
max_attempts = 3
backoff_base_ms = 200
backoff_max_s = 1
# The institution's zone, named so the client is told one (timezone-scenario.mjs runs a browser
# in another).
[display]
time_zone = "UTC"
# The institution's look, on every page of every scenario (branding-scenario.mjs checks it).
[branding]
name_zh = "慧诊测试医院"
name_en = "Huizhen Test Hospital"
logo_file = "$ROOT/tests/fixtures/branding/logo.png"
accent = "#1a7f37"
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
    HUIZHEN_TEST_OUTPUT="$OUT_DIR" CHROMIUM="$CHROMIUM" FIREFOX="$FIREFOX" \
    HUIZHEN_FIREFOX_UNAVAILABLE="$FIREFOX_UNAVAILABLE" \
    HUIZHEN_TEST_SERVER_BIN="$SERVER" HUIZHEN_TEST_MEDIA_ADDR="$MEDIA_ADDR" \
    HUIZHEN_TEST_TURN_ADDR="$MEDIA_PEER" HUIZHEN_TEST_IMPAIR_BIN="${HUIZHEN_TEST_IMPAIR_BIN:-}" \
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

missing=()
[[ -x "$CHROMIUM" ]] || missing+=(chromium)
[[ -x "$FIREFOX" ]] || missing+=(firefox-esr)
# The TURN scenario's relay (tests/browser/turn-scenario.mjs).
[[ -x /usr/bin/turnserver ]] || missing+=(coturn)
# Its run with a trusted certificate authority puts the authority into a Chromium's NSS store.
command -v certutil >/dev/null || missing+=(libnss3-tools)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} (apt)…" >&2
  as_root apt-get update -q >&2 || summary_fail "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 \
    || summary_fail "could not install ${missing[*]}"
fi
# A CJK font, so that the Chinese screens render as Chinese (not boxes) in the screenshots the
# run leaves, and text measured in Chinese has real glyph widths.
if ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then
  echo "installing fonts-noto-cjk (apt)…" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-noto-cjk >&2 \
    || { as_root apt-get update -q >&2 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-noto-cjk >&2; } \
    || summary_fail "could not install fonts-noto-cjk"
fi
command -v node >/dev/null || summary_fail "node is not installed"
command -v curl >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl >&2
command -v ip >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 >&2

# npm ci only when the lock file changed since the last install (the stamp holds its hash).
LOCK_HASH="$(sha256sum "$BROWSER_DIR/package-lock.json" | cut -d' ' -f1)"
STAMP="$BROWSER_DIR/node_modules/.huizhen-lock-sha256"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$LOCK_HASH" ]]; then
  # puppeteer-core downloads nothing; the variable says so to anything that might.
  (cd "$BROWSER_DIR" && PUPPETEER_SKIP_DOWNLOAD=true npm ci --no-audit --no-fund >&2) \
    || summary_fail "npm ci failed"
  echo "$LOCK_HASH" >"$STAMP"
fi

echo "type-checking web-client/js (tsc --checkJs --strict)…" >&2
"$BROWSER_DIR/node_modules/.bin/tsc" -p "$BROWSER_DIR/tsconfig.json" || summary_fail "tsc found type errors"
echo "checking the message catalogue (tests/browser/i18n-check.mjs)…" >&2
node "$BROWSER_DIR/i18n-check.mjs" >&2 || summary_fail "the message catalogue check failed"

# The impairment proxy (impair/, huizhen-impair), which cap-scenario.mjs puts on one page's path:
# beside the server binary where it was built there, else built now (into the same target
# directory as `cargo test`; the library is already built, so this is quick).
HUIZHEN_TEST_IMPAIR_BIN="${HUIZHEN_TEST_IMPAIR_BIN:-$(dirname "$SERVER")/huizhen-impair}"
if [[ ! -x "$HUIZHEN_TEST_IMPAIR_BIN" ]]; then
  echo "building huizhen-impair (cargo build -p huizhen-impair)…" >&2
  (cd "$ROOT" && cargo build --locked -q -p huizhen-impair >&2) || summary_fail "could not build huizhen-impair"
  HUIZHEN_TEST_IMPAIR_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/huizhen-impair"
fi
HUIZHEN_TEST_IMPAIR_BIN="$(realpath "$HUIZHEN_TEST_IMPAIR_BIN")"
export HUIZHEN_TEST_IMPAIR_BIN

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
