# The peers of bench/run (sourced after lib.sh, not run): nginx, HAProxy, Caddy and oidc-provider,
# installed from Debian's packages / npm when missing, configured in $WORK/peers, started on free
# loopback ports as children of the harness, checked, then measured like Postern's cases.
# See bench/README.md, "Peers".

PEER_USER=bench
PEER_DIR=""
declare -A PEER_MISSING=() # software -> why it is not measured

# Installs what is missing: nginx, haproxy, caddy, apache2-utils (htpasswd for bcrypt cost 10),
# nodejs and npm (oidc-provider). A package that cannot be installed leaves its rows "not measured".
install_peers() {
  local bin pkg missing=()
  for bin in nginx:nginx haproxy:haproxy caddy:caddy htpasswd:apache2-utils node:nodejs npm:npm; do
    need "${bin%%:*}" || missing+=("${bin#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing peers (Debian packages): ${missing[*]}" >&2
    for pkg in "${missing[@]}"; do
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >>"$WORK/apt.log" 2>&1 || {
        apt-get update -qq >>"$WORK/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >>"$WORK/apt.log" 2>&1
      } || echo "  apt-get could not install $pkg" >&2
    done
  fi
  need nginx || PEER_MISSING[nginx]="package nginx could not be installed"
  need haproxy || PEER_MISSING[haproxy]="package haproxy could not be installed"
  need caddy || PEER_MISSING[caddy]="package caddy could not be installed"
  need htpasswd || PEER_MISSING[htpasswd]="package apache2-utils (htpasswd, for bcrypt) could not be installed"
  if ! need node || ! need npm; then
    PEER_MISSING[oidc]="nodejs/npm could not be installed"
  else
    # npm ci only when the lock file changed since the last install.
    local d="$ROOT/bench/oidc"
    if ! cmp -s "$d/package-lock.json" "$d/node_modules/.bench-lock" 2>/dev/null; then
      echo "installing oidc-provider (npm ci in bench/oidc)" >&2
      if (cd "$d" && npm ci --no-audit --no-fund >>"$WORK/npm.log" 2>&1); then
        cp "$d/package-lock.json" "$d/node_modules/.bench-lock"
      else
        PEER_MISSING[oidc]="npm ci in bench/oidc failed: $(tail -1 "$WORK/npm.log")"
      fi
    fi
  fi
}

# Writes the password files and every peer's configuration, then starts the peers.
start_peers() {
  PEER_DIR="$WORK/peers"
  mkdir -p "$PEER_DIR"
  printf 'grant_type=client_credentials' >"$WORK/grant.form"
  PEER_PW=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
  AUTH_PEER="Basic $(b64 "$PEER_USER:$PEER_PW")"
  # {SHA}: base64 of the SHA-1 of the password (nginx reads it with its own code, no crypt(3)).
  python3 - "$PEER_USER" "$PEER_PW" >"$PEER_DIR/htpasswd-sha" <<'PY'
import base64, hashlib, sys
print(f"{sys.argv[1]}:{{SHA}}{base64.b64encode(hashlib.sha1(sys.argv[2].encode()).digest()).decode()}")
PY
  PEER_BCRYPT=""
  if need htpasswd; then
    # $2y$10$...: bcrypt cost 10 (the password goes through stdin, not the process list).
    printf '%s\n' "$PEER_PW" | htpasswd -niBC 10 "$PEER_USER" >"$PEER_DIR/htpasswd-bcrypt" 2>/dev/null || true
    PEER_BCRYPT=$(cut -d: -f2- "$PEER_DIR/htpasswd-bcrypt")
    [[ "$PEER_BCRYPT" == \$2* ]] || { PEER_BCRYPT=""; PEER_MISSING[htpasswd]="htpasswd -B made no bcrypt hash"; }
  fi
  PEER_SHA512=$(printf '%s\n' "$PEER_PW" | openssl passwd -6 -stdin || true) # $6$: sha512-crypt, 5000 rounds
  [ -z "${PEER_MISSING[nginx]:-}" ] && start_nginx
  [ -z "${PEER_MISSING[haproxy]:-}" ] && start_haproxy
  [ -z "${PEER_MISSING[caddy]:-}" ] && start_caddy
  [ -z "${PEER_MISSING[oidc]:-}" ] && start_oidc
  return 0
}

# Starts a peer command in the background with its output in $PEER_DIR/NAME.log; sets PEER_PID.
spawn_peer() { # NAME COMMAND...
  local name=$1; shift
  "$@" >>"$PEER_DIR/$name.log" 2>&1 &
  PEER_PID=$!; PIDS+=("$PEER_PID")
}
# Waits until a peer answers on PORT (any HTTP status); records it as failed otherwise.
peer_up() { # KEY PORT [curl options]
  local key=$1 port=$2; shift 2
  local scheme=http; [ "${1:-}" = --tls ] && { scheme=https; shift; }
  for _ in $(seq 1 150); do
    [ "$(status_of "$@" "$scheme://127.0.0.1:$port/")" != 000 ] && return 0
    sleep 0.1
  done
  PEER_MISSING[$key]="did not start: $(tail -3 "$PEER_DIR/$key.log" 2>/dev/null | tr '\n' ' ')"
  return 1
}

# try_files runs after nginx's access phase, so auth_basic is checked before @ok answers; a plain
# `return` would run in the rewrite phase, before auth_basic, and skip it.
ngx_locations() { # HTPASSWD_FILE
  printf 'location / { auth_basic "bench"; auth_basic_user_file %s; try_files /.none @ok; }\n' "$1"
  printf '    location @ok { default_type text/plain; return 200 "ok"; }\n'
}
start_nginx() {
  NGX_BCRYPT=$(free_port) NGX_SHA=$(free_port) NGX_TLS=$(free_port)
  mkdir -p "$PEER_DIR/nginx"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$PEER_DIR/nginx/key.pem" \
    -out "$PEER_DIR/nginx/cert.pem" >/dev/null 2>&1 || echo "openssl could not make the TLS certificate" >&2
  local user=""; [ "$(id -u)" = 0 ] && user="user root;" # workers must read the 0700 work dir
  cat >"$PEER_DIR/nginx/nginx.conf" <<EOF
$user
worker_processes auto;
daemon off;
pid $PEER_DIR/nginx/nginx.pid;
error_log $PEER_DIR/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $PEER_DIR/nginx/body;
  proxy_temp_path $PEER_DIR/nginx/proxy;
  fastcgi_temp_path $PEER_DIR/nginx/fastcgi;
  uwsgi_temp_path $PEER_DIR/nginx/uwsgi;
  scgi_temp_path $PEER_DIR/nginx/scgi;
  root $PEER_DIR/nginx;
  server {
    listen 127.0.0.1:$NGX_BCRYPT;
    $(ngx_locations "$PEER_DIR/htpasswd-bcrypt")
  }
  server {
    listen 127.0.0.1:$NGX_SHA;
    $(ngx_locations "$PEER_DIR/htpasswd-sha")
  }
  server {
    listen 127.0.0.1:$NGX_TLS ssl;
    ssl_certificate $PEER_DIR/nginx/cert.pem;
    ssl_certificate_key $PEER_DIR/nginx/key.pem;
    ssl_protocols TLSv1.3;
    $(ngx_locations "$PEER_DIR/htpasswd-sha")
  }
}
EOF
  spawn_peer nginx nginx -p "$PEER_DIR/nginx" -e "$PEER_DIR/nginx/error.log" -c "$PEER_DIR/nginx/nginx.conf"
  NGX_PID=$PEER_PID
  peer_up nginx "$NGX_SHA" || true
}

start_haproxy() {
  HAP_INSECURE=$(free_port) HAP_SHA512=$(free_port) HAP_BCRYPT=$(free_port)
  local fe f
  {
    cat <<EOF
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-request 10s
  option http-buffer-request
userlist u_insecure
  user $PEER_USER insecure-password $PEER_PW
userlist u_sha512
  user $PEER_USER password $PEER_SHA512
EOF
    [ -n "$PEER_BCRYPT" ] && printf 'userlist u_bcrypt\n  user %s password %s\n' "$PEER_USER" "$PEER_BCRYPT"
    for f in insecure:$HAP_INSECURE sha512:$HAP_SHA512 bcrypt:$HAP_BCRYPT; do
      fe=${f%%:*}
      [ "$fe" = bcrypt ] && [ -z "$PEER_BCRYPT" ] && continue
      cat <<EOF
frontend $fe
  bind 127.0.0.1:${f#*:}
  http-request auth realm bench unless { http_auth(u_$fe) }
  http-request return status 200 content-type text/plain string ok
EOF
    done
  } >"$PEER_DIR/haproxy.cfg"
  spawn_peer haproxy haproxy -db -f "$PEER_DIR/haproxy.cfg"
  HAP_PID=$PEER_PID
  peer_up haproxy "$HAP_INSECURE" || true
}

start_caddy() {
  CADDY_PORT=$(free_port)
  if [ -z "$PEER_BCRYPT" ]; then PEER_MISSING[caddy]=${PEER_MISSING[htpasswd]:-no bcrypt hash}; return; fi
  mkdir -p "$PEER_DIR/caddy"
  # Caddy 2.6 (Debian 12) calls the directive basicauth (basic_auth from 2.8 on) and wants the
  # hash base64-encoded; it keeps a cache of verified passwords, so bcrypt runs once per password.
  cat >"$PEER_DIR/caddy/Caddyfile" <<EOF
{
  admin off
  auto_https off
  storage file_system $PEER_DIR/caddy/data
  log {
    level ERROR
  }
}
http://127.0.0.1:$CADDY_PORT {
  basicauth {
    $PEER_USER $(b64 "$PEER_BCRYPT")
  }
  respond "ok" 200
}
EOF
  caddy fmt --overwrite "$PEER_DIR/caddy/Caddyfile" >/dev/null 2>&1 || true
  HOME=$PEER_DIR/caddy XDG_DATA_HOME=$PEER_DIR/caddy XDG_CONFIG_HOME=$PEER_DIR/caddy \
    spawn_peer caddy caddy run --config "$PEER_DIR/caddy/Caddyfile" --adapter caddyfile
  CADDY_PID=$PEER_PID
  peer_up caddy "$CADDY_PORT" || true
}

start_oidc() {
  OIDC_PORT=$(free_port)
  OIDC_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
  OIDC_PORT=$OIDC_PORT OIDC_CLIENT_ID=bench-client OIDC_CLIENT_SECRET=$OIDC_SECRET \
    spawn_peer oidc node "$ROOT/bench/oidc/server.js"
  OIDC_PID=$PEER_PID
  peer_up oidc "$OIDC_PORT" || true
}

# Waits (up to 20 s) until the process tree of PID stops using CPU: a peer that verifies bcrypt
# per request still works off the requests of wrk's closed connections after wrk exits.
settle() { # PID
  python3 - "$1" <<'PY'
import os, sys, time
root = int(sys.argv[1])
def ticks():
    kids, total = {}, 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(f[1]), []).append((int(p), int(f[11]) + int(f[12])))
    todo = [root]
    try:
        f = open(f"/proc/{root}/stat").read().rsplit(")", 1)[1].split()
        total = int(f[11]) + int(f[12])
    except OSError:
        return 0
    while todo:
        for pid, t in kids.get(todo.pop(), []):
            total += t
            todo.append(pid)
    return total
last = ticks()
for _ in range(100):
    time.sleep(0.2)
    now = ticks()
    if now - last <= 1:
        break
    last = now
PY
}

