#!/bin/bash
# usage: run.sh BIN NAME [assocs] [dburl] -> starts server, sends 1000 instances, prints rate and CPU per instance
BIN=$1; NAME=$2; N=${3:-4}; DB=$4
D=/work/bd/keep/r-$NAME-$(date +%s%N); mkdir -p $D
ENVDB=""; [ -n "$DB" ] && ENVDB="--database-url $DB"
$BIN serve --data-dir $D --listen 127.0.0.1:18080 --dicom-listen 127.0.0.1:11199 $ENVDB > $D/out.log 2>$D/err.log &
PID=$!
for i in $(seq 50); do grep -q "dicom listening" $D/err.log && break; sleep 0.2; done
AE=$($BIN admin create-org --data-dir $D $ENVDB --name "B$NAME$RANDOM" --owner-email o@x.org --json 2>/dev/null | python3 -c 'import sys,json; print(json.load(sys.stdin)["dicom_ae_title"])')
F=/work/bd/dicom-files/ct-512x512-1000
cat $F/q*/* > /dev/null
pgcpu() { local s=0; for p in $(pgrep -x postgres); do s=$((s + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0))); done; local pm=$(pgrep -o -x postgres); echo $((s + $(awk '{print $16+$17}' /proc/$pm/stat))); }
U0=$(awk '{print $14}' /proc/$PID/stat); S0=$(awk '{print $15}' /proc/$PID/stat); P0=$(pgcpu)
ST=$(date +%s.%N)
if [ "$N" = 1 ]; then TCP_NODELAY=1 storescu +sp "*.dcm" $SARGS -aec $AE +sd +r 127.0.0.1 11199 $F >/dev/null 2>&1
else P=""; for q in 0 1 2 3; do TCP_NODELAY=1 storescu +sp "*.dcm" $SARGS -aec $AE +sd +r 127.0.0.1 11199 $F/q$q >/dev/null 2>&1 & P="$P $!"; done; wait $P; fi
E=$(date +%s.%N)
CS=$(cat /proc/$PID/task/*/status | awk '/ctxt_switches/{s+=$2} END{print s}')
U1=$(awk '{print $14}' /proc/$PID/stat); S1=$(awk '{print $15}' /proc/$PID/stat); P1=$(pgcpu)
kill $PID; wait $PID 2>/dev/null
PGP=""; [ -n "$DB" ] && PGP=" pg $(( (P1-P0)*10 ))"
echo "$NAME n=$N rate $(python3 -c "print(round(1000/($E-$ST)))") user $(( (U1-U0)*10 )) sys $(( (S1-S0)*10 ))$PGP ctxsw $CS"
