#!/bin/bash
# usage: abrun.sh NAME ROUNDS [extra `lightbox-bench run` args...]
# A (/work/bin-a) on its own database and data dir, B (/work/bin-b) on a copy
# (CREATE DATABASE ... TEMPLATE, cp -a), upgraded by B's migrations; A B A B.
# Prints medians per scenario with scripts/bench-ab's summary.
name=$1; rounds=$2; shift 2
out=/work/results/$name; mkdir -p $out
for round in $(seq 1 $rounds); do
  for side in a b; do
    if [ $side = a ]; then db=wl_1m; dir=/work/bench-data/wl-pg-1m; else db=wl_1m_b; dir=/work/bench-data/wl-pg-1m-b; fi
    # Both sides vacuumed alike (B's bench also vacuums when it warms; A's does not).
    psql -q -h 127.0.0.1 -U postgres -d $db -c VACUUM
    echo "== $side round $round $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    /work/bin-$side/lightbox-bench run --studies 1000000 --data-dir $dir \
      --database-url postgres://postgres@127.0.0.1:5432/$db \
      --lightbox /work/bin-$side/lightbox --json $out/$side-$round.json "$@" \
      > $out/$side-$round.md 2> $out/$side-$round.err
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(side):
    table = {}
    for r in range(1, rounds + 1):
        for s in json.load(open(f"{out}/{side}-{r}.json"))["results"]:
            if s.get("server") is None or s.get("cpu") is None:
                continue
            cpu = s["cpu"]
            pg = cpu.get("postgres_cpu_ms_per_request") or 0
            table.setdefault(s["name"], []).append((s["server"]["p50_ms"], s["server"]["p99_ms"], cpu["server_cpu_ms_per_request"], pg))
    return table
a, b = load("a"), load("b")
fmt = lambda rows, i: ", ".join(f"{r[i]:.2f}" for r in rows)
print("| scenario | A p50 | B p50 | A p99 | B p99 | A CPU server + PG | B CPU server + PG |")
print("|---|---|---|---|---|---|---|")
for name in a:
    if name in b:
        cpu = lambda rows: ", ".join(f"{r[2]:.2f} + {r[3]:.2f}" for r in rows)
        print(f"| {name} | {fmt(a[name],0)} | {fmt(b[name],0)} | {fmt(a[name],1)} | {fmt(b[name],1)} | {cpu(a[name])} | {cpu(b[name])} |")
PY
