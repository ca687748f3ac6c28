#!/bin/bash
# Three seeds of the automatic model (sts-tumour-unet 1.2.0: 1.1.0's recipe on the 43 shared
# sarcoma CTs) side by side on one GPU, run from the repository root on the GPU machine.
# The prepared cases (medseg train --prepare) travel in two halves, .td1/ and .td2/, over
# consecutive calls and wait in /tmp/td; training starts once all 43 are there.
# $1: first|resume; $2: seconds of training in this call (the run is resumable: checkpoints
# every 250 steps, --resume continues the same schedule).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p /tmp/td /tmp/a
for d in .td1 .td2; do [ -d $d ] && cp -n $d/* /tmp/td/; done
n=$(ls /tmp/td/*.npz.xz | wc -l)
echo "$n prepared cases on the machine"
[ "$n" -lt 43 ] || [ ! -f /tmp/td/prepared.json ] && { echo "waiting for the rest"; exit 0; }
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader
extra=""; [ "$1" = resume ] && extra="--resume"
pids=()
for s in 0 1 2; do
  timeout "$2" python3 -m medseg_gui.training train --data /tmp/td --out /tmp/a/s$s/model \
    --work /tmp/a/s$s --model-id sts-tumour-unet --version 1.2.0 --seed $((12345 + s)) \
    --steps 4500 --workers 4 --log-every 250 --val-every 500 --select last \
    --checkpoint-every 250 --neg-ratio 2 --bg-min-hu -100 --zoom 0.8 1.25 $extra \
    >> /tmp/a/log$s.txt 2>&1 &
  pids+=($!)
done
alive() { for p in "${pids[@]}"; do kill -0 $p 2>/dev/null && return 0; done; return 1; }
while alive; do sleep 20; for s in 0 1 2; do echo "s$s: $(grep -v -i warn /tmp/a/log$s.txt | tail -n 1 | cut -c1-150)"; done; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done
wait
for s in 0 1 2; do
  [ -f /tmp/a/s$s/model/weights.safetensors ] && cp /tmp/a/s$s/model/weights.safetensors $OUT/s${s}_weights.safetensors
  [ -f /tmp/a/s$s/model/model.json ] && cp /tmp/a/s$s/model/model.json $OUT/s${s}_model.json
done
for s in 0 1 2; do echo "===== seed $((12345 + s))"; grep -v -i "warn" /tmp/a/log$s.txt; done > $OUT/logs.txt
ls -la $OUT
