#!/bin/bash
# Interleaved A/B of `wheelstream download` of one URL (docs/performance.md, D-verify-only-download):
#   git worktree add /tmp/base <old commit>
#   .venv/bin/wheelstream testbed serve --port 8766 -q /opt/wheels &
#   bash benchmarks/ab_download.sh /tmp/base DIR RUNS URL
# old = the checkout given, new = this one; each run a fresh cache and destination in DIR (on the file system to
# measure), synced before the run and removed after it. Both run as `python -m wheelstream` with PYTHONPATH.
base=$1; where=$2; runs=${3:-3}
U=${4:-http://127.0.0.1:8766/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl}
here=$(cd "$(dirname "$0")/.." && pwd)
for i in $(seq $runs); do
  for side in old new; do
    root=$here; [ $side = old ] && root=$base
    d=$(mktemp -d $where/ab.XXXX); sync; sleep 2
    /usr/bin/time -f "$side %e s wall %U u %S s %M KB" env PYTHONPATH=$root $here/.venv/bin/python -m wheelstream download -q --no-progress -d $d/d --cache-dir $d/c "$U" > /dev/null
    rm -rf $d
  done
done
