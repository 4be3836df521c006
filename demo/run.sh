#!/usr/bin/env bash
# make demo: run demo/demo.c on gomalloc (LD_PRELOAD) and on glibc, show both.
set -euo pipefail
B=${1:-build}
GM=$(cd "$B" && pwd)/libgomalloc.so
echo "== glibc malloc"
glibc_out=$("$B/demo" "${SCALE:-1}")
echo "$glibc_out"
echo "== gomalloc ($GM)"
gm_out=$(LD_PRELOAD="$GM" "$B/demo" "${SCALE:-1}")
echo "$gm_out"
sum() { sed -n 's/.*checksum \([0-9a-f]*\).*/\1/p'; }
tot() { sed -n 's/^ *total *\([0-9.]*\) s.*/\1/p'; }
rss() { sed -n 's/.*peak RSS \([0-9]*\) KiB.*/\1/p'; }
if [ "$(echo "$glibc_out" | sum)" != "$(echo "$gm_out" | sum)" ]; then
    echo "demo: checksums differ between allocators" >&2
    exit 1
fi
echo "$gm_out" | grep -q "gomalloc:" || { echo "demo: gomalloc was not loaded" >&2; exit 1; }
awk -v g="$(echo "$glibc_out" | tot)" -v m="$(echo "$gm_out" | tot)" \
    -v gr="$(echo "$glibc_out" | rss)" -v mr="$(echo "$gm_out" | rss)" \
    'BEGIN { printf "== same checksum; time: gomalloc %.3f s, glibc %.3f s (glibc/gomalloc %.2fx); peak RSS: gomalloc %d KiB, glibc %d KiB (%.2fx)\n", m, g, g / m, mr, gr, gr / mr }'
