#!/usr/bin/env bash
# sqlite3 workload: tables of ~100k rows, index, join, group by, order by.
set -eu
sqlite3 -bail db.sqlite <"$(dirname "$0")/workload.sql"
