#!/usr/bin/env bash
# Mutation testing with mutmut of the numeric core (src/scratchnet/nn/), the attacks, and the
# study code that decides what the report claims (study/analysis.py, reproduction.py, cache.py);
# the scope and the test files are [tool.mutmut] in pyproject.toml, the results bench/MUTATION.md.
# Not part of `make test` or CI: a full run takes tens of minutes.
#
#   bash bench/mutation.sh                 # every mutant (resumes where a stopped run left off)
#   bash bench/mutation.sh 'scratchnet.nn.losses.*'   # only these mutants (mutmut's names/globs)
#   bash bench/mutation.sh 'scratchnet.study.*'       # the study code alone (a few minutes)
#
# It runs at the lowest CPU priority with ONE mutant at a time and single-threaded BLAS, so on a
# shared machine it only takes idle CPU. mutmut keeps its state in mutants/ (git-ignored);
# delete that folder to start from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
make --quiet venv
# The `mutation` extra pins mutmut (the mutant names and counts depend on its version).
"$BIN/python" -c "import mutmut" 2>/dev/null ||
    "$BIN/uv" pip install --python "$BIN/python" --quiet -e '.[mutation]'
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
nice -n 19 "$BIN/mutmut" run --max-children 1 "$@"
# The summary counts (killed, survived, timeouts, ...) and every survivor's name;
# `mutmut show NAME` prints one survivor's diff.
"$BIN/mutmut" results --all true > mutants/results.txt || true
"$BIN/mutmut" results
