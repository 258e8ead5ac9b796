# Shared by scripts/bench-*.sh (sourced after DURATION, CONNECTIONS and THREADS are set, from
# the repository root): installs wrk and nginx when missing, builds the release binary ($BIN),
# makes a work directory ($WORK) removed on exit with every process in $PIDS, and runs wrk.

# The caller's own settings would override the benchmark's config file.
for var in $(compgen -e | grep -E '^JWTGATE_(SERVER|LOGIN)_' || true); do unset "$var"; done

install() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
    if [ ${#missing[@]} -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
install
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet
BIN=$PWD/target/release/jwtgate
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

# run LABEL URL [wrk options…]: one wrk run; prints "LABEL|req/s|p99".
run() {
    local label=$1 url=$2
    shift 2
    local out
    # (set -e does not reach into $(…); every failure here is checked by hand.)
    if ! out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url"); then
        echo "$label: wrk failed" >&2
        exit 1
    fi
    if grep -qE 'Non-2xx or 3xx responses|Socket errors' <<<"$out"; then
        echo "$label: some requests failed or were refused; the run does not count" >&2
        echo "$out" >&2
        exit 1
    fi
    local rps p99
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    if [ -z "$rps" ] || [ -z "$p99" ]; then
        echo "$label: cannot read wrk's report" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "$label|$rps|$p99"
}