# 200 with the right user and password, 401 without credentials, with a wrong password and with
# an unknown user.
peer_checks() { # URL [curl options]
  local url=$1; shift
  check 200 "$(status_of "$@" -d @"$WORK/body.xml" -H "Authorization: $AUTH_PEER" "$url")" "right password" &&
  check 401 "$(status_of "$@" -d @"$WORK/body.xml" "$url")" "no credentials" &&
  check 401 "$(status_of "$@" -d @"$WORK/body.xml" -H "Authorization: Basic $(b64 "$PEER_USER:wrong-password")" "$url")" "wrong password" &&
  check 401 "$(status_of "$@" -d @"$WORK/body.xml" -H "Authorization: Basic $(b64 "nobody:$PEER_PW")" "$url")" "unknown user"
}
peer_case() { # ROW KEY PID URL [curl options]: checks, measures, lets the peer settle
  local row=$1 key=$2 pid=$3 url=$4; shift 4
  if [ -n "${PEER_MISSING[$key]:-}" ]; then skip_case "$row" "${PEER_MISSING[$key]}"; return; fi
  echo "running $row..." >&2
  if peer_checks "$url" "$@"; then
    SETTLE_PID=$pid run_case "$row" "$url" "$AUTH_PEER" "$pid"
    settle "$pid"
  else skip_case "$row" "wrong answers"; fi
}

