#!/bin/bash
# A (f5ac2fc) on wl_1m vs C (main) on a fresh TEMPLATE copy, create study only, alternating
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS wl_1m_c" -c "CREATE DATABASE wl_1m_c TEMPLATE wl_1m"
rm -rf /work/bench-data/wl-pg-1m-c; cp -a /work/bench-data/wl-pg-1m /work/bench-data/wl-pg-1m-c
out=/work/s15/res/ac; mkdir -p $out
run() { # name bin db dir
  psql -q -h 127.0.0.1 -U postgres -d $3 -c VACUUM
  $2/lightbox-bench run --studies 1000000 --data-dir $4 --database-url postgres://postgres@127.0.0.1:5432/$3 \
    --lightbox $2/lightbox --seconds 5 --only "create study" --json $out/$1.json > $out/$1.md 2> $out/$1.err
  python3 -c "
import json
for s in json.load(open('$out/$1.json'))['results']:
    if s['name']=='create study': c=s['cpu']; print('$1', s['server']['p50_ms'], s['server']['p99_ms'], round(c['server_cpu_ms_per_request'],3), round(c['postgres_cpu_ms_per_request'],3))
"
}
for r in 1 2 3 4 5; do
  run a$r /work/bin-a wl_1m /work/bench-data/wl-pg-1m
  run c$r /work/bin-c wl_1m_c /work/bench-data/wl-pg-1m-c
done
