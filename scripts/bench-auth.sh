#!/usr/bin/env bash
# Measures `jwtgate serve`'s /auth with wrk, next to an nginx static endpoint in the same run:
#   nginx static file               (the reference: what a request costs with no auth at all)
#   jwtgate /auth, verdict cache on  (the default)
#   jwtgate /auth, verdict cache off (every request verifies the signature)
#   nginx auth_request -> jwtgate /auth -> static file (forward-auth as deployed)
#   jwtgate /auth while a login flood (wrong passwords, argon2 each) runs against /login
# Prints a Markdown table for BENCHMARKS.md. Not run by CI (it takes a minute and needs a quiet
# machine). Installs wrk and nginx when missing (Debian).
#
# Usage: scripts/bench-auth.sh [SECONDS_PER_RUN] [CONNECTIONS]   (defaults: 10, 32)
set -euo pipefail

DURATION=${1:-10}
CONNECTIONS=${2:-32}
THREADS=2
cd "$(dirname "$0")/.."

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

export JWTGATE_DATA=$WORK/data JWTGATE_ADMIN_PASSWORD=bench-admin-pw
"$BIN" user add bench:user:bench-pw >/dev/null
TOKEN=$("$BIN" token issue bench --ttl 1h)

# jwtgate, with the verdict cache on or off, and login throttling out of the way (every
# flood request must cost a password check).
JPORT=$(free_port)
JPID=
start_jwtgate() {
    cat >"$WORK/jwtgate.toml" <<TOML
[server]
verdict_cache = $1
[login]
max_failures_per_user = 1000000000
max_failures_per_ip = 1000000000
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

# nginx: a static file, and the same file behind auth_request to jwtgate.
NPORT=$(free_port)
mkdir -p "$WORK/www"
printf 'ok\n' >"$WORK/www/static"
# nginx's workers run as an unprivileged user when started as root: let them read the file.
chmod o+x "$WORK"
chmod -R o+rX "$WORK/www"
cat >"$WORK/nginx.conf" <<NGINX
daemon off;
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    upstream jwtgate { server 127.0.0.1:$JPORT; keepalive 32; }
    server {
        listen 127.0.0.1:$NPORT;
        root $WORK/www;
        location = /static { }
        location = /gated {
            auth_request /_auth;
            try_files /static =404;
        }
        location = /_auth {
            internal;
            proxy_pass http://jwtgate/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
    }
}
NGINX
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/nginx-error.log" &
PIDS+=($!)
wait_for "$NPORT"

printf 'wrk.method = "POST"\n' >"$WORK/post.lua"


BEARER="Authorization: Bearer $TOKEN"
RESULTS=()
start_jwtgate true
# Warm up (connection setup, the verdict cache, the CPU governor).
wrk -t1 -c4 -d2s "http://127.0.0.1:$NPORT/static" >/dev/null
wrk -t1 -c4 -d2s -H "$BEARER" "http://127.0.0.1:$JPORT/auth" >/dev/null
ROW=$(run "nginx static file" "http://127.0.0.1:$NPORT/static")
RESULTS+=("$ROW")
ROW=$(run "jwtgate /auth, verdict cache on" "http://127.0.0.1:$JPORT/auth" -H "$BEARER")
RESULTS+=("$ROW")
ROW=$(run "nginx auth_request -> jwtgate /auth -> static file" "http://127.0.0.1:$NPORT/gated" -H "$BEARER")
RESULTS+=("$ROW")

# The login flood runs on its own connections for longer than the /auth run it disturbs.
BASIC="Authorization: Basic $(printf 'bench:wrong-pw' | base64)"
wrk -t1 -c8 -d"$((DURATION + 4))s" --latency -s "$WORK/post.lua" -H "$BASIC" \
    "http://127.0.0.1:$JPORT/login" >"$WORK/flood.txt" &
FLOOD=$!
sleep 2
ROW=$(run "jwtgate /auth during a login flood" "http://127.0.0.1:$JPORT/auth" -H "$BEARER")
RESULTS+=("$ROW")
wait "$FLOOD"
FLOOD_RPS=$(awk '/^Requests\/sec:/ { printf "%.1f", $2 }' "$WORK/flood.txt")
# Every flood request must have been a refused password check (401), not a cheap 429.
FLOOD_REQUESTS=$(awk '/requests in/ { print $1 }' "$WORK/flood.txt")
FAILURES=$(curl -s "http://127.0.0.1:$JPORT/metrics" | awk '/^jwtgate_login_failures_total/ { print $2 }')
if [ "$FAILURES" -lt $((FLOOD_REQUESTS * 95 / 100)) ]; then
    echo "login flood: $FLOOD_REQUESTS requests but only $FAILURES password checks failed" >&2
    exit 1
fi
stop_jwtgate

start_jwtgate false
wrk -t1 -c4 -d2s -H "$BEARER" "http://127.0.0.1:$JPORT/auth" >/dev/null
ROW=$(run "jwtgate /auth, verdict cache off" "http://127.0.0.1:$JPORT/auth" -H "$BEARER")
RESULTS+=("$ROW")
stop_jwtgate

echo
echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); wrk and the servers share them."
echo "Command: scripts/bench-auth.sh $DURATION $CONNECTIONS (wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency); token: ES256."
echo "Login flood: wrk -t1 -c8 POST /login with a wrong password, $FLOOD_RPS logins/s (each one argon2id)."
echo
REFERENCE=$(cut -d'|' -f2 <<<"${RESULTS[0]}")
echo "| run | req/s | p99 latency | req/s vs nginx static |"
echo "|---|---:|---:|---:|"
for row in "${RESULTS[@]}"; do
    IFS='|' read -r label rps p99 <<<"$row"
    ratio=$(awk -v a="$rps" -v b="$REFERENCE" 'BEGIN { printf "%.2f", a / b }')
    echo "| $label | $rps | $p99 | $ratio |"
done
