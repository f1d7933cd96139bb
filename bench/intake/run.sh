#!/usr/bin/env bash
# Intake benchmark: signed, durable GitHub `push` deliveries per second,
# against the ceiling of the HTTP library perfbot is built on.
#
# One run: builds bench/intake/ceiling.c (a libmicrohttpd server that reads
# the body and answers 202, nothing else) and loads it in its two modes
# (epoll with a pool of one event thread per core; one thread per
# connection); then perfbot (build/perfbot serve) and Probot 14
# (probot-app/), one after the other, each on a free port on 127.0.0.1 with
# the same webhook secret, all under the same wrk load (intake.lua: a 7.7 KB
# push payload, a precomputed X-Hub-Signature-256, a unique
# X-GitHub-Delivery per request).  For each server it reports deliveries/s,
# p50/p99 latency, RSS idle and peak under load, non-2xx answers and socket
# errors; perfbot is then killed with SIGKILL and every delivery answered 2xx
# must be in its store.  The ceiling is the better of the two modes.  Prints
# a table, the perfbot/ceiling and perfbot/Probot ratios and PASS/MISS for
# each target; BENCH_RUNS runs (5 by default) follow one another, and a
# summary of all of them ends the output.  Figures go to
# bench/out/intake.json (every run).
#
# Exit status: 0 when the figures are valid (servers up, every answer 2xx,
# every 2xx stored), 1 otherwise.  A missed target alone exits 0 unless
# BENCH_STRICT=1 (then: the targets must hold in at least 4 of 5 runs, or
# in every run when fewer than 5).
#
# Knobs (environment): BENCH_RUNS (5), BENCH_DURATION (s, 10), BENCH_WARMUP
# (s, 2; not measured), BENCH_THREADS (2), BENCH_CONNECTIONS (32),
# BENCH_ONLY (perfbot|probot|ceiling, comma-separated), PERFBOT_BIN
# (build/perfbot), BENCH_STRICT.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PERFBOT_BIN=${PERFBOT_BIN:-$ROOT/build/perfbot}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
ONLY=${BENCH_ONLY:-}
RUNS=${BENCH_RUNS:-5}
PROBOT_VERSION=14.3.2
OUT_DIR=$ROOT/bench/out
PAYLOAD=$HERE/push.json
LUA=$HERE/intake.lua
WEBHOOK_PATH=/api/github/webhooks
SECRET="bench-$(openssl rand -hex 16)"
WRK=${WRK:-wrk}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/perfbot-bench-intake.XXXXXX")
SERVER_PID=
SAMPLER_PID=
WRK_PID=
invalid=0

log() { printf '%s\n' "$*" >&2; }
fail() { log "bench/intake: $*"; invalid=1; }

