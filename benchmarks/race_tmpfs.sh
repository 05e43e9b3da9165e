#!/usr/bin/env bash
# A quick uv-vs-wheelstream race on tmpfs (/dev/shm): takes ext4's file-creation cost out of the picture, so
# what is left is each tool's own CPU work. Needs `make bench` to have created the peers' venv (for uv) and
# the torch wheel in /opt/wheels (or WHEEL=path). Usage: bash benchmarks/race_tmpfs.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m compileall -q wheelstream  # as an installed copy would be (see compile_wheelstream in run.py)
WHEEL=${WHEEL:-$(ls /opt/wheels/torch-*.whl | head -1)}
UV=$(ls benchmarks/out/peers-*/bin/uv | head -1)
RUNS=${1:-2}
WORK=$(mktemp -d /dev/shm/wheelstream-race.XXXX)
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
cp "$WHEEL" "$WORK/"
NAME=$(basename "$WHEEL")
.venv/bin/python -c "
import sys, time
from wheelstream.testing import FaultServer
server = FaultServer(port=0).start()
server.add_file('$NAME', '$WORK/$NAME')
print(server.url_for('$NAME'), flush=True)
time.sleep(3600)" > "$WORK/url" &
SERVER=$!
while [ ! -s "$WORK/url" ]; do sleep 0.1; done
URL=$(cat "$WORK/url")
for i in $(seq "$RUNS"); do
  /usr/bin/time -f "uv                    %e s" "$UV" pip install -q --no-deps --target "$WORK/uv$i" \
      --python .venv/bin/python --cache-dir "$WORK/uvc$i" "$URL"
  /usr/bin/time -f "wheelstream move      %e s" .venv/bin/wheelstream install -q --no-progress \
      --target "$WORK/ws$i" --cache-dir "$WORK/wsc$i" "$URL"
  /usr/bin/time -f "wheelstream hardlink  %e s" .venv/bin/wheelstream install -q --no-progress \
      --link-mode hardlink --target "$WORK/wh$i" --cache-dir "$WORK/whc$i" "$URL"
done
