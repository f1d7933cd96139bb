#!/bin/sh
# `make bench`: runs every benchmark of perfbot that exists under bench/, in a
# fixed order, and exits non-zero if any of them reports invalid figures.
# Each benchmark prints its own table and writes bench/out/<name>.json.
set -u
here=$(cd "$(dirname "$0")" && pwd)
status=0
ran=0
for script in intake/run.sh push/run.mjs determinism.sh pr/run.sh ui/run.sh; do
    [ -f "$here/$script" ] || continue
    ran=$((ran + 1))
    echo "==== bench/$script"
    case $script in
        *.mjs) runner=node ;;
        *) runner=bash ;;
    esac
    if ! "$runner" "$here/$script"; then
        echo "==== bench/$script: FAILED"
        status=1
    fi
    echo
done
if [ "$ran" -eq 0 ]; then
    echo "bench: no benchmark scripts found under bench/"
    exit 1
fi
exit "$status"
