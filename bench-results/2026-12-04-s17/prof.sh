#!/bin/bash
# prof.sh BIN NAME N : like run.sh but perf-records the server during the pass
BIN=$1; NAME=$2; N=${3:-4}
D=/work/bd/keep/r-$NAME-$(date +%s%N); mkdir -p $D
$BIN serve --data-dir $D --listen 127.0.0.1:18080 --dicom-listen 127.0.0.1:11199 > $D/out.log 2>$D/err.log &
PID=$!
for i in $(seq 50); do grep -q "dicom listening" $D/err.log && break; sleep 0.2; done
AE=$($BIN admin create-org --data-dir $D --name "B$NAME$RANDOM" --owner-email o@x.org --json 2>/dev/null | python3 -c 'import sys,json; print(json.load(sys.stdin)["dicom_ae_title"])')
F=${FILES:-/work/bd/dicom-files/ct-512x512-1000}
cat $F/q*/* > /dev/null
perf record -F 1999 -g -p $PID -o /work/bd/perf-$NAME-$N.data 2>/dev/null &
PP=$!
sleep 0.5
P=""; for q in $(seq 0 $((N==1?0:3))); do TCP_NODELAY=1 storescu +sp "*.dcm" -aec $AE +sd +r 127.0.0.1 11199 $( [ $N = 1 ] && echo $F || echo $F/q$q) >/dev/null 2>&1 & P="$P $!"; done; wait $P
kill -INT $PP; wait $PP
kill $PID; wait $PID 2>/dev/null
