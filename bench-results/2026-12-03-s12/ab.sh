#!/bin/bash
# usage: ab.sh NAME DATA_DIR [extra bench args...]; runs A B A B
name=$1; dir=$2; shift 2
for round in 1 2; do
  for side in a b; do
    echo "== $side round $round $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    ${BENCH:-/work/bin-a/lightbox-bench} dicomweb --studies ${STUDIES:-1000000} --data-dir $dir \
      --lightbox /work/bin-$side/lightbox --seconds 5 "$@" \
      > /work/results/$name-$side-$round.md 2> /work/results/$name-$side-$round.err
  done
done
