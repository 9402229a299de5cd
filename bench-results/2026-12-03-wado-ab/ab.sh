#!/bin/bash
# A/B of WADO metadata and frames: A = main (94e8e1c) in /work/bin-main, B = wado-perf in
# /work/bin-b; alternated A B A B on copies of the same seeded data (A's at 0015, B's
# upgraded to 0016 by B on its first run). Usage: ab.sh sqlite|pg OUTDIR
set -u
backend=$1; out=$2; mkdir -p $out
for round in 1 2; do
  for side in A B; do
    if [ $side = A ]; then bin=/work/bin-main; sfx=""; else bin=/work/bin-b; sfx="-b"; fi
    if [ $backend = sqlite ]; then
      db=(); dir=/work/bench-data/wado-sqlite$sfx
    else
      db=(--database-url postgres://postgres@127.0.0.1:5432/lightbox_bench_wado_20k${sfx/-/_}); dir=/work/bench-data/wado-pg$sfx
    fi
    f=$out/$backend-$round-$side
    { date -u; uptime; } > $f.txt
    $bin/lightbox-bench dicomweb --studies 20000 --data-dir $dir "${db[@]}" \
      --lightbox $bin/lightbox --seconds 5 --only metadata --only frame --json $f.json >> $f.txt 2>&1
    uptime >> $f.txt
  done
done
