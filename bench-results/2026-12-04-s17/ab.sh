#!/bin/bash
# ab.sh OUT ROUNDS BIN_A BIN_B : alternates A and B, SQLite and PostgreSQL, 1 and 4 associations
OUT=$1; R=$2; A=$3; B=$4; PG=postgres://postgres@127.0.0.1:5432/lb_ingest_ab
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS lb_ingest_ab" -c "CREATE DATABASE lb_ingest_ab" postgres
: > $OUT
for r in $(seq $R); do
  for cfg in "1" "4" "1 $PG" "4 $PG"; do
    set -- $cfg
    /work/bd/run.sh $A A $1 $2 | sed "s/^/$( [ -n "$2" ] && echo pg || echo sqlite) /" >> $OUT
    /work/bd/run.sh $B B $1 $2 | sed "s/^/$( [ -n "$2" ] && echo pg || echo sqlite) /" >> $OUT
  done
done
python3 /work/bd/summ.py $OUT
