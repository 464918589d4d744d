# Shared by bench/run and bench/scale (sourced, not run): build, servers, Postern setup, the
# correctness checks and the wrk cases. Expects ROOT, DURATION, WARMUP, CONNS and THREADS.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/postern-target}"
BIN="$CARGO_TARGET_DIR/release"
ADMIN_PW=bench-admin-password

need() { command -v "$1" >/dev/null 2>&1; }

# Installs wrk, builds the release binaries, makes the work directory and the request bodies.
prepare() {
  if ! need wrk; then
    echo "installing wrk (Debian package)" >&2
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  fi
  need python3 || { echo "python3 is required" >&2; exit 1; }
  echo "building release binaries..." >&2
  cargo build --release --locked -q -p postern -p bench-bare -p bench-mtls

  WORK=$(mktemp -d)
  PIDS=()
  trap cleanup EXIT
  python3 "$ROOT/bench/bodies.py" "$WORK"
  cat > "$WORK/post.lua" <<'LUA'
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE") or "application/xml"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status, summary.requests))
end
LUA
}

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { # URL [curl options]
  local url=$1; shift
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "$@" "$url" && return 0
    sleep 0.1
  done
  echo "server at $url did not come up" >&2; return 1
}
tree_pids() { # PID: the process and its descendants (nginx workers, node cluster), one per line
  ps -e -o pid=,ppid= 2>/dev/null | awk -v root="$1" '
    { parent[$1] = $2 }
    END { for (p in parent) { q = p; while (q != "" && q != root && q in parent && q > 1) q = parent[q]
                              if (q == root) print p } }'
}
rss_mib() { # PID: resident memory of the process and its descendants
  local pids; pids=$(tree_pids "$1" | paste -sd, -)
  [ -n "$pids" ] || { echo "-"; return; }
  ps -o rss= -p "$pids" 2>/dev/null | awk '{ total += $1 }
    END { if (total > 0) printf "%.1f", total / 1024; else print "-" }'
}
cpu_ticks() { # PID: CPU time (user + system, all threads) of the process and its descendants, in clock ticks
  local p total=0 ut st
  for p in $(tree_pids "$1"); do
    # After "pid (comm) ", utime and stime are the 12th and 13th fields.
    read -r ut st < <(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12, $13}') || continue
    [[ "$ut$st" =~ ^[0-9]+$ ]] && total=$((total + ut + st))
  done
  echo "$total"
}
cpu_us() { # TICKS REQUESTS: the server's CPU microseconds per request, or "-"
  python3 -c "import os, sys
t, n = int(sys.argv[1]), float(sys.argv[2] or 0)
print(f'{t * 1e6 / os.sysconf(\"SC_CLK_TCK\") / n:.1f}' if n > 0 else '-')" "$1" "$2"
}
status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
now_s() { date +%s.%N; }
elapsed_ms() { python3 -c "import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$1" "$2"; }

start_bare() {
  BARE_PORT=$(free_port)
  "$BIN/bench-bare" --addr "127.0.0.1:$BARE_PORT" &
  BARE_PID=$!; PIDS+=("$BARE_PID")
  wait_http "http://127.0.0.1:$BARE_PORT/"
}