case_nginx() {
  peer_case nginx-sha nginx "${NGX_PID:-}" "http://127.0.0.1:${NGX_SHA:-0}/http/bench"
  peer_case nginx-sha-tls nginx "${NGX_PID:-}" "https://127.0.0.1:${NGX_TLS:-0}/http/bench" \
    --cacert "$PEER_DIR/nginx/cert.pem"
  if [ -z "${PEER_MISSING[nginx]:-}" ] && [ -n "${PEER_MISSING[htpasswd]:-}" ]; then
    skip_case nginx-bcrypt10 "${PEER_MISSING[htpasswd]}"
  else
    peer_case nginx-bcrypt10 nginx "${NGX_PID:-}" "http://127.0.0.1:${NGX_BCRYPT:-0}/http/bench"
  fi
}
case_haproxy() {
  peer_case haproxy-insecure haproxy "${HAP_PID:-}" "http://127.0.0.1:${HAP_INSECURE:-0}/http/bench"
  peer_case haproxy-sha512crypt haproxy "${HAP_PID:-}" "http://127.0.0.1:${HAP_SHA512:-0}/http/bench"
  if [ -z "${PEER_MISSING[haproxy]:-}" ] && [ -n "${PEER_MISSING[htpasswd]:-}" ]; then
    skip_case haproxy-bcrypt10 "${PEER_MISSING[htpasswd]}"
  else
    peer_case haproxy-bcrypt10 haproxy "${HAP_PID:-}" "http://127.0.0.1:${HAP_BCRYPT:-0}/http/bench"
  fi
}
case_caddy() {
  peer_case caddy-bcrypt10 caddy "${CADDY_PID:-}" "http://127.0.0.1:${CADDY_PORT:-0}/http/bench"
}
case_oidc() {
  local row=oidc-provider-token url="http://127.0.0.1:${OIDC_PORT:-0}/token"
  if [ -n "${PEER_MISSING[oidc]:-}" ]; then skip_case "$row" "${PEER_MISSING[oidc]}"; return; fi
  echo "running $row..." >&2
  local body
  body=$(curl -s -u "bench-client:$OIDC_SECRET" -d @"$WORK/grant.form" "$url")
  if check 200 "$(status_of -d @"$WORK/grant.form" -u "bench-client:$OIDC_SECRET" "$url")" "oidc token grant" &&
     check jwt "$(python3 -c 'import json,sys; t=json.loads(sys.argv[1]).get("access_token",""); print("jwt" if t.count(".")==2 else "no JWT")' "$body" 2>/dev/null)" "oidc access token" &&
     check 401 "$(status_of -d @"$WORK/grant.form" -u "bench-client:wrong" "$url")" "oidc token with a wrong secret" &&
     check 401 "$(status_of -d @"$WORK/grant.form" -u "nobody:$OIDC_SECRET" "$url")" "oidc token for an unknown client"; then
    run_case "$row" "$url" "Basic $(b64 "bench-client:$OIDC_SECRET")" "$OIDC_PID" "$WORK/grant.form" \
      application/x-www-form-urlencoded
  else skip_case "$row" "wrong answers"; fi
}

