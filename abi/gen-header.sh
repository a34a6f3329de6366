#!/bin/sh
# Generates one C header with cbindgen: abi/gen-header.sh CBINDGEN HEADER OUT
#   HEADER is a path under include/, e.g. distcache/dc_client.h
# The config is abi/headers/<basename>.toml, then the shared cbindgen.toml,
# then an [export] table that excludes every function exported for another
# header and every Rust type the C side knows by its own typedef.
set -eu
cbindgen=$1 header=$2 out=$3
root=$(cd "$(dirname "$0")/.." && pwd)
name=$(basename "$header" .h)
cfg=$(mktemp)
trap 'rm -f "$cfg"' EXIT
{
    cat "$root/abi/headers/$name.toml"
    echo
    cat "$root/cbindgen.toml"
    echo
    echo '[export]'
    printf 'exclude = ['
    awk -F'\t' -v h="$header" '!/^#/ && NF >= 3 && $3 != h { printf "\"%s\", ", $1 }' \
        "$root/abi/exports.tsv"
    # Opaque handles: declared by the header text as the original declares them.
    printf '"DC_CTX"]\nitem_types = ["functions"]\n'
} > "$cfg"
"$cbindgen" --quiet --config "$cfg" --crate distcache --output "$out" "$root"
