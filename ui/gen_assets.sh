#!/bin/sh
# Writes the C table of the dashboard's files (ui/assets.c includes it):
#   sh ui/gen_assets.sh ui/web OUT.inc
# Every regular file under ui/web/ becomes one row served at /ui/<its path>
# (the row's path leaves out the /ui),
# with its content type (from its extension; an unknown extension fails the
# build rather than being served as something a browser might sniff), a gzip
# variant when that is smaller, and an ETag from its SHA-256.
# Every reference from one file to another (index.html's /ui/... links, the
# scripts' `from './x.js'` and `import('./x.js')`) gets `?v=` and a hash of
# all the files: a browser may keep the files for as long as the server says,
# and a new build is fetched whole at the next visit (index.html is
# revalidated every time).
set -eu
src=$1
out=$2
tmp="$out.tmp"
: >"$tmp"
version=$(cd "$src" && find . -type f ! -name '.*' | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
rows=""
n=0
bytes() { # $1 = file: its bytes as a C initializer list
	od -An -v -tx1 "$1" | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'
}
for f in $(cd "$src" && find . -type f ! -name '.*' | sed 's|^\./||' | LC_ALL=C sort); do
	case "$f" in
	*.html) type="text/html; charset=utf-8" ;;
	*.js | *.mjs) type="text/javascript; charset=utf-8" ;;
	*.css) type="text/css; charset=utf-8" ;;
	*.svg) type="image/svg+xml" ;;
	*.png) type="image/png" ;;
	*.ico) type="image/x-icon" ;;
	*.json) type="application/json" ;;
	*.txt) type="text/plain; charset=utf-8" ;;
	*) echo "gen_assets.sh: $f: no content type for this extension" >&2; exit 1 ;;
	esac
	case "$f" in
	*[!A-Za-z0-9._/-]*) echo "gen_assets.sh: $f: only [A-Za-z0-9._/-] in file names" >&2; exit 1 ;;
	esac
	case "$f" in
	*.html) sed "s#\(=\"/ui/[A-Za-z0-9._/-]*\.[a-z]*\)\"#\1?v=$version\"#g" "$src/$f" >"$tmp.file" ;;
	*.js) sed -e "s#\(from '\./[A-Za-z0-9._-]*\.js\)'#\1?v=$version'#g" \
		-e "s#\(import('\./[A-Za-z0-9._-]*\.js\)')#\1?v=$version')#g" "$src/$f" >"$tmp.file" ;;
	*) cp "$src/$f" "$tmp.file" ;;
	esac
	size=$(wc -c <"$tmp.file")
	[ "$size" -gt 0 ] || { echo "gen_assets.sh: $f is empty" >&2; exit 1; }
	etag=$(sha256sum "$tmp.file" | cut -c1-20)
	{
		echo "static const unsigned char asset_${n}[] = {"
		bytes "$tmp.file"
		echo "};"
	} >>"$tmp"
	gz="NULL, 0"
	gzip -9 -n -c "$tmp.file" >"$tmp.gz"
	gsize=$(wc -c <"$tmp.gz")
	if [ "$gsize" -lt "$size" ]; then
		{
			echo "static const unsigned char asset_${n}_gz[] = {"
			bytes "$tmp.gz"
			echo "};"
		} >>"$tmp"
		gz="asset_${n}_gz, $gsize"
	fi
	rm -f "$tmp.gz" "$tmp.file"
	rows="$rows	{\"/$f\", \"$type\", asset_${n}, $size, \"\\\"$etag\\\"\", $gz},
"
	n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "gen_assets.sh: no files under $src" >&2; exit 1; }
{
	echo "static const ui_asset assets[] = {"
	printf '%s' "$rows"
	echo "};"
} >>"$tmp"
mv "$tmp" "$out"
