#!/bin/bash
# needles.sh DB NAMECHECK(like|case) TOKENS(0|1) needles...
db=$1; mode=$2; tok=$3; shift 3
org=795baa48-70c8-4c30-8220-f090108d1f88
for needle in "$@"; do
  tri=$(python3 -c "n='$needle'.lower();print(','.join(n[i:i+3] for i in range(len(n)-2)))")
  extra=""
  if [ $tok = 1 ]; then
    arms=""
    for y in 2025 2026 '*'; do
      arr=$(python3 -c "print(','.join(\"'$y\"+t+\"'\" for t in '$tri'.split(',')))")
      [ -n "$arms" ] && arms="$arms OR "
      arms="$arms dicom_name_year_trigrams(st.patient_name_search, st.study_date) @> ARRAY[$arr]"
    done
    extra="AND ($arms)"
  fi
  if [ $mode = like ]; then namec="(st.patient_name_search LIKE '%$needle%' ESCAPE '\\')"; else namec="(CASE WHEN st.patient_name_search LIKE '%$needle%' ESCAPE '\\' THEN true ELSE false END)"; fi
  echo "== $needle $db $mode $tok"
  psql -h 127.0.0.1 -U postgres $db -c "EXPLAIN (ANALYZE) SELECT st.study_instance_uid, st.attributes FROM dicom_studies st WHERE st.org_id = '$org' AND $namec AND st.study_date IS NOT NULL AND st.study_date >= '20251203' AND st.study_date <= '20261203' AND ((('\\' || st.modalities || '\\') LIKE '%\\\\CT\\\\%' ESCAPE '\\') OR (('\\' || st.modalities || '\\') LIKE '%\\\\MR\\\\%' ESCAPE '\\')) $extra ORDER BY st.created_at DESC, st.study_instance_uid DESC LIMIT 102" | grep -E "Execution|Planning|Scan|rows=" | head -4 | cut -c1-150
done
