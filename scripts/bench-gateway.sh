#!/usr/bin/env bash
# Measures jwtgate's gateway with wrk against nginx, all in front of the same upstream (a
# second nginx answering a small static file), in one invocation:
#   nginx plain reverse proxy                 (the reference: proxying with no auth at all)
#   jwtgate gateway, ES256 token, verdict cache on
#   jwtgate gateway, ES256 token, verdict cache off (every request verifies the signature)
#   nginx auth_request -> jwtgate /auth, then nginx proxies (forward-auth as deployed), with
#   jwtgate's verdict cache on, and off (the same verification work per request as the
#   gateway with its cache off)
# Prints a Markdown table for BENCHMARKS.md. Not run by CI (it takes a minute and needs a quiet
# machine). Installs wrk and nginx when missing (Debian).
#
# Usage: scripts/bench-gateway.sh [SECONDS_PER_RUN] [CONNECTIONS]   (defaults: 10, 32)
set -euo pipefail

DURATION=${1:-10}
CONNECTIONS=${2:-32}
THREADS=2
cd "$(dirname "$0")/.."

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

export JWTGATE_DATA=$WORK/data JWTGATE_ADMIN_PASSWORD=bench-admin-pw
"$BIN" role set app app-view >/dev/null
"$BIN" user add bench:app:bench-pw >/dev/null
TOKEN=$("$BIN" token issue bench --ttl 1h)

UPORT=$(free_port)  # the upstream
NPORT=$(free_port)  # nginx: plain proxy, and auth_request
JPORT=$(free_port)  # jwtgate: gateway and /auth
mkdir -p "$WORK/www"
printf 'ok\n' >"$WORK/www/index.html"
# nginx's workers run as an unprivileged user when started as root: let them read the file.
chmod o+x "$WORK"
chmod -R o+rX "$WORK/www"

# nginx_conf NAME WORKERS SERVER_BLOCK: an nginx config of its own (pid, logs, temp paths).
nginx_conf() {
    mkdir -p "$WORK/$1"
    cat >"$WORK/$1/nginx.conf" <<NGINX
daemon off;
worker_processes $2;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/$1/body;
    proxy_temp_path $WORK/$1/proxy;
    fastcgi_temp_path $WORK/$1/fastcgi;
    uwsgi_temp_path $WORK/$1/uwsgi;
    scgi_temp_path $WORK/$1/scgi;
    $3
}
NGINX
    "$NGINX" -c "$WORK/$1/nginx.conf" -p "$WORK/$1" -e "$WORK/$1/error.log" &
    PIDS+=($!)
}

# The upstream every run reaches: one nginx worker answering a 3-byte file.
nginx_conf upstream 1 "server { listen 127.0.0.1:$UPORT; root $WORK/www; }"
wait_for "$UPORT"

# The nginx in front: a plain proxy, and the same proxy behind auth_request to jwtgate.
nginx_conf front auto "
    upstream service { server 127.0.0.1:$UPORT; keepalive 64; }
    upstream jwtgate { server 127.0.0.1:$JPORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NPORT;
        location /plain/ {
            proxy_pass http://service/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
        location /gated/ {
            auth_request /_auth;
            proxy_pass http://service/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
        location = /_auth {
            internal;
            proxy_pass http://jwtgate/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";
        }
    }"
wait_for "$NPORT"

# jwtgate: the gateway route (jwtgate's own ES256 keys, a permission required, as a real
# route would), with the verdict cache on or off.
JPID=
start_jwtgate() {
    cat >"$WORK/jwtgate.toml" <<TOML
[server]
verdict_cache = $1

[[route]]
prefix = "/app"
upstream = "http://127.0.0.1:$UPORT"
strip_prefix = true
providers = ["self"]
require_permissions = ["app-view"]
TOML
    JWTGATE_LOG=warn "$BIN" serve --listen "127.0.0.1:$JPORT" --config "$WORK/jwtgate.toml" \
        2>>"$WORK/jwtgate.log" &
    JPID=$!
    PIDS+=("$JPID")
    wait_for "$JPORT"
}
stop_jwtgate() {
    kill "$JPID"
    wait "$JPID" 2>/dev/null || true
}


# Every path must answer what the upstream serves, and refuse without the token, before any
# number counts.
check() {
    local url=$1 auth=$2
    [ "$(curl -s -H "$auth" "$url")" = "ok" ] || { echo "$url does not reach the upstream" >&2; exit 1; }
}
BEARER="Authorization: Bearer $TOKEN"
RESULTS=()
start_jwtgate true
check "http://127.0.0.1:$NPORT/plain/" "X-None: 1"
check "http://127.0.0.1:$JPORT/app/" "$BEARER"
check "http://127.0.0.1:$NPORT/gated/" "$BEARER"
for url in "http://127.0.0.1:$JPORT/app/" "http://127.0.0.1:$NPORT/gated/"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
    [ "$code" = 401 ] || { echo "$url answers $code without a token" >&2; exit 1; }
done
# Warm up (connection pools, the verdict cache, the CPU governor).
wrk -t1 -c4 -d2s "http://127.0.0.1:$NPORT/plain/" >/dev/null
wrk -t1 -c4 -d2s -H "$BEARER" "http://127.0.0.1:$JPORT/app/" >/dev/null
ROW=$(run "nginx plain reverse proxy" "http://127.0.0.1:$NPORT/plain/")
RESULTS+=("$ROW")
ROW=$(run "jwtgate gateway, verdict cache on" "http://127.0.0.1:$JPORT/app/" -H "$BEARER")
RESULTS+=("$ROW")
ROW=$(run "nginx auth_request -> jwtgate /auth, nginx proxy" "http://127.0.0.1:$NPORT/gated/" -H "$BEARER")
RESULTS+=("$ROW")
stop_jwtgate

start_jwtgate false
wrk -t1 -c4 -d2s -H "$BEARER" "http://127.0.0.1:$JPORT/app/" >/dev/null
ROW=$(run "jwtgate gateway, verdict cache off" "http://127.0.0.1:$JPORT/app/" -H "$BEARER")
RESULTS+=("$ROW")
ROW=$(run "nginx auth_request -> jwtgate /auth (cache off), nginx proxy" "http://127.0.0.1:$NPORT/gated/" -H "$BEARER")
RESULTS+=("$ROW")
stop_jwtgate

echo
echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); wrk, the proxies and the upstream share them."
echo "Command: scripts/bench-gateway.sh $DURATION $CONNECTIONS (wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency); token: ES256."
echo
REFERENCE=$(cut -d'|' -f2 <<<"${RESULTS[0]}")
FORWARD=$(cut -d'|' -f2 <<<"${RESULTS[2]}")
FORWARD_OFF=$(cut -d'|' -f2 <<<"${RESULTS[4]}")
echo "| run | req/s | p99 latency | req/s vs nginx proxy | vs nginx auth_request (cache on) | vs nginx auth_request (cache off) |"
echo "|---|---:|---:|---:|---:|---:|"
for row in "${RESULTS[@]}"; do
    IFS='|' read -r label rps p99 <<<"$row"
    ratio=$(awk -v a="$rps" -v b="$REFERENCE" 'BEGIN { printf "%.2f", a / b }')
    vs_forward=$(awk -v a="$rps" -v b="$FORWARD" 'BEGIN { printf "%.2f", a / b }')
    vs_off=$(awk -v a="$rps" -v b="$FORWARD_OFF" 'BEGIN { printf "%.2f", a / b }')
    echo "| $label | $rps | $p99 | $ratio | $vs_forward | $vs_off |"
done