# Starts Postern on DATA_DIR (default $WORK/data; ports kept across restarts) and waits until
# /healthz answers 200; STARTUP_MS is the time from spawn to that answer. The log keeps the
# directory load line.
start_postern() {
  P_HTTP=${P_HTTP:-$(free_port)}; P_HTTPS=${P_HTTPS:-$(free_port)}
  local t0; t0=$(now_s)
  POSTERN_ADMIN_PASSWORD=$ADMIN_PW RUST_LOG="warn,postern_server::state=info" "$BIN/postern" serve \
    --data-dir "${DATA_DIR:-$WORK/data}" --http "127.0.0.1:$P_HTTP" --https "127.0.0.1:$P_HTTPS" \
    >>"$WORK/postern.log" 2>&1 &
  POSTERN_PID=$!; PIDS+=("$POSTERN_PID")
  local up=""
  for _ in $(seq 1 30000); do # up to ~10 min for a big directory
    [ "$(status_of "http://127.0.0.1:$P_HTTP/healthz")" = 200 ] && { up=1; break; }
    kill -0 "$POSTERN_PID" 2>/dev/null || break
    sleep 0.02
  done
  [ -n "$up" ] || { echo "Postern did not come up; log:" >&2; tail -20 "$WORK/postern.log" >&2; return 1; }
  STARTUP_MS=$(elapsed_ms "$t0" "$(now_s)")
  export POSTERN_URL="http://127.0.0.1:$P_HTTP" POSTERN_USER=admin POSTERN_PASSWORD=$ADMIN_PW
}

# Stops Postern (SIGTERM, so it flushes its writers) and waits for it to exit.
stop_postern() {
  kill -TERM "$POSTERN_PID" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$POSTERN_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$POSTERN_PID" 2>/dev/null || true
}

P() { "$BIN/postern" "$@"; }
b64() { printf '%s' "$1" | base64 -w0; }
odata_post() { # SET JSON: an entity through SAP's OData API; fails unless 201
  local code
  code=$(curl -s -o "$WORK/odata.out" -w '%{http_code}' -u "admin:$ADMIN_PW" -H 'Content-Type: application/json' \
    -H 'Accept: application/json' -d "$2" "http://127.0.0.1:$P_HTTP/api/v1/$1")
  [ "$code" = 201 ] || { echo "POST /api/v1/$1 $2 answered $code: $(cat "$WORK/odata.out")" >&2; return 1; }
}

# A role, an integration-flow instance with that role, a ClientId/Secret key, a technical user,
# the flows, a small Partner Directory (10 alternative partners), a token and a certificate key.
setup_postern() {
  P role create BenchSend --description "bench role" >/dev/null
  P service create bench-inst --plan integration-flow -c '{"roles":["BenchSend"],"grant-types":["client_credentials"]}' >/dev/null
  P service-key create bench-inst bench-key --json >"$WORK/key.json"
  CID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["oauth"]["clientid"])' "$WORK/key.json")
  SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["oauth"]["clientsecret"])' "$WORK/key.json")
  printf '%s' "bench-user-password" | P user create bench-user --password-stdin --role BenchSend >/dev/null
  cat > "$WORK/flow.yaml" <<'YAML'
id: bench-flow
sender:
  adapter: https
  address: /bench
  authorization: user-role
  roles: [BenchSend]
receiver:
  reply: { status: 200, body: "ok" }
YAML
  cat > "$WORK/flow-pd-xml.yaml" <<'YAML'
id: bench-pd-xml
sender:
  adapter: https
  address: /bench-pd-xml
  authorization: user-role
  roles: [ESBMessaging.send]
steps:
  - partner_authorization:
      partner: { xpath: "/o:Order/o:Header/o:SenderId", namespaces: { o: "urn:example:order" } }
      alternative: { agency: "016", scheme: "DUNS" }
receiver:
  reply: { status: 200, body: "ok" }
YAML
  cat > "$WORK/flow-pd-edi.yaml" <<'YAML'
id: bench-pd-edi
sender:
  adapter: https
  address: /bench-pd-edi
  authorization: user-role
  roles: [ESBMessaging.send]
steps:
  - partner_authorization:
      partner: edifact
      qualifiers: { "14": { agency: "EDI", scheme: "14" } }
receiver:
  reply: { status: 200, body: "ok" }
YAML
  local f
  for f in flow flow-pd-xml flow-pd-edi; do P flow deploy "$WORK/$f.yaml" >/dev/null; done
  # The partners the bodies name (ACME sends, GLOBEX is "another partner"), six more for 10.
  odata_post AlternativePartners '{"Agency":"016","Scheme":"DUNS","Id":"123456789","Pid":"ACME"}'
  odata_post AlternativePartners '{"Agency":"016","Scheme":"DUNS","Id":"987654321","Pid":"GLOBEX"}'
  odata_post AlternativePartners '{"Agency":"EDI","Scheme":"14","Id":"4000001000002","Pid":"ACME"}'
  odata_post AlternativePartners '{"Agency":"EDI","Scheme":"14","Id":"4000001000019","Pid":"GLOBEX"}'
  local i
  for i in 1 2 3 4 5 6; do
    odata_post AlternativePartners "{\"Agency\":\"016\",\"Scheme\":\"DUNS\",\"Id\":\"55500000$i\",\"Pid\":\"SMALL-$i\"}"
  done
  odata_post AuthorizedUsers "{\"User\":\"$CID\",\"Pid\":\"ACME\"}"

  AUTH_KEY="Basic $(b64 "$CID:$SECRET")"
  AUTH_USER="Basic $(b64 "bench-user:bench-user-password")"
  CA="$WORK/data/tls/ca.pem"
  P service-key create bench-inst bench-cert -c '{"key-type":"certificate","key-length":256}' --json >"$WORK/cert.json"
  python3 - "$WORK/cert.json" "$WORK/identity.pem" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))["oauth"]
