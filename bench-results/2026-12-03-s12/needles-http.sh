#!/bin/bash
# needles-http.sh BIN DB DATA_DIR N needles... : client p50/p90 of OHIF's study list per needle, one client
bin=$1; db=$2; dir=$3; n=$4; shift 4
key=$(python3 -c "import json;print(json.load(open('$dir/bench-seed.json'))['api_key'])")
$bin serve --listen 127.0.0.1:18997 --rate-limit-per-second 0 --data-dir $dir --database-url postgres://postgres@127.0.0.1:5432/$db > /tmp/nh.log 2>&1 &
pid=$!
for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18997/healthz && break; sleep 0.3; done
for needle in "$@"; do
  url="http://127.0.0.1:18997/dicomweb/studies?PatientName=*$needle*&StudyDate=20251203-20261203&ModalitiesInStudy=CT,MR&limit=101&offset=0&fuzzymatching=false&includefield=00081030,00080060,00080090,00100030"
  count=$(curl -s -H "Authorization: Bearer $key" -H "Accept: application/dicom+json" "$url" | python3 -c "import json,sys;print(len(json.load(sys.stdin)))")
  for i in $(seq $n); do curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer $key" -H "Accept: application/dicom+json" "$url"; done | sort -n | awk -v nd=$needle -v c=$count '{a[NR]=$1} END {printf "%s (%s studies): p50 %.2f ms, p90 %.2f ms\n", nd, c, a[int(NR/2)+1]*1000, a[int(NR*0.9)]*1000}'
done
kill $pid; wait $pid 2>/dev/null
