#!/usr/bin/env bash
# Wall time of `make run` as a new user meets it: a fresh clone, no .venv, nothing cached in
# results/. Prints the total, the venv part, and the per-rule and RMSE tables.
# Usage: benchmarks/time_make_run.sh [CLONE_DIR]   (run it on an otherwise idle machine)
set -euo pipefail
repo=$(git rev-parse --show-toplevel)
clone=${1:-$(mktemp -d)/squall}
rm -rf "$clone"
git clone -q "$repo" "$clone"
cd "$clone"
start=$(date +%s.%N)
make venv > venv.log 2>&1
venv_done=$(date +%s.%N)
make run > run.log 2>&1
end=$(date +%s.%N)
python3 - "$start" "$venv_done" "$end" <<'PY'
import sys
start, venv, end = map(float, sys.argv[1:])
print(f"make run total: {end - start:.0f} s (venv {venv - start:.0f} s, pipeline + report "
      f"{end - venv:.0f} s)")
PY
.venv/bin/python benchmarks/scores_table.py results/storm
echo "machine: $(nproc) cores, $(python3 -c 'import os; print(round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30))') GiB; $(uname -m)"
