#!/bin/sh
# bench/pr: "approval → branch pushed and pull request opened" for perfbot's
# pr/ module against the git command line doing the same work, on a
# generated repository of 20,000 files and 5,000 commits served over local
# smart HTTP (git http-backend behind tests/integration/pr-git-server.mjs).
#   sh bench/pr/run.sh            (after `make`)
# Cold = first PR (empty cache / fresh bare clone); warm = second PR (cache
# present; median of three).  Targets: cold <= git CLI; warm <= 1 s and <= 0.5 x git CLI.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
FILES=${FILES:-20000}
COMMITS=${COMMITS:-5000}
TOKEN=bench-token
work=$(mktemp -d /tmp/perfbot-bench-pr-XXXXXX)
server=""
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null || true
	[ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT INT TERM
export HOME="$work" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com \
	GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com

now() { date +%s.%N; }
since() { echo "$(now) $1" | awk '{printf "%.3f", $1 - $2}'; }

# ---- the driver, against the module libraries ------------------------------
make -s -j2 build/libpr.a build/libgithub.a build/libstore.a build/libbase.a >/dev/null 2>&1 || echo "(make failed; using the libraries already in build/)"
PKGS="libgit2 jansson libcurl openssl sqlite3"
cc -std=c11 -D_GNU_SOURCE -I. -O2 -o "$work/driver" bench/pr/driver.c build/libpr.a build/libgithub.a build/libstore.a build/libbase.a \
	$(pkg-config --cflags --libs $PKGS) -lpthread -lm

# ---- the repository: FILES files, COMMITS commits, via git fast-import ------
t=$(now)
mkdir -p "$work/srv/bench"
git init -q --bare -b main "$work/srv/bench/big.git"
awk -v files="$FILES" -v commits="$COMMITS" 'BEGIN {
	print "commit refs/heads/main"
	print "committer Bench <bench@example.com> 1700000000 +0000"
	print "data 5"; print "init"
	for (i = 0; i < files; i++) {
		c = sprintf("int f%d(int x)\n{\n\treturn x + %d;\n}\n", i, i)
		printf "M 100644 inline d%03d/f%03d.c\ndata %d\n%s\n", int(i / 100), i % 100, length(c), c
	}
	# later commits touch only the first quarter of the tree
	for (k = 1; k < commits; k++) {
		i = (k * 7919) % int(files / 4)
		c = sprintf("int f%d(int x)\n{\n\treturn x + %d; /* v%d */\n}\n", i, i, k)
		print "commit refs/heads/main"
		printf "committer Bench <bench@example.com> %d +0000\n", 1700000000 + k
		printf "data %d\nchange %d\n", length("change " k) + 1, k
		printf "M 100644 inline d%03d/f%03d.c\ndata %d\n%s\n", int(i / 100), i % 100, length(c), c
	}
}' | git --git-dir="$work/srv/bench/big.git" fast-import --quiet
git --git-dir="$work/srv/bench/big.git" repack -adq
base=$(git --git-dir="$work/srv/bench/big.git" rev-parse main)
echo "repository: $FILES files, $COMMITS commits, pack $(du -sh "$work/srv/bench/big.git" | cut -f1) (generated in $(since "$t") s)"

# Two proposals on files the history never touched after the first commit.
mkdiff() { # $1 = file index, $2 = out
	d=$(printf 'd%03d/f%03d.c' $(($1 / 100)) $(($1 % 100)))
	printf 'diff --git a/%s b/%s\n--- a/%s\n+++ b/%s\n@@ -1,4 +1,4 @@\n int f%d(int x)\n {\n-\treturn x + %d;\n+\treturn %d + x;\n }\n' \
		"$d" "$d" "$d" "$d" "$1" "$1" "$1" >"$2"
}
for i in 1 2 3 4; do mkdiff $((FILES - 10 * i)) "$work/$i.diff"; done
median3() { printf '%s\n%s\n%s\n' "$1" "$2" "$3" | sort -n | sed -n 2p; }

# ---- the server -------------------------------------------------------------
node tests/integration/pr-git-server.mjs --root "$work/srv" --token "$TOKEN" --detached </dev/null \
	>"$work/port" 2>"$work/server.log" &
server=$!
port=""
for _ in $(seq 100); do
	port=$(sed -n 's/^listening //p' "$work/port")
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { cat "$work/server.log"; echo "git server did not start"; exit 1; }
url="http://127.0.0.1:$port/git/bench/big.git"
curl_url="http://x-access-token:$TOKEN@127.0.0.1:$port/git/bench/big.git"

# ---- perfbot ------------------------------------------------------------------
pb() { "$work/driver" "$work/data" "$url" "$TOKEN" "$1" "$base" "$work/$1.diff" | cut -d' ' -f1; }
p_cold=$(pb 1)
p_warm=$(median3 "$(pb 2)" "$(pb 3)" "$(pb 4)")

# ---- the git command line doing the same work ---------------------------------
cli() { # $1 = run, $2 = diff, $3 = cold|warm
	cd "$work"
	if [ "$3" = cold ]; then
		git clone -q --bare "$curl_url" cli.git
	else
		git --git-dir=cli.git fetch -q "$curl_url" +refs/heads/main:refs/heads/main
	fi
	export GIT_DIR="$work/cli.git" GIT_INDEX_FILE="$work/cli.index"
	git read-tree "$base"
	git apply --cached "$2"
	tree=$(git write-tree)
	commit=$(git commit-tree "$tree" -p "$base" -m "perf: bench run $1")
	git push -q "$curl_url" "$commit:refs/heads/cli/opt-$1"
	rm -f "$GIT_INDEX_FILE"
	unset GIT_DIR GIT_INDEX_FILE
	cd "$root"
}
t=$(now); cli 1 "$work/1.diff" cold; c_cold=$(since "$t")
cw() { t=$(now); cli "$1" "$work/$1.diff" warm; since "$t"; }
c_warm=$(median3 "$(cw 2)" "$(cw 3)" "$(cw 4)")

# Same work, same result: perfbot's tree equals the CLI's for the same diff.
pt=$(git --git-dir="$work/srv/bench/big.git" rev-parse perfbot/opt-1^{tree})
ct=$(git --git-dir="$work/srv/bench/big.git" rev-parse cli/opt-1^{tree})
[ "$pt" = "$ct" ] || { echo "tree mismatch: perfbot $pt, git CLI $ct"; exit 1; }

echo "approval -> branch pushed + PR opened (seconds; warm = median of 3)"
printf '  %-6s perfbot %6s   git CLI %6s\n' cold "$p_cold" "$c_cold" warm "$p_warm" "$c_warm"
awk -v pc="$p_cold" -v cc="$c_cold" -v pw="$p_warm" -v cw="$c_warm" 'BEGIN {
	ok = 1
	printf "  cold: perfbot/CLI = %.2f (target <= 1.00) %s\n", pc / cc, (pc <= cc ? "ok" : "MISSED"); if (pc > cc) ok = 0
	printf "  warm: perfbot/CLI = %.2f (target <= 0.50) %s; %.3f s (target <= 1 s) %s\n", pw / cw, \
		(pw <= 0.5 * cw ? "ok" : "MISSED"), pw, (pw <= 1 ? "ok" : "MISSED")
	if (pw > 0.5 * cw || pw > 1) ok = 0
	exit ok ? 0 : 1
}'
