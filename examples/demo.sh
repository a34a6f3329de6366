#!/bin/sh
# make demo: start dc_server on a private UNIX socket, run the C example
# client and a short load against it, print what happened, stop the server.
set -eu
stage=$1
work=$(mktemp -d)
sock=$work/dc_server.sock
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

cc=${CC:-cc}
for prog in client load; do
    "$cc" -Wall -Wextra -Werror -I"$stage/include" "examples/c/$prog.c" -o "$work/$prog" \
        -L"$stage/lib" -ldistcache -lpthread -Wl,-rpath,"$stage/lib"
done

echo "== starting: dc_server -listen UNIX:$sock -sessions 10000"
"$stage/bin/dc_server" -listen "UNIX:$sock" -sessions 10000 &
server_pid=$!
tries=0
until [ -S "$sock" ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ]; then echo "dc_server did not start" >&2; exit 1; fi
    sleep 0.05
done

echo "== examples/c/client.c"
"$work/client" "UNIX:$sock"
echo "== examples/c/load.c (20000 operations)"
"$work/load" "UNIX:$sock" 20000
echo "== stopping dc_server (pid $server_pid)"