stop_pid() { # pid signal
    local pid=$1 sig=${2:-TERM}
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    stop_pid "$WRK_PID" TERM
    stop_pid "$SAMPLER_PID" TERM
    stop_pid "$SERVER_PID" TERM
    [ -z "${PG_DIR:-}" ] || { sh "$ROOT/tests/lib/pg.sh" kill "$PG_DIR" >/dev/null 2>&1; rm -rf "$PG_DIR"; }
    [ -n "${BENCH_KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in "$WRK" node curl openssl cc pkg-config; do
    command -v "$tool" >/dev/null || { log "bench/intake: $tool not found"; exit 1; }
done

# A port nobody listens on right now (the kernel picks it).
free_port() {
    node -e 'const s = require("net").createServer();
             s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# status_field PID FIELD -> value in kB of VmRSS / VmHWM, 0 when gone.
status_field() {
    local key val _
    while read -r key val _; do
        if [ "$key" = "$2:" ]; then echo "$val"; return 0; fi
    done < "/proc/$1/status" 2>/dev/null || true
    echo 0
}

# cpu_ticks PID -> utime + stime in clock ticks (fields 14 and 15 of stat).
cpu_ticks() {
    local stat rest
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    rest=${stat##*) }  # comm may hold spaces; fields restart after ") "
    # shellcheck disable=SC2086
    set -- $rest
    echo $(( ${12} + ${13} ))
}

# Sample VmRSS every 50 ms into $1 (the max seen so far, kB) until killed.
sample_rss() { # pid file
    local pid=$1 file=$2 max=0 cur
    while kill -0 "$pid" 2>/dev/null; do
        cur=$(status_field "$pid" VmRSS)
        if [ "$cur" -gt "$max" ]; then max=$cur; echo "$max" > "$file"; fi
        sleep 0.05
    done
}

wait_healthy() { # url pid name logfile

    for _ in $(seq 1 150); do
        if ! kill -0 "$2" 2>/dev/null; then
            log "bench/intake: $3 exited during start-up; last log lines:"
            tail -n 20 "$4" >&2 || true
            return 1
        fi
        if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "bench/intake: $3 not healthy after 15 s ($1); last log lines:"
    tail -n 20 "$4" >&2 || true
    return 1
}

# post_push URL SIGNATURE DELIVERY -> HTTP status (000 when no answer).
post_push() {
    curl -s -o "$WORK/answer" -w '%{http_code}' --max-time 5 -X POST \
        -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
        -H "X-GitHub-Delivery: $3" -H "X-Hub-Signature-256: $2" \
        --data-binary "@$PAYLOAD" "$1" || true
}

# children_cpu FILE: user+sys seconds of every child this shell has reaped,
# into FILE. `times` must run in this shell, not in a $(...) subshell.
children_cpu() {
    times > "$1.times"
    tail -n 1 "$1.times" | awk '{
        t = 0
        for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
        printf "%.3f\n", t }' > "$1"
}

# run_wrk URL SECONDS RUN_ID OUTFILE: wrk output in OUTFILE, its CPU seconds
# (user+sys) in OUTFILE.cpu. wrk runs in the background and is waited for,
# so a signal to this script is handled at once (the trap stops wrk).
run_wrk() {
    local rc=0
    children_cpu "$4.cpu0"
    timeout $(( $2 + 30 )) "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"$2s" --timeout 5s \
        -s "$LUA" "$1" -- "$SIGNATURE" "$PAYLOAD" "$3" > "$4" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=
    children_cpu "$4.cpu1"
    awk -v a="$(cat "$4.cpu0")" -v b="$(cat "$4.cpu1")" 'BEGIN { printf "%.2f\n", b - a }' > "$4.cpu"
    if [ "$rc" -ne 0 ]; then log "bench/intake: wrk failed ($rc):"; cat "$4" >&2; return 1; fi
    grep -q '^RESULT ' "$4" || { log "bench/intake: wrk printed no RESULT line:"; cat "$4" >&2; return 1; }
}

# field FILE KEY -> value of KEY=... on the RESULT line.
field() {
    sed -n 's/^RESULT //p' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# Next wrk run id: 7 hex digits, distinct within this benchmark run.
RUN_BASE=$(( 0x$(openssl rand -hex 3) * 16 ))
RUN_SEQ=0
# Sets RUN_ID; not called in $(...), which would lose the increment.
next_run_id() {
    RUN_SEQ=$((RUN_SEQ + 1))
    RUN_ID=$(printf '%07x' $(( (RUN_BASE + RUN_SEQ) % 0x10000000 )))
}

SIGNATURE="sha256=$(openssl dgst -sha256 -hmac "$SECRET" -r "$PAYLOAD" | cut -d' ' -f1)"
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$OUT_DIR"

# Figures, keyed "server.field" (server: perfbot or probot).
declare -A R

# bench_server NAME URL PID EXPECT_STATUS: measures one running server and
# fills R[NAME.*].
bench_server() {
    local name=$1 url=$2 pid=$3 expect=$4 checks=${5:-checks} status id k
    local warm=$WORK/$name.warmup.txt main=$WORK/$name.wrk.txt peakfile=$WORK/$name.peak
    rm -f "$warm" "$main"

    # what the servers before this one left in the page cache is written
    # out first, not during this one's measurement (its fdatasyncs)
    sync
    sleep 1
    R[$name.idle_kb]=$(status_field "$pid" VmRSS)

    id=ffffffff-0000-4000-8000-0000000$(printf '%05x' "$RUN_NO")
    status=$(post_push "$url" "$SIGNATURE" "$id")
    if [ "$status" != "$expect" ]; then
        fail "$name answered $status (expected $expect) to a signed push: $(head -c 300 "$WORK/answer" 2>/dev/null)"
        return 1
    fi
    if [ "$checks" = checks ]; then
        status=$(post_push "$url" "sha256=$(printf '%064d' 0)" ffffffff-0000-4000-8000-100000000002)
        case $status in
            4??) ;;
            *) fail "$name answered $status to a push with a wrong signature (expected 4xx)"; return 1 ;;
        esac
        R[$name.redelivery_status]=$(post_push "$url" "$SIGNATURE" "$id")
        log "   signed push -> $expect, wrong signature -> $status, same delivery id again -> ${R[$name.redelivery_status]}"
    else
        R[$name.redelivery_status]=0
    fi

    if [ "$WARMUP" -gt 0 ]; then
        log "   warm-up: ${WARMUP} s (not measured)"
        next_run_id
        run_wrk "$url" "$WARMUP" "$RUN_ID" "$warm" || return 1
    fi

    log "   load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"
    echo 0 > "$peakfile"
    sample_rss "$pid" "$peakfile" &
    SAMPLER_PID=$!
    local cpu0 cpu1 t0 t1
    cpu0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
    next_run_id
    if ! run_wrk "$url" "$DURATION" "$RUN_ID" "$main"; then
        stop_pid "$SAMPLER_PID"; SAMPLER_PID=
        return 1
    fi
    cpu1=$(cpu_ticks "$pid"); t1=$(date +%s.%N)
    stop_pid "$SAMPLER_PID" TERM; SAMPLER_PID=

    R[$name.load_kb]=$(cat "$peakfile")
    R[$name.hwm_kb]=$(status_field "$pid" VmHWM)
    # The kernel updates VmHWM lazily; a sample can be a few kB above it.
    [ "${R[$name.load_kb]}" -le "${R[$name.hwm_kb]}" ] || R[$name.hwm_kb]=${R[$name.load_kb]}
    R[$name.server_cpu]=$(awk -v a="$cpu0" -v b="$cpu1" -v h="$CLK_TCK" -v t0="$t0" -v t1="$t1" \
        'BEGIN { printf "%.2f", (b - a) / h / (t1 - t0) }')
    R[$name.cpu_us_per_delivery]=$(awk -v c="${R[$name.server_cpu]}" -v r="$(field "$main" rps)" \
        'BEGIN { printf "%.1f", (r > 0) ? c * 1e6 / r : 0 }')
    R[$name.wrk_cpu]=$(awk -v c="$(cat "$main.cpu")" -v d="$DURATION" 'BEGIN { printf "%.2f", c / d }')
    for k in requests rps p50_us p90_us p99_us p999_us max_us ok2xx s200 s202 non2xx \
             err_connect err_read err_write err_timeout; do
        R[$name.$k]=$(field "$main" "$k")
    done
    R[$name.sockerr]=$(( R[$name.err_connect] + R[$name.err_read] + R[$name.err_write] + R[$name.err_timeout] ))
    # Every 2xx answered so far: the first signed push, the warm-up, the run.
    local total=$(( 1 + R[$name.ok2xx] )) non=${R[$name.non2xx]}
    if [ -f "$warm" ]; then
        total=$(( total + $(field "$warm" ok2xx) ))
        non=$(( non + $(field "$warm" non2xx) ))
    fi
    R[$name.total2xx]=$total
    [ "$non" -eq 0 ] || fail "$name: $non non-2xx answers under load (figures invalid)"
    [ "${R[$name.sockerr]}" -eq 0 ] ||
        fail "$name: ${R[$name.sockerr]} socket errors under load (connect/read/write/timeout)"
    sed -n '/Latency/p;/Req\/Sec/p;/requests in/p' "$main" | sed 's/^/   /' >&2
}

count_perfbot_deliveries() { # data_dir
    local n=
    # Opening the store (perfbot migrate) first adds the rows of deliveries
    # that were durable in the body log when the SIGKILL came but had no row
    # yet, as the next `perfbot serve` would.
    (cd "$WORK" && "$PERFBOT_BIN" migrate --data-dir "$1" >/dev/null 2>&1) ||
        log "   warning: perfbot migrate could not open the store in $1"
    if command -v sqlite3 >/dev/null && [ -f "$1/perfbot.db" ]; then
        n=$(sqlite3 "$1/perfbot.db" 'select count(*) from deliveries;' 2>/dev/null) || n=
    fi
    if [ -z "$n" ]; then
        n=$(cd "$WORK" && "$PERFBOT_BIN" deliveries --json --limit 100000000 --data-dir "$1" 2>/dev/null |
            node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
                       const v = JSON.parse(s); const a = Array.isArray(v) ? v : (v.deliveries || []);
                       console.log(a.length); });') || n=
    fi
    echo "${n:-unknown}"
}

run_perfbot() {
    if [ ! -x "$PERFBOT_BIN" ]; then
        fail "perfbot: $PERFBOT_BIN not found (run make first)"
        return 1
    fi
    local port data log url
    # a data dir of its own each run: the durability count below is this
    # run's alone (and the store starts as empty as the other servers')
    port=$(free_port); data=$WORK/perfbot-data-$RUN_NO; log=$WORK/perfbot.log
    rm -rf "$WORK"/perfbot-data-*; mkdir -p "$data"
    url=http://127.0.0.1:$port$WEBHOOK_PATH
    log "== perfbot ($("$PERFBOT_BIN" version 2>/dev/null | head -n 1 || echo '?')) on 127.0.0.1:$port, fresh data dir $data"
    # Run from the temp dir so no developer .env is picked up.
    (cd "$WORK" && exec env -u DATABASE_URL -u WEBHOOK_SECRET_OLD -u WEBHOOK_PATH -u HOST -u PORT \
        WEBHOOK_SECRET="$SECRET" LOG_LEVEL=warn \
        "$PERFBOT_BIN" serve --host 127.0.0.1 --port "$port" --data-dir "$data" > "$log" 2>&1) &
    SERVER_PID=$!
    disown "$SERVER_PID"  # no "Killed" job notice after the SIGKILL below
    wait_healthy "http://127.0.0.1:$port/healthz" "$SERVER_PID" perfbot "$log" ||
        { fail "perfbot did not start"; return 1; }
    bench_server perfbot "$url" "$SERVER_PID" 202 || return 1
    [ "${R[perfbot.redelivery_status]}" = 200 ] ||
        log "   warning: a redelivery (same X-GitHub-Delivery) got ${R[perfbot.redelivery_status]}, not 200 duplicate"

    # Durability: SIGKILL (no shutdown, no flush), then count what is stored.
    stop_pid "$SERVER_PID" KILL; SERVER_PID=
    R[perfbot.stored]=$(count_perfbot_deliveries "$data")
    log "   durability after SIGKILL: ${R[perfbot.total2xx]} deliveries answered 2xx, ${R[perfbot.stored]} stored"
    if [ "${R[perfbot.stored]}" = unknown ]; then
        fail "perfbot: could not count the stored deliveries in $data"
    elif [ "${R[perfbot.stored]}" -lt "${R[perfbot.total2xx]}" ]; then
        fail "perfbot: only ${R[perfbot.stored]} of ${R[perfbot.total2xx]} deliveries answered 2xx are stored"
    fi
    if [ "${R[perfbot.s202]}" != "${R[perfbot.ok2xx]}" ]; then
        fail "perfbot: ${R[perfbot.s200]} of ${R[perfbot.ok2xx]} answers were 200 (duplicate?) instead of 202"
    fi
    if grep -qiE 'error|fatal|sanitizer' "$log"; then
        log "   perfbot logged errors:"
        grep -iE 'error|fatal|sanitizer' "$log" | head -n 5 | sed 's/^/   /' >&2
    fi
}

# wants NAME: 0 when BENCH_ONLY is empty or names NAME.
wants() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

CEILING_BIN=$WORK/ceiling
build_ceiling() {
    [ -x "$CEILING_BIN" ] && return 0
    # shellcheck disable=SC2046  # pkg-config's flags are words
    cc -std=c11 -D_GNU_SOURCE -O2 -o "$CEILING_BIN" "$HERE/ceiling.c" \
        $(pkg-config --cflags --libs libmicrohttpd) 2> "$WORK/ceiling.cc.log" ||
        { log "bench/intake: cannot build ceiling.c:"; cat "$WORK/ceiling.cc.log" >&2; return 1; }
}

# run_ceiling MODE (epoll | tpc): fills R[ceil_MODE.*].
run_ceiling() {
    local mode=$1 name=ceil_$1 port log url
    build_ceiling || { fail "the ceiling server did not build"; return 1; }
    port=$(free_port); log=$WORK/$name.log
    url=http://127.0.0.1:$port$WEBHOOK_PATH
    if [ "$mode" = epoll ]; then
        log "== ceiling: libmicrohttpd $(pkg-config --modversion libmicrohttpd), epoll, $(nproc) event threads, on 127.0.0.1:$port"
    else
        log "== ceiling: libmicrohttpd $(pkg-config --modversion libmicrohttpd), one thread per connection, on 127.0.0.1:$port"
    fi
    "$CEILING_BIN" "$mode" "$port" > "$log" 2>&1 &
    SERVER_PID=$!
    wait_healthy "http://127.0.0.1:$port/" "$SERVER_PID" ceiling "$log" ||
        { fail "the ceiling server ($mode) did not start"; return 1; }
    bench_server "$name" "$url" "$SERVER_PID" 202 nochecks || return 1
    stop_pid "$SERVER_PID" TERM; SERVER_PID=
}

run_probot() {
    local app=$HERE/probot-app port log url key
    if [ "$(node -p 'try { require(process.argv[1]).version } catch { "" }' \
            "$app/node_modules/probot/package.json" 2>/dev/null)" != "$PROBOT_VERSION" ]; then
        log "== installing probot $PROBOT_VERSION (npm install in bench/intake/probot-app)"
        (cd "$app" && timeout 300 npm install --no-audit --no-fund --loglevel=error) ||
            { fail "npm install of probot failed"; return 1; }
    fi
    port=$(free_port); log=$WORK/probot.log; key=$WORK/probot-key.pem
    url=http://127.0.0.1:$port$WEBHOOK_PATH
    # A throwaway App key: Probot wants one to start; nothing here calls GitHub.
    openssl genrsa -traditional -out "$key" 2048 2>/dev/null
    log "== probot $PROBOT_VERSION (node $(node --version)) on 127.0.0.1:$port"
    (cd "$WORK" && exec env -u WEBHOOK_PROXY_URL -u WEBHOOK_PATH -u GHE_HOST -u PRIVATE_KEY \
        APP_ID=1 PRIVATE_KEY_PATH="$key" WEBHOOK_SECRET="$SECRET" LOG_LEVEL=warn \
        NODE_ENV=production HOST=127.0.0.1 PORT="$port" \
        node "$app/node_modules/probot/bin/probot.js" run "$app/index.js" > "$log" 2>&1) &
    SERVER_PID=$!
    # Probot has no health route; its home page answers once it listens.
    wait_healthy "http://127.0.0.1:$port/" "$SERVER_PID" probot "$log" ||
        { fail "probot did not start"; return 1; }
    bench_server probot "$url" "$SERVER_PID" 200 || return 1
    stop_pid "$SERVER_PID" TERM; SERVER_PID=
}

# ---- PostgreSQL: perfbot with one and with two web replicas on one database --
# A cluster of its own (tests/lib/pg.sh, fsync on: durable means on disk),
# `perfbot serve --role web` replicas on it (their jobs wait in the queue:
# no worker runs here), the same payload and wrk settings.  With two
# replicas the connections are split over two wrk processes, one per
# replica: deliveries/s is their sum, p99 the higher of the two.  After
# SIGKILL of the replicas every 2xx must be in the database.  Printed under
# the table of each run; figures in bench/out/intake-postgres.json (the
# last run's).  BENCH_PG=0 (or BENCH_ONLY without "postgres") leaves it out.
PG_DIR=
PG_REPORT=$WORK/postgres.txt
: > "$PG_REPORT"
declare -A PGR
run_pg_load() { # KEY URL...: one wrk per URL, figures in PGR[KEY.*]
    local n=$1; shift
    local i=0 conns=$(( CONNECTIONS / $# )) pids=() url rc=0 f
    [ "$conns" -ge 1 ] || conns=1
    # this round's files only: a round with fewer replicas must not count an
    # earlier round's answers
    rm -f "$WORK"/pg"$n".*.txt
    for url in "$@"; do
        i=$((i + 1))
        next_run_id
        timeout $(( DURATION + 30 )) "$WRK" -t1 -c"$conns" -d"${DURATION}s" --timeout 5s -s "$LUA" "$url" -- \
            "$SIGNATURE" "$PAYLOAD" "$RUN_ID" > "$WORK/pg$n.$i.txt" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    [ "$rc" = 0 ] || { fail "postgres: wrk failed"; return 1; }
    PGR[$n.rps]=0; PGR[$n.p99_us]=0; PGR[$n.ok2xx]=0; PGR[$n.non2xx]=0; PGR[$n.sockerr]=0
    for f in "$WORK"/pg"$n".*.txt; do
        grep -q '^RESULT ' "$f" || { fail "postgres: wrk printed no RESULT line"; cat "$f" >&2; return 1; }
        PGR[$n.rps]=$(awk -v a="${PGR[$n.rps]}" -v b="$(field "$f" rps)" 'BEGIN { printf "%.1f", a + b }')
        [ "$(field "$f" p99_us)" -le "${PGR[$n.p99_us]}" ] || PGR[$n.p99_us]=$(field "$f" p99_us)
        PGR[$n.ok2xx]=$(( PGR[$n.ok2xx] + $(field "$f" ok2xx) ))
        PGR[$n.non2xx]=$(( PGR[$n.non2xx] + $(field "$f" non2xx) ))
        PGR[$n.sockerr]=$(( PGR[$n.sockerr] + $(field "$f" err_connect) + $(field "$f" err_read) \
            + $(field "$f" err_write) + $(field "$f" err_timeout) ))
    done
}
run_postgres() {
    local pgurl n i port pids urls stored
    PG_DIR=$(mktemp -d /tmp/perfbot-bench-pg.XXXXXX)
    pgurl=$(PG_FSYNC=on sh "$ROOT/tests/lib/pg.sh" start "$PG_DIR") || { fail "postgres: the cluster did not start"; return 1; }
    for n in 1 2; do
        # each round on an empty database
        psql -X -q -d "$pgurl" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' >/dev/null 2>&1
        pids=(); urls=()
        for i in $(seq 1 "$n"); do
            port=$(free_port)
            mkdir -p "$WORK/pg-data-$n-$i"
            (cd "$WORK" && exec env -u WEBHOOK_SECRET_OLD -u WEBHOOK_PATH -u HOST -u PORT DATABASE_URL="$pgurl" \
                WEBHOOK_SECRET="$SECRET" LOG_LEVEL=warn "$PERFBOT_BIN" serve --role web --host 127.0.0.1 \
                --port "$port" --data-dir "$WORK/pg-data-$n-$i" > "$WORK/pg-$n-$i.log" 2>&1) &
            pids+=($!)
            disown "$!"
            wait_healthy "http://127.0.0.1:$port/healthz" "$!" "perfbot (postgres)" "$WORK/pg-$n-$i.log" ||
                { fail "postgres: perfbot did not start"; for i in "${pids[@]}"; do stop_pid "$i" KILL; done; return 1; }
            urls+=("http://127.0.0.1:$port$WEBHOOK_PATH")
        done
        log "== perfbot on PostgreSQL, $n web replica(s): wrk -c$CONNECTIONS split over them, ${DURATION}s"
        PGR[w.ok2xx]=0
        if [ "$WARMUP" -gt 0 ]; then
            local saved=$DURATION
            DURATION=$WARMUP; run_pg_load w "${urls[@]}" || true; DURATION=$saved
        fi
        run_pg_load "$n" "${urls[@]}" || { for i in "${pids[@]}"; do stop_pid "$i" KILL; done; return 1; }
        for i in "${pids[@]}"; do stop_pid "$i" KILL; done
        stored=$(psql -X -q -A -t -d "$pgurl" -c 'SELECT count(*) FROM deliveries' 2>/dev/null) || stored=unknown
        PGR[$n.total2xx]=$(( PGR[$n.ok2xx] + ${PGR[w.ok2xx]:-0} ))
        PGR[$n.stored]=$stored
        log "   durability after SIGKILL: ${PGR[$n.total2xx]} deliveries answered 2xx, $stored stored"
        [ "$stored" != unknown ] && [ "$stored" -ge "${PGR[$n.total2xx]}" ] ||
            fail "postgres: only $stored of ${PGR[$n.total2xx]} deliveries answered 2xx are stored"
        [ "$(( PGR[$n.non2xx] + PGR[$n.sockerr] ))" -eq 0 ] ||
            fail "postgres: ${PGR[$n.non2xx]} non-2xx answers and ${PGR[$n.sockerr]} socket errors under load"
    done
    sh "$ROOT/tests/lib/pg.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"; PG_DIR=
    {
        for n in 1 2; do
            printf '%-14s %13.0f %9s %9s  (PostgreSQL 15, %d web replica%s, fsync on; %s of %s 2xx stored after SIGKILL)\n' \
                "postgres x$n" "${PGR[$n.rps]}" - "$(ms "${PGR[$n.p99_us]}")" "$n" "$([ "$n" = 1 ] || echo s)" \
                "${PGR[$n.stored]}" "${PGR[$n.total2xx]}"
        done
    } > "$PG_REPORT"
    SUMMARY+=("$(printf 'run %d: PostgreSQL, fsync on: 1 web replica %.0f/s p99 %s; 2 web replicas %.0f/s p99 %s' \
        "${RUN_NO:-1}" "${PGR[1.rps]}" "$(ms "${PGR[1.p99_us]}")" "${PGR[2.rps]}" "$(ms "${PGR[2.p99_us]}")")")
    printf '{"postgres_1_web": {"deliveries_per_s": %s, "p99_ms": %s, "answered_2xx": %s, "stored": %s},\n "postgres_2_web": {"deliveries_per_s": %s, "p99_ms": %s, "answered_2xx": %s, "stored": %s}}\n' \
        "${PGR[1.rps]}" "$(msnum "${PGR[1.p99_us]}")" "${PGR[1.total2xx]}" "${PGR[1.stored]}" \
        "${PGR[2.rps]}" "$(msnum "${PGR[2.p99_us]}")" "${PGR[2.total2xx]}" "${PGR[2.stored]}" \
        > "$OUT_DIR/intake-postgres.json"
}
# ---- one run -----------------------------------------------------------------
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
msnum() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }
have() { [ -n "${R[$1.rps]:-}" ]; }
verdict() { awk "BEGIN { exit !($1) }" && echo PASS || echo MISS; }

# The disk under perfbot's data dir: one 8 KB write + fdatasync, in ms (the
# least a durable commit costs; at C connections each waiting for its commit,
# C / this is the most deliveries/s any durable server can answer).
fsync_ms() {
    local out
    out=$(dd if=/dev/zero of="$WORK/fsync.test" bs=8k count=200 oflag=dsync 2>&1 | tail -n 1) || true
    rm -f "$WORK/fsync.test"
    # "... copied, 0.25 s, 6.5 MB/s"
    echo "$out" | awk -F, '{ for (i = 1; i <= NF; i++) if ($i ~ / s$/) { split($i, a, " "); printf "%.3f", a[1] * 1000 / 200 } }'
}

server_json() {
    local s=$1
    if ! have "$s"; then echo null; return; fi
    printf '{"deliveries_per_s": %s, "requests": %s, "p50_ms": %s, "p90_ms": %s, "p99_ms": %s, "p999_ms": %s, "max_ms": %s, ' \
        "${R[$s.rps]}" "${R[$s.requests]}" "$(msnum "${R[$s.p50_us]}")" "$(msnum "${R[$s.p90_us]}")" \
        "$(msnum "${R[$s.p99_us]}")" "$(msnum "${R[$s.p999_us]}")" "$(msnum "${R[$s.max_us]}")"
    printf '"rss_idle_kb": %s, "rss_peak_sampled_kb": %s, "rss_hwm_kb": %s, "ok2xx": %s, "non2xx": %s, "socket_errors": %s, ' \
        "${R[$s.idle_kb]}" "${R[$s.load_kb]}" "${R[$s.hwm_kb]}" "${R[$s.ok2xx]}" "${R[$s.non2xx]}" "${R[$s.sockerr]}"
    printf '"server_cpu_cores": %s, "server_cpu_us_per_delivery": %s, "wrk_cpu_cores": %s, "redelivery_status": %s' \
        "${R[$s.server_cpu]}" "${R[$s.cpu_us_per_delivery]}" "${R[$s.wrk_cpu]}" "${R[$s.redelivery_status]}"
    if [ "$s" = perfbot ] && [ -n "${R[perfbot.stored]:-}" ]; then
        local stored=${R[perfbot.stored]}
        case $stored in ''|*[!0-9]*) stored=null ;; esac
        printf ', "answered_2xx_total": %s, "stored_after_sigkill": %s' "${R[perfbot.total2xx]}" "$stored"
    fi
    printf '}'
}

SUMMARY=()      # one line per run
RUN_JSON=()     # one JSON object per run
HELD=0          # runs where every target held
JUDGED=0        # runs where the targets could be judged

one_run() {
    local n=$1 load_before load_after fsync
    unset R; declare -gA R
    invalid_before=$invalid
    load_before=$(cut -d' ' -f1 /proc/loadavg)
    fsync=$(fsync_ms)
    log ""
    log "######## bench/intake run $n of $RUNS: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), payload $(wc -c < "$PAYLOAD") bytes, 8 KB write+fdatasync ${fsync:-?} ms"
    if awk -v l="$load_before" 'BEGIN { exit !(l >= 1.0) }'; then
        log "bench/intake: warning: the machine is busy (load $load_before); figures will be low and noisy"
    fi
    if wants ceiling; then run_ceiling epoll || true; run_ceiling tpc || true; fi
    if wants perfbot; then run_perfbot || true; fi
    if wants probot; then run_probot || true; fi
    : > "$PG_REPORT"
    if wants postgres && [ "${BENCH_PG:-1}" != 0 ]; then run_postgres || true; fi
    load_after=$(cut -d' ' -f1 /proc/loadavg)

    # the ceiling: the better of the two modes
    local ceil=ceil_epoll
    if have ceil_tpc && { ! have ceil_epoll || awk -v a="${R[ceil_tpc.rps]}" -v b="${R[ceil_epoll.rps]}" 'BEGIN { exit !(a > b) }'; }; then
        ceil=ceil_tpc
    fi

    echo
    echo "== bench/intake run $n of $RUNS"
    printf '%-14s %13s %9s %9s %10s %10s %8s %9s %10s %10s\n' \
        server deliveries/s p50 p99 "RSS idle" "RSS load" non-2xx "sock err" "CPU cores" "CPU us/dl"
    local s label
    for s in ceil_epoll ceil_tpc perfbot probot; do
        case $s in
            ceil_epoll) label="ceiling epoll" ;;
            ceil_tpc) label="ceiling tpc" ;;
            *) label=$s ;;
        esac
        if have "$s"; then
            printf '%-14s %13.0f %9s %9s %10s %10s %8d %9d %10s %10s\n' "$label" "${R[$s.rps]}" \
                "$(ms "${R[$s.p50_us]}")" "$(ms "${R[$s.p99_us]}")" "$(mb "${R[$s.idle_kb]}")" \
                "$(mb "${R[$s.hwm_kb]}")" "${R[$s.non2xx]}" "${R[$s.sockerr]}" "${R[$s.server_cpu]}" \
                "${R[$s.cpu_us_per_delivery]}"
        else
            printf '%-14s %13s\n' "$label" "not measured"
        fi
    done
    [ ! -s "$PG_REPORT" ] || cat "$PG_REPORT"
    echo "ceiling = libmicrohttpd reading the body and answering 202 (no signature, no parsing, no disk);"
    echo "epoll = $(nproc) event threads, tpc = one thread per connection. RSS load = peak RSS under load."
    echo "CPU cores = server CPU time / wall time of the measured run; CPU us/dl = server CPU per delivery."
    echo "wrk used ${R[perfbot.wrk_cpu]:-?} cores against perfbot, of the $(nproc) cores both share."
    if [ -n "${R[perfbot.stored]:-}" ]; then
        echo "perfbot durability: ${R[perfbot.total2xx]} deliveries answered 2xx, ${R[perfbot.stored]} stored after SIGKILL."
    fi

    local line="run $n: load $load_before/$load_after, fsync ${fsync:-?} ms"
    local json_targets='"targets": null'
    if have perfbot && have probot && have "$ceil"; then
        local c_ratio tput_ratio rss_ratio v1 v2 v3
        c_ratio=$(awk -v a="${R[perfbot.rps]}" -v b="${R[$ceil.rps]}" 'BEGIN { printf "%.3f", a / b }')
        tput_ratio=$(awk -v a="${R[perfbot.rps]}" -v b="${R[probot.rps]}" 'BEGIN { printf "%.2f", a / b }')
        rss_ratio=$(awk -v a="${R[perfbot.hwm_kb]}" -v b="${R[probot.hwm_kb]}" 'BEGIN { printf "%.3f", a / b }')
        v1=$(verdict "$c_ratio >= 0.5")
        v2=$(verdict "${R[perfbot.p99_us]} <= 5000")
        v3=$(verdict "$rss_ratio <= 0.2")
        JUDGED=$((JUDGED + 1))
        [ "$v1$v2$v3" != PASSPASSPASS ] || HELD=$((HELD + 1))
        echo
        printf 'ceiling %.0f/s (%s), perfbot %.0f/s, Probot %.0f/s\n' "${R[$ceil.rps]}" "${ceil#ceil_}" \
            "${R[perfbot.rps]}" "${R[probot.rps]}"
        echo "perfbot / ceiling: ${c_ratio}x; perfbot / Probot: throughput ${tput_ratio}x, RSS under load ${rss_ratio}x"
        printf '  %-4s durable verified deliveries/s >= 50%% of the ceiling  (%.0f of %.0f: %s)\n' "$v1" \
            "${R[perfbot.rps]}" "${R[$ceil.rps]}" "$(awk -v r="$c_ratio" 'BEGIN { printf "%.1f%%", r * 100 }')"
        printf '  %-4s p99 <= 5 ms at %s connections                     (%s; p50 %s)\n' "$v2" "$CONNECTIONS" \
            "$(ms "${R[perfbot.p99_us]}")" "$(ms "${R[perfbot.p50_us]}")"
        printf '  %-4s RSS under load <= 1/5 of Probot'"'"'s                  (%s vs %s)\n' "$v3" \
            "$(mb "${R[perfbot.hwm_kb]}")" "$(mb "${R[probot.hwm_kb]}")"
        line=$(printf 'run %d: ceiling %6.0f/s (%-5s) perfbot %6.0f/s (%5.1f%% %s) Probot %5.0f/s (x%s) p50 %s p99 %s (%s) RSS %s vs %s (%s) load %s/%s fsync %s ms' \
            "$n" "${R[$ceil.rps]}" "${ceil#ceil_}" "${R[perfbot.rps]}" "$(awk -v r="$c_ratio" 'BEGIN { print r * 100 }')" "$v1" \
            "${R[probot.rps]}" "$tput_ratio" "$(ms "${R[perfbot.p50_us]}")" "$(ms "${R[perfbot.p99_us]}")" "$v2" \
            "$(mb "${R[perfbot.hwm_kb]}")" "$(mb "${R[probot.hwm_kb]}")" "$v3" "$load_before" "$load_after" "${fsync:-?}")
        json_targets=$(printf '"ceiling": "%s", "ratios": {"perfbot_ceiling": %s, "perfbot_probot": %s, "rss_under_load": %s},\n    "targets": {"half_ceiling": "%s", "p99_5ms": "%s", "rss_fifth": "%s"}' \
            "${ceil#ceil_}" "$c_ratio" "$tput_ratio" "$rss_ratio" "$v1" "$v2" "$v3")
    fi
    echo "load average before / after: $load_before / $load_after (other processes share these cores)"
    if [ "$invalid" = "$invalid_before" ]; then echo "figures: valid"; else echo "figures: INVALID (see the messages above)"; fi
    SUMMARY+=("$line")
    RUN_JSON+=("$(printf '{"run": %d, "load_before": %s, "load_after": %s, "fsync_8k_ms": %s, "valid": %s,\n    "ceiling_epoll": %s,\n    "ceiling_tpc": %s,\n    "perfbot": %s,\n    "probot": %s,\n    %s}' \
        "$n" "$load_before" "$load_after" "${fsync:-null}" "$([ "$invalid" = "$invalid_before" ] && echo true || echo false)" \
        "$(server_json ceil_epoll)" "$(server_json ceil_tpc)" "$(server_json perfbot)" "$(server_json probot)" "$json_targets")")
}