# --- summary ---------------------------------------------------------------------------------
num_or_dash() { if [[ "$1" =~ ^[0-9.]+$ ]]; then fmt_rps "$1"; else echo -; fi; }
# Prints, after the table, Postern against each peer: the Postern row it is compared with, the
# ratio of req/s, the issue's target and whether it is met.
peer_summary() {
  declare -A rps=()
  local r n v
  for r in "${ROWS[@]}"; do IFS='|' read -r n v _ <<<"$r"; rps[$n]=$v; done
  echo
  echo "Postern against the peers (issue 8: ahead of every one, by ≥ 5× where they verify bcrypt per request;"
  echo "tokens/s ≥ 10× oidc-provider):"
  echo
  echo "| peer | peer req/s | Postern case | Postern req/s | Postern ÷ peer | target | met? |"
  echo "|---|---|---|---|---|---|---|"
  local spec peer mine target x met
  for spec in nginx-sha:basic-key:1 nginx-sha-tls:basic-key-tls:1 nginx-bcrypt10:basic-key:5 \
      haproxy-insecure:basic-key:1 haproxy-sha512crypt:basic-key:1 haproxy-bcrypt10:basic-key:5 \
      caddy-bcrypt10:basic-key:1 oidc-provider-token:token-endpoint:10; do
    IFS=: read -r peer mine target <<<"$spec"
    x=$(ratio "${rps[$mine]:-}" "${rps[$peer]:-}")
    if [ "$x" = - ]; then met="not measured"
    else met=$(python3 -c "print('yes' if $x >= $target and $x > 1 else 'no')"); fi
    [ "$target" = 1 ] && target="> 1×" || target="≥ ${target}×"
    echo "| $peer | $(num_or_dash "${rps[$peer]:-}") | $mine | $(num_or_dash "${rps[$mine]:-}") | $x | $target | $met |"
  done
}
