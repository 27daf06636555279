#!/bin/bash
# Times every stage command of the study except the sweep, in a fresh clone at git REF (issue 26).
#
#     bash bench/stage_times.sh REF DIR      # e.g. bash bench/stage_times.sh 996b591 /tmp/stages
#
# Clones this repository into DIR at REF, cuts `ablate` to one seed of one epoch (so evaluate and
# report have inputs; the sweep itself is measured elsewhere), and runs each stage's command as
# dvc.yaml does, under /usr/bin/time and `python -X importtime` (import times in DIR/imports_*.txt).
# Uses this worktree's .venv; PYTHONPATH points at the clone's src.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REF=$1; DIR=$2
rm -rf $DIR && git clone -q $ROOT $DIR && cd $DIR && git checkout -q $REF
export PATH=$ROOT/.venv/bin:$PATH PYTHONPATH=$DIR/src
python - <<'PY'
import re
s = open("params.yaml").read()
# seeds as a flow list ([0, 1, 2], older params.yaml) or a block list (DVC's writer form)
s = re.sub(r"(\n  seeds:[^\n]*)\n  - 0\n  - 1\n  - 2\n", r"\1\n  - 0\n", s)
s = s.replace("seeds: [0, 1, 2]", "seeds: [0]")
s = re.sub(r"(ablate:.*?epochs:\n\s+softmax: )30(\n\s+twolayer: )30", r"\g<1>1\g<2>1", s, flags=re.S)
open("params.yaml", "w").write(s)
PY
grep -A4 "^ablate:" params.yaml
for stage in source fetch preprocess fit "train softmax" "train twolayer" ablate evaluate attack report; do
  set -- $stage
  name=$(echo $stage | tr ' ' _)
  /usr/bin/time -f "TIME $name %e s wall, %U user, %S sys" python -X importtime pipeline/$1.py $2 > log_$name.txt 2> imports_$name.txt || { echo "FAILED $name"; tail -5 imports_$name.txt; }
  grep TIME imports_$name.txt
  echo "LOAD $(cut -d' ' -f1 /proc/loadavg)"
done
