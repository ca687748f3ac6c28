#!/bin/bash
# Promptable-model runs side by side on one GPU machine, in one lease spanning several device calls.
#
#   bash benchmarks/train_prompt_gpu.sh MINUTES BUDGET RUN...     RUN = name:data[+data...]:seed
#
# The first call installs the carried MONAI wheel (.whl/), merges the data sets a run names
# (prepared folders, e.g. .ptdata/train+.ptdata-synth/train) and starts every run in its own
# process session (setsid), so the runs go on between calls while the machine is held; every
# call then watches for MINUTES and returns. BUDGET is each run's training time in minutes: the
# first run to time its steps 20-80 fits the schedule to it and the others take the same number
# of steps (--schedule-file). The call in which all runs have ended puts their transfer bundles
# (float16 weights, record, log) into $OUT; assemble them here with
# `medseg train-prompt --assemble BUNDLE --out engines/<id>/<version>`. STEPS (default 60000)
# caps the schedule: STEPS=4826 repeats 1.1.0's schedule exactly (a seed-spread run). ODDS
# ("group=w group=w ...") replaces the sampler's group odds for every run (`--odds`).
# The tracked engines/ folder is larger than what a device call may carry (64 MiB): move it out
# of the checkout for the calls (the runs do not read it). 1.2.0 was made with
#   bash benchmarks/train_prompt_gpu.sh 8 19 s0:.ptdata/train:0 s1:.ptdata/train:1   (three calls)
# and `medseg train-prompt --assemble ... --validation-data .ptdata/val` for each bundle.
set -u
minutes=$1; budget=$2; shift 2
W=/tmp/w
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
if [ ! -f $W/started ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv
  python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__)"
  mkdir -p $W
  for run in "$@"; do
    IFS=: read -r name data seed <<< "$run"
    if [[ $data == *+* ]]; then
      python3 -m medseg_gui.training train-prompt --merge ${data//+/ } --data $W/data_$name || exit 1
      data=$W/data_$name
    fi
    setsid nohup python3 -m medseg_gui.training train-prompt --data $data --out $W/$name/model \
      --work $W/$name --seed $seed --steps ${STEPS:-60000} --budget-minutes $budget \
      --schedule-file $W/schedule.txt --no-export --log-every 100 ${ODDS:+--odds $ODDS} > $W/$name.log 2>&1 &
    echo "$name" >> $W/runs
  done
  touch $W/started
fi
end=$(( $(date +%s) + ${minutes%.*} * 60 ))
running() { pgrep -f "train-prompt --data" > /dev/null; }
while running && [ $(date +%s) -lt $end ]; do
  sleep 30
  for name in $(cat $W/runs); do echo "$name: $(grep -v -i warn $W/$name.log | tail -n 1)"; done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
done
if running; then echo "still training: call again"; exit 0; fi
for name in $(cat $W/runs); do
  for f in $W/$name/transfer/weights.*.safetensors; do [ -f $f ] && cp $f $OUT/${name}_$(basename $f); done
done
python3 - <<'PY'
import json, os, pathlib
w, out = pathlib.Path("/tmp/w"), pathlib.Path(os.environ["OUT"])
rec = {}
for name in (w / "runs").read_text().split():
    p = w / name / "transfer" / "record.json"
    rec[name] = {"record": json.loads(p.read_text()) if p.is_file() else None,
                 "log": (w / f"{name}.log").read_text()}
(out / "records.json").write_text(json.dumps(rec, indent=1))
PY
ls -la $OUT
