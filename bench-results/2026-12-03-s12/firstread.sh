#!/bin/bash
# usage: firstread.sh BIN DATA_DIR GAP N
bin=$1; dir=$2; gap=$3; n=$4; shift 4
key=$(python3 -c "import json;print(json.load(open('$dir/bench-seed.json'))['api_key'])")
org=$(python3 -c "import json;print(json.load(open('$dir/bench-seed.json'))['org_id'])")
read st se < <(python3 -c "import json;b=json.load(open('$dir/bench-dicom-seed.json'))['big_series'][0];print(b[0],b[1])")
$bin serve --listen 127.0.0.1:18999 --rate-limit-per-second 0 --data-dir $dir "$@" > /tmp/fr.log 2>&1 &
pid=$!; sleep 2
for i in $(seq $n); do
  rm -f $dir/blobs/cache/series-metadata/$org/$se.json
  curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer $key" -H "Accept: application/dicom+json" http://127.0.0.1:18999/dicomweb/studies/$st/series/$se/metadata
  sleep $gap
done | sort -n | awk '{a[NR]=$1} END {print "n",NR,"p50",a[int(NR/2)+1]*1000,"max",a[NR]*1000}'
kill $pid; wait $pid 2>/dev/null
