#!/bin/sh
# Builds the libFuzzer targets with clang: fuzz/build.sh, then e.g.
#   build-fuzz/fuzz_signature fuzz/corpus/fuzz_signature -max_total_time=60
set -e
cd "$(dirname "$0")/.."
make -s BUILD=build-fuzz CC=clang CFLAGS='-O1 -g -fsanitize=fuzzer-no-link,address,undefined' \
	LDFLAGS='-fsanitize=address,undefined' build-fuzz/libui.a build-fuzz/libwebhooks.a build-fuzz/libagent.a \
	build-fuzz/libmeasure.a build-fuzz/libpr.a build-fuzz/libgithub.a build-fuzz/libstore.a build-fuzz/libbase.a
for src in fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	clang -std=c11 -D_GNU_SOURCE -I. -O1 -g -fsanitize=fuzzer,address,undefined -o "build-fuzz/$name" "$src" \
		build-fuzz/libui.a build-fuzz/libwebhooks.a build-fuzz/libagent.a build-fuzz/libmeasure.a build-fuzz/libpr.a build-fuzz/libgithub.a \
		build-fuzz/libstore.a build-fuzz/libbase.a \
		$(pkg-config --libs libmicrohttpd openssl libjwt jansson libcurl libgit2 sqlite3 yaml-0.1) -lpthread -lm
	echo "built build-fuzz/$name"
done
