#!/bin/sh
# Runs every test suite of each build directory given (unit tests, fuzz
# corpus replays, integration tests: the C ones that start servers and the
# node files against that build's binary) and ends
# with one line: "N passed, N failed, N skipped" (CI reads it: keep its
# shape, and keep it last).  A test that skipped did not run: it is counted
# apart, and where it came from is listed above that line.
#   tests/run.sh build build-san        everything, for both builds
#   tests/run.sh --unit-only build      unit tests and corpus replays only
#   TESTS=pattern tests/run.sh build    integration tests matching pattern
unit_only=0
if [ "$1" = "--unit-only" ]; then unit_only=1; shift; fi
[ $# -gt 0 ] || set -- build
root=$(cd "$(dirname "$0")/.." && pwd)
passed=0
failed=0
skipped=0
failures=""
skips=""
log=$(mktemp)
details=$(mktemp) # why each failure failed, repeated at the end (a CI log's tail)
# One PostgreSQL cluster for the store's tests against that backend
# (tests/lib/pg.sh); the integration tests that restart PostgreSQL start
# their own.  A cluster that cannot start fails the run below, never skips.
pgdir=""
if [ -z "$PERFBOT_TEST_DATABASE_URL" ]; then
	pgdir=$(mktemp -d /tmp/perfbot-pg-XXXXXX)
	PERFBOT_TEST_DATABASE_URL=$(sh "$root/tests/lib/pg.sh" start "$pgdir" 2>"$log") || {
		echo "PostgreSQL did not start (tests/lib/pg.sh):"; cat "$log"; PERFBOT_TEST_DATABASE_URL=""; }
	export PERFBOT_TEST_DATABASE_URL
fi
trap 'rm -f "$log" "$details"; [ -n "$pgdir" ] && { sh "$root/tests/lib/pg.sh" stop "$pgdir"; rm -rf "$pgdir"; }' EXIT

count() { # $1 = label, $2 = passed, $3 = failed, $4 = skipped
	passed=$((passed + $2))
	failed=$((failed + $3))
	skipped=$((skipped + $4))
	if [ "$3" -gt 0 ]; then failures="$failures $1"; fi
	if [ "$4" -gt 0 ]; then skips="$skips $1($4)"; fi
}

cmocka() { # $1 = a cmocka test binary of build $dir, run from the root
	t=$1
	name=$(basename "$t")
	(cd "$root" && CMOCKA_MESSAGE_OUTPUT=stdout "$t") >"$log" 2>&1
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	# cmocka names each skipped test on a "[  SKIPPED ] name" line, twice
	# (as it happens and under the summary); the summary line has the count
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	p=${p:-0}; f=${f:-0}; s=${s:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	if [ "$f" -gt 0 ]; then
		cat "$log"
		{ echo "== why $dir/$name failed"; grep -E 'FAIL|ERROR|error|Assert' "$log" | head -40; } >>"$details"
	fi
	if [ "$s" -gt 0 ]; then
		echo "  $name: $p passed, $f failed, $s skipped:" \
			"$(sed -n 's/^\[  SKIPPED \] \([^ ]*\)$/\1/p' "$log" | sort -u | tr '\n' ' ')"
	else
		echo "  $name: $p passed, $f failed"
	fi
	count "$dir/$name" "$p" "$f" "$s"
}

for dir in "$@"; do
	echo "== unit tests ($dir)"
	for t in "$root/$dir"/tests/test_*; do
		[ -x "$t" ] || continue
		[ -f "$root/tests/unit/$(basename "$t").c" ] || continue # a test since moved
		cmocka "$t"
	done
	echo "== fuzz corpus replay ($dir)"
	for t in "$root/$dir"/fuzz/*_replay; do
		[ -x "$t" ] || continue
		name=$(basename "$t" _replay)
		corpus="$root/fuzz/corpus/$name"
		if "$t" "$corpus" >"$log" 2>&1; then
			n=$(ls "$corpus" 2>/dev/null | wc -l)
			echo "  $name: $n inputs replayed"
			count "$dir/$name" 1 0 0
		else
			cat "$log"
			echo "  $name: FAILED"
			count "$dir/$name" 0 1 0
		fi
	done
	[ "$unit_only" = 1 ] && continue
	echo "== integration tests ($dir)"
	# C tests that start servers (tests/integration/c/), then the node files.
	for t in "$root/$dir"/tests/integration/test_*; do
		[ -x "$t" ] || continue
		basename "$t" | grep -qE "${TESTS:-.}" || continue
		cmocka "$t"
	done
	files=$(ls "$root"/tests/integration/*.test.js 2>/dev/null | grep -E "${TESTS:-.}")
	[ -n "$files" ] || continue
	if [ ! -d "$root/tests/node_modules" ] && [ -f "$root/tests/package.json" ]; then
		(cd "$root/tests" && npm install --no-audit --no-fund --silent >/dev/null 2>&1) ||
			echo "  npm install in tests/ failed"
	fi
	PERFBOT_BIN="$root/$dir/perfbot" PERFBOT_BUILD="$root/$dir" \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		node --test --test-reporter=tap --test-concurrency=2 $files >"$log" 2>&1
	rc=$?
	p=$(sed -n 's/^# pass \([0-9]*\)/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^# fail \([0-9]*\)/\1/p' "$log" | tail -1)
	# a test that timed out, or whose parent ended first, is "cancelled", not
	# "fail": it did not pass, so it counts as failed
	c=$(sed -n 's/^# cancelled \([0-9]*\)/\1/p' "$log" | tail -1)
	s=$(sed -n 's/^# skipped \([0-9]*\)/\1/p' "$log" | tail -1)
	p=${p:-0}; f=$((${f:-0} + ${c:-0})); s=${s:-0}
	# node says the run failed but no count does (a crash, a reporter error)
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	grep -E '^(not )?ok |^# Subtest' "$log" | grep -v '^# Subtest' | sed 's/^/  /'
	# a skipped test inside a describe() is not on a top-level line: name it
	grep -E '^ +ok [0-9]+ - .* # SKIP' "$log" | sed 's/^ *ok [0-9]* - /  skipped: /'
	if [ "$f" -gt 0 ] || [ "$p" -eq 0 ]; then
		{
			echo "== why $dir/integration failed"
			sed -n '/^not ok/,/^ok/p' "$log" | head -200
			grep -q '^not ok' "$log" || tail -50 "$log"
		} >>"$details"
		[ "$p" -eq 0 ] && [ "$f" -eq 0 ] && f=1
	fi
	count "$dir/integration" "$p" "$f" "$s"
done
[ -s "$details" ] && cat "$details"
[ -n "$failures" ] && echo "failing:$failures"
[ -n "$skips" ] && echo "skipped:$skips"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
