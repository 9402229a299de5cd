#!/bin/bash
# cs.sh NAME [perf] -- one create-study-only bench run on wl_1m, PG CPU split by role
name=$1; out=/work/s15/res; mkdir -p $out
psql -q -h 127.0.0.1 -U postgres -d wl_1m -c VACUUM
python3 /work/s15/pgsplit.py snapshot /tmp/pg-$name.json
if [ "$2" = perf ]; then (sleep 12; perf record -a -g -F 499 -o $out/$name.perf -- sleep 4 >/dev/null 2>&1) & fi
/work/bin-b/lightbox-bench run --studies 1000000 --data-dir /work/bench-data/wl-pg-1m \
  --database-url postgres://postgres@127.0.0.1:5432/wl_1m --lightbox /work/bin-b/lightbox \
  --seconds 5 --only "create study" --json $out/$name.json > $out/$name.md 2> $out/$name.err
wait
python3 /work/s15/pgsplit.py diff /tmp/pg-$name.json > $out/$name.split
python3 -c "
import json,sys
for s in json.load(open('$out/$name.json'))['results']:
    if s['name']=='create study': print('$name', s.get('requests') or s.get('count'), s['server']['p50_ms'], s['server']['p99_ms'], s['cpu'])
"
cat $out/$name.split
