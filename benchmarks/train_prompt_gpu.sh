#!/bin/bash
# Three seeds of the promptable model side by side on one GPU (how prompt-unet 1.0.0 was trained,
# run from the repository root on the GPU machine with .ptdata/train and a MONAI wheel in .whl/). $1: first|resume, $2: minutes
# of this call; with "bench" as $3 also times prompts on the GPU afterwards.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm --format=csv
python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__, torch.cuda.get_device_name(0))"
mkdir -p /tmp/w
extra=""; [ "$1" = resume ] && extra="--resume"
pids=()
for s in 0 1 2; do
  python3 -m medseg_gui.training train-prompt --data .ptdata/train --out /tmp/w/s$s/model \
    --work /tmp/w/s$s --seed $s --steps 60000 --budget-minutes 15 --minutes $2 \
    --log-every 100 $extra >> /tmp/w/log$s.txt 2>&1 &
  pids+=($!)
done
alive() { for p in "${pids[@]}"; do kill -0 $p 2>/dev/null && return 0; done; return 1; }
while alive; do sleep 45; for s in 0 1 2; do echo "s$s: $(grep -v -i warn /tmp/w/log$s.txt | tail -n 1)"; done; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done
wait
if [ "${3:-}" = bench ] && [ -f /tmp/w/s0/model/model.json ]; then
  python3 benchmarks/bench_prompt.py --model /tmp/w/s0/model --study .gpu/demo.npz --threads 8 --repeat 7 > /tmp/w/bench.txt 2>&1
  grep -v -i "warn\|torchvision" /tmp/w/bench.txt | tail -n 30
fi
for s in 0 1 2; do for f in /tmp/w/s$s/transfer/weights.*.safetensors; do [ -f $f ] && cp $f $OUT/s${s}_$(basename $f); done; done
python3 - <<'PY'
import json, os, pathlib
out = pathlib.Path(os.environ["OUT"])
rec = {}
for s in range(3):
    p = pathlib.Path(f"/tmp/w/s{s}/transfer/record.json")
    rec[f"s{s}"] = json.loads(p.read_text()) if p.is_file() else None
json.dump(rec, open(out / "records.json", "w"), indent=1)
logs = "".join(f"===== seed {s}\n" + pathlib.Path(f"/tmp/w/log{s}.txt").read_text() for s in range(3))
b = pathlib.Path("/tmp/w/bench.txt")
(out / "logs.txt").write_text(logs + ("===== bench\n" + b.read_text() if b.is_file() else ""))
PY
ls -la $OUT
