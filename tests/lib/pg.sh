#!/bin/sh
# A throwaway PostgreSQL cluster for the tests and benchmarks (Debian's
# postgresql 15 or the newest installed).  PostgreSQL refuses to run as root:
# as root the cluster belongs to the `postgres` user (runuser), else to the
# caller.  Everything lives in DIR: data, log, the unix socket.
#   pg.sh start DIR      initdb + start on a free 127.0.0.1 port; prints the
#                        URL (postgres://perfbot:PASSWORD@127.0.0.1:PORT/perfbot)
#   pg.sh stop DIR       fast shutdown (the files stay until DIR is removed)
#   pg.sh restart DIR    stop then start again on the same port
#   pg.sh kill DIR       immediate shutdown (a crash: no checkpoint)
#   pg.sh url DIR        the URL again
# PG_FSYNC=on keeps fsync (benchmarks); the tests run without it.
set -e
cmd=$1
dir=$2
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pg.sh start|stop|restart|kill|url DIR" >&2; exit 2; }
bin=""
for v in 15 16 17 14 13; do
	if [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then bin=/usr/lib/postgresql/$v/bin; break; fi
done
[ -n "$bin" ] || { echo "pg.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
	if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pgctl() { # $1 = action, rest = extra arguments
	a=$1; shift
	as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 "$@" "$a" >/dev/null
}

start_server() {
	port=$(cat "$dir/port")
	fsync=${PG_FSYNC:-off}
	pgctl start -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=$fsync -c max_connections=300 \
-c shared_buffers=32MB -c log_min_messages=warning"
}

case $cmd in
start)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ "$(id -u)" = 0 ] && chown postgres "$dir"
	pw="pw$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
	printf '%s\n' "$pw" >"$dir/pwfile"
	[ "$(id -u)" = 0 ] && chown postgres "$dir/pwfile"
	as_owner "$bin/initdb" -D "$dir/data" -U perfbot --pwfile="$dir/pwfile" --auth-local=trust \
		--auth-host=scram-sha-256 --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	printf '%s\n' "$pw" >"$dir/password"
	rm -f "$dir/pwfile"
	# a free port: bind 0, read it, let go (a race with another starter
	# is retried below)
	for try in 1 2 3 4 5; do
		python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' >"$dir/port"
		if start_server 2>/dev/null; then break; fi
		[ "$try" = 5 ] && { cat "$dir/log" >&2; exit 1; }
	done
	as_owner "$bin/createdb" -h "$dir" -p "$(cat "$dir/port")" -U perfbot perfbot
	echo "postgres://perfbot:$pw@127.0.0.1:$(cat "$dir/port")/perfbot"
	;;
url)
	echo "postgres://perfbot:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/perfbot"
	;;
stop)
	[ -f "$dir/data/postmaster.pid" ] && pgctl stop -m fast
	exit 0
	;;
kill)
	[ -f "$dir/data/postmaster.pid" ] && pgctl stop -m immediate
	exit 0
	;;
restart)
	[ -f "$dir/data/postmaster.pid" ] && pgctl stop -m fast
	start_server
	;;
*)
	echo "pg.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
