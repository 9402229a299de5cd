#!/bin/bash
# cs2.sh NAME BIN -- one create-study-only bench run of BIN on wl_1m_b
name=$1; bin=$2; out=/work/s15/res/rb; mkdir -p $out
psql -q -h 127.0.0.1 -U postgres -d wl_1m_b -c VACUUM
$bin/lightbox-bench run --studies 1000000 --data-dir /work/bench-data/wl-pg-1m-b \
  --database-url postgres://postgres@127.0.0.1:5432/wl_1m_b --lightbox $bin/lightbox \
  --seconds 5 --only "create study" --json $out/$name.json > $out/$name.md 2> $out/$name.err
python3 -c "
import json
for s in json.load(open('$out/$name.json'))['results']:
    if s['name']=='create study': c=s['cpu']; print('$name', s['server']['p50_ms'], s['server']['p99_ms'], round(c['server_cpu_ms_per_request'],3), round(c['postgres_cpu_ms_per_request'],3))
"
