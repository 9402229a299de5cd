#!/bin/bash
# usage: ab2.sh NAME DB_A DB_B [extra bench args...]; A on its own database and data dir,
# B on a copy (upgraded by B's migrations); runs A B A B
name=$1; dba=$2; dbb=$3; shift 3
for round in 1 2; do
  for side in a b; do
    if [ $side = a ]; then db=$dba; dir=/work/bench-data/pg-1m; else db=$dbb; dir=/work/bench-data/pg-1m-b; fi
    echo "== $side round $round $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    /work/bin-$side/lightbox-bench dicomweb --studies ${STUDIES:-1000000} --data-dir $dir \
      --database-url postgres://postgres@127.0.0.1:5432/$db \
      --lightbox /work/bin-$side/lightbox --seconds 5 "$@" \
      > /work/results/$name-$side-$round.md 2> /work/results/$name-$side-$round.err
  done
done
