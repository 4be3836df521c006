#!/usr/bin/env bash
# sort workload: a 500k-line input sorted in several ways; -S with a small
# buffer forces temporary files and merges, --parallel=2 uses threads.
# Input: $PROGIN/sort.txt (gen_inputs.py). Output: hashes and a few lines.
set -eu
export LC_ALL=C
in=$PROGIN/sort.txt
mkdir -p tmp
sort -S 2M -T tmp --parallel=2 "$in" >s1
sha256sum <s1
head -n 3 s1
tail -n 3 s1
sort -S 4M -T tmp --parallel=2 -t "$(printf '\t')" -k2,2n -k1,1 "$in" | sha256sum
sort -S 64M --parallel=2 -t "$(printf '\t')" -k3,3 -k2,2nr "$in" | sha256sum
sort -S 1M -T tmp -u -t "$(printf '\t')" -k1,1 "$in" | wc -l
sort -m s1 s1 | sha256sum
sort -c s1 && echo sorted
sort -R --random-source="$in" -S 8M "$in" | sort -S 3M -T tmp --parallel=2 | cmp - s1 && echo reshuffle ok

