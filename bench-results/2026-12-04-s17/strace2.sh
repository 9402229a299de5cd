#!/bin/bash
# strace2.sh BIN N: per-thread syscall counts (strace -f) over N instances, one association
BIN=$1; N=${2:-200}
D=/work/bd/keep/r-st-$(date +%s%N); mkdir -p $D
$BIN serve --data-dir $D --listen 127.0.0.1:18080 --dicom-listen 127.0.0.1:11199 > $D/out.log 2>$D/err.log &
PID=$!
for i in $(seq 50); do grep -q "dicom listening" $D/err.log && break; sleep 0.2; done
AE=$($BIN admin create-org --data-dir $D --name "BST$RANDOM" --owner-email o@x.org --json 2>/dev/null | python3 -c 'import sys,json; print(json.load(sys.stdin)["dicom_ae_title"])')
strace -f -c -p $PID -o /work/bd/strace.txt &
TP=$!; sleep 1
TCP_NODELAY=1 storescu -aec $AE 127.0.0.1 11199 $(ls /work/bd/dicom-files/ct-512x512-1000/q0/*.dcm | head -$N) >/dev/null 2>&1
sleep 1.5
kill -INT $TP; wait $TP
kill $PID; wait $PID 2>/dev/null