open(sys.argv[2], "w").write(o["certificate"] + o["key"])
PY
  TOKEN=$(curl -s -u "$CID:$SECRET" -d grant_type=client_credentials "http://127.0.0.1:$P_HTTP/oauth/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("access_token",""))')
  AUTH_BEARER="Bearer $TOKEN"
}

# --- cases -----------------------------------------------------------------------------------
# Each case checks the answers first and appends "name|req/s|p50|p99|RSS|errors|non-2xx" to ROWS;
# a case that answers wrongly is reported as not measured.
ROWS=()
# wrk leaves answers slower than its timeout (default 2 s) out of the percentiles and counts them
# as socket errors; the peers that verify bcrypt per request answer that slowly under load.
WRK_TIMEOUT=10s
run_case() { # NAME URL AUTH PID [BODY_FILE CONTENT_TYPE]
  local name=$1 url=$2 auth=$3 pid=$4 body=${5:-$WORK/body.xml} ctype=${6:-application/xml}
  export BENCH_BODY=$body BENCH_CTYPE=$ctype
  BENCH_AUTH="$auth" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" --timeout "$WRK_TIMEOUT" \
    -s "$WORK/post.lua" "$url" >/dev/null 2>&1 || true
  # A peer verifying bcrypt per request still works off the warm-up's requests after wrk exits.
  [ -n "${SETTLE_PID:-}" ] && settle "$SETTLE_PID"
  local out c0 c1
  c0=$(cpu_ticks "$pid")
  out=$(BENCH_AUTH="$auth" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" \
    --latency -s "$WORK/post.lua" "$url" 2>&1 | grep '^RESULT' || true)
  c1=$(cpu_ticks "$pid")
  add_row "$name" "$pid" "$out" "$((c1 - c0))"
}
add_row() { # NAME PID RESULT_LINE TICKS: one table row from a load generator's RESULT line
  local rps p50 p99 errs non2xx reqs
  if [ -z "$3" ]; then ROWS+=("$1|failed to run|-|-|-|-|-|-"); return; fi
  read -r _ rps p50 p99 errs non2xx reqs <<<"$3"
  ROWS+=("$1|$rps|$p50|$p99|$(rss_mib "$2")|$errs|$non2xx|$(cpu_us "$4" "$reqs")")
}
skip_case() { ROWS+=("$1|not measured: $2|-|-|-|-|-|-"); }
run_mtls() { # NAME [--new-connection-per-request]
  local name=$1; shift
  local url="https://127.0.0.1:$P_HTTPS/http/bench" out
  local common=(--url "$url" --ca "$CA" --identity "$WORK/identity.pem" --connections "$CONNS" --body "$WORK/body.xml")
  "$BIN/bench-mtls" "${common[@]}" --duration "$WARMUP" "$@" >/dev/null 2>&1 || true
  local c0 c1
  c0=$(cpu_ticks "$POSTERN_PID")
  out=$("$BIN/bench-mtls" "${common[@]}" --duration "$DURATION" "$@" 2>&1 | grep '^RESULT' || true)
  c1=$(cpu_ticks "$POSTERN_PID")
  add_row "$name" "$POSTERN_PID" "$out" "$((c1 - c0))"
}
check() { # EXPECTED ACTUAL WHAT
  [ "$1" = "$2" ] || { echo "  check failed: $3: expected $1, got $2" >&2; return 1; }
}

case_bare() {
  local url="http://127.0.0.1:$BARE_PORT/http/bench"
  if check 200 "$(status_of -d @"$WORK/body.xml" -H "Authorization: $AUTH_KEY" "$url")" "bare answers"; then
    run_case bare "$url" "$AUTH_KEY" "$BARE_PID"
  else skip_case bare "wrong answers"; fi
}
postern_checks() { # URL [curl options]: 200 right key, 401 none / wrong secret / unknown user
  local url=$1; shift
  check 200 "$(status_of "$@" -d @"$WORK/body.xml" -H "Authorization: $AUTH_KEY" "$url")" "right key" &&
  check 401 "$(status_of "$@" -d @"$WORK/body.xml" "$url")" "no credentials" &&
  check 401 "$(status_of "$@" -d @"$WORK/body.xml" -u "$CID:wrong-secret" "$url")" "wrong secret" &&
  check 401 "$(status_of "$@" -d @"$WORK/body.xml" -u "nobody:$SECRET" "$url")" "unknown user"
}
case_basic() {
  local url="http://127.0.0.1:$P_HTTP/http/bench"
  if postern_checks "$url"; then run_case basic-key "$url" "$AUTH_KEY" "$POSTERN_PID"
  else skip_case basic-key "wrong answers"; fi
}
case_basic_user() {
  local url="http://127.0.0.1:$P_HTTP/http/bench"
  if check 200 "$(status_of -d @"$WORK/body.xml" -H "Authorization: $AUTH_USER" "$url")" "user password" &&
     check 401 "$(status_of -d @"$WORK/body.xml" -u "bench-user:wrong-password" "$url")" "wrong password"; then
    run_case basic-user "$url" "$AUTH_USER" "$POSTERN_PID"
  else skip_case basic-user "wrong answers"; fi
}
case_basic_tls() {
  local url="https://127.0.0.1:$P_HTTPS/http/bench"
  if postern_checks "$url" --cacert "$CA"; then run_case basic-key-tls "$url" "$AUTH_KEY" "$POSTERN_PID"
  else skip_case basic-key-tls "wrong answers"; fi
}

case_bearer() {
  local url="http://127.0.0.1:$P_HTTP/http/bench"
  if [ -n "$TOKEN" ] &&
     check 200 "$(status_of -d @"$WORK/body.xml" -H "Authorization: $AUTH_BEARER" "$url")" "bearer token" &&
     check 401 "$(status_of -d @"$WORK/body.xml" -H "Authorization: Bearer ${TOKEN}x" "$url")" "tampered token"; then
    run_case bearer "$url" "$AUTH_BEARER" "$POSTERN_PID"
  else skip_case bearer "wrong answers"; fi
}
case_token() {
  local url="http://127.0.0.1:$P_HTTP/oauth/token"
  printf 'grant_type=client_credentials' >"$WORK/grant.form"
  if check 200 "$(status_of -d @"$WORK/grant.form" -u "$CID:$SECRET" "$url")" "token grant" &&
     check 401 "$(status_of -d @"$WORK/grant.form" -u "$CID:wrong" "$url")" "token with a wrong secret"; then
    run_case token-endpoint "$url" "$AUTH_KEY" "$POSTERN_PID" "$WORK/grant.form" application/x-www-form-urlencoded
  else skip_case token-endpoint "wrong answers"; fi
}

case_mtls() {
  local url="https://127.0.0.1:$P_HTTPS/http/bench"
  if check 200 "$(status_of --cacert "$CA" --cert "$WORK/identity.pem" -d @"$WORK/body.xml" "$url")" "client certificate" &&
     check 401 "$(status_of --cacert "$CA" -d @"$WORK/body.xml" "$url")" "no certificate"; then
    run_mtls mtls-keepalive
    run_mtls mtls-new-connection --new-connection-per-request
  else skip_case mtls "wrong answers"; fi
}

partner_checks() { # URL RIGHT_BODY OTHER_BODY CONTENT_TYPE: 200 / 403 another partner / 401 none
  local url=$1 right=$2 other=$3 ct="Content-Type: $4"
  check 200 "$(status_of -H "$ct" --data-binary @"$right" -H "Authorization: $AUTH_KEY" "$url")" "right partner" &&
  check 403 "$(status_of -H "$ct" --data-binary @"$other" -H "Authorization: $AUTH_KEY" "$url")" "another partner" &&
  check 401 "$(status_of -H "$ct" --data-binary @"$right" "$url")" "no credentials"
}
case_partner_xpath() {
  local url="http://127.0.0.1:$P_HTTP/http/bench-pd-xml"
  if partner_checks "$url" "$WORK/order10k.xml" "$WORK/order10k-other.xml" application/xml; then
    run_case partner-xpath-10k "$url" "$AUTH_KEY" "$POSTERN_PID" "$WORK/order10k.xml" application/xml
  else skip_case partner-xpath-10k "wrong answers"; fi
}
case_partner_edifact() {
  local url="http://127.0.0.1:$P_HTTP/http/bench-pd-edi"
  if partner_checks "$url" "$WORK/orders.edi" "$WORK/orders-other.edi" application/edifact; then
    run_case partner-edifact "$url" "$AUTH_KEY" "$POSTERN_PID" "$WORK/orders.edi" application/edifact
  else skip_case partner-edifact "wrong answers"; fi
}

fmt_rps() { if [[ "$1" =~ ^[0-9.]+$ ]]; then python3 -c "print(f'{$1:,.1f}' if $1 < 100 else f'{$1:,.0f}')"; else echo "$1"; fi; }
ratio() { # A B: A/B to two places, or "-"
  if [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]]; then
    python3 -c "print(f'{$1/$2:.2f}' if $2 else '-')"
  else echo "-"; fi
}
machine_line() {
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
}