for RUN_NO in $(seq 1 "$RUNS"); do
    one_run "$RUN_NO"
done

echo
echo "== bench/intake: $RUNS runs (targets: perfbot >= 50% of the ceiling, p99 <= 5 ms, RSS <= 1/5 of Probot's)"
for line in "${SUMMARY[@]}"; do echo "$line"; done
echo "every target held in $HELD of $JUDGED judged runs"

{
    printf '{\n  "benchmark": "intake",\n  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf '  "setup": {"threads": %s, "connections": %s, "duration_s": %s, "warmup_s": %s, "payload_bytes": %s, "cores": %s, "probot": "%s", "node": "%s", "libmicrohttpd": "%s"},\n' \
        "$THREADS" "$CONNECTIONS" "$DURATION" "$WARMUP" "$(wc -c < "$PAYLOAD")" "$(nproc)" "$PROBOT_VERSION" \
        "$(node --version)" "$(pkg-config --modversion libmicrohttpd)"
    printf '  "runs": [\n'
    for i in "${!RUN_JSON[@]}"; do
        [ "$i" = 0 ] || printf ',\n'
        printf '    %s' "${RUN_JSON[$i]}"
    done
    printf '\n  ],\n  "targets_held_runs": %s,\n  "judged_runs": %s,\n' "$HELD" "$JUDGED"
    printf '  "valid": %s\n}\n' "$([ "$invalid" = 0 ] && echo true || echo false)"
} > "$OUT_DIR/intake.json"
node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$OUT_DIR/intake.json" ||
    fail "bench/out/intake.json is not valid JSON"
echo "figures written to bench/out/intake.json"

[ "$invalid" = 0 ] || exit 1
if [ "${BENCH_STRICT:-0}" = 1 ]; then
    need=$(( RUNS >= 5 ? RUNS - 1 : RUNS ))
    [ "$JUDGED" -eq "$RUNS" ] && [ "$HELD" -ge "$need" ] || exit 1
fi
exit 0
