#!/usr/bin/env bash
# Smoke test of a BUILT bundle: on a virtual X server the app opens the demo study, the bundle's
# own `medseg segment` segments it on the CPU (and `medseg prompt` from one click), the app shows
# the result and writes a screenshot.
#
#   bash packaging/smoke_test.sh [dist/medseg-gui-<version>] [OUT_DIR]   (default: build/smoke)
#
# Exits 0 only when every step worked. Prints the bundle's size and the start-up time to the
# screenshot (wall time of `medseg-gui STUDY --labels MASK --screenshot OUT`, median of 3 runs).
# The GUI's own "Segment tumour" action has no command-line switch: its code path (the spawned
# inference worker) is run by `medseg-gui -m frozen_selfcheck`, and the mask the bundle's CLI
# wrote is shown in the GUI through --labels for the screenshot.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:-$(ls -d dist/medseg-gui-*/ 2>/dev/null | sort -V | tail -n 1)}
bundle=${bundle%/}
out=${2:-build/smoke}
test -x "$bundle/medseg-gui" || { echo "smoke: no built app in '$bundle' (run packaging/build.sh)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"
export MEDSEG_HOME="$out/home"   # nothing written outside the test folder
demo="$bundle/_internal/resources/demo/STS_008/dicom/image"
test -d "$demo" || { echo "smoke: no demo study in $bundle" >&2; exit 1; }
test -f "$bundle/_internal/resources/demo/LICENSE.md" || { echo "smoke: demo licence missing" >&2; exit 1; }

echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1))"
"$bundle/medseg" info "$demo" > "$out/info.json"
# Jobs run `<executable> -m medseg_gui.training ...` inside the bundle.
"$bundle/medseg" -m medseg_gui.training --help > /dev/null
"$bundle/medseg" models list
"$bundle/medseg" segment "$demo" -o "$out/ai_mask.nii.gz" --device cpu | tee "$out/segment.txt"
test -s "$out/ai_mask.nii.gz"
# The promptable model: one click at the demo tumour (LPS mm, the readout's coordinates).
"$bundle/medseg" prompt "$demo" -o "$out/prompt_mask.nii.gz" --point 179.4,11.2,-194.5 \
  --device cpu | tee "$out/prompt.txt"
test -s "$out/prompt_mask.nii.gz"
# The GUI's own "Segment tumour" path: a spawned worker process of the frozen executable.
"$bundle/medseg-gui" -m frozen_selfcheck "$demo"

# Fine-tuning as the GUI's "Fine-tune" button runs it (`<executable> -m medseg_gui.training`),
# 2 steps: it trains, validates on the model's held-out cases and exports ONNX inside the bundle.
# Needs the shared IBSI sarcoma cases (../shared/data or $MEDSEG_SHARED_DATA); skipped without.
shared=${MEDSEG_SHARED_DATA:-../shared/data}/ibsi_sts/nifti
if [ -d "$shared/STS_008" ]; then
  mkdir -p "$out/ft_data"
  # two training cases plus the shipped model's held-out cases, which validation needs
  held_out=$(python3 -c 'import glob, json, sys
card = json.load(open(sorted(glob.glob(sys.argv[1] + "/sts-tumour-unet/*/model.json"))[-1]))
print(" ".join(card["metrics"]["validation_dice"]["per_case"]))' "$bundle/_internal/engines")
  for c in STS_001 STS_002 $held_out; do
    ln -sfn "$(cd "$shared/$c" && pwd)" "$out/ft_data/$c"
  done
  "$bundle/medseg-gui" -m medseg_gui.training finetune --data "$out/ft_data" --steps 2 \
    --out "$out/ft_model" --version 0.0.0-smoke 2>&1 | grep -v -i "warn\|rationality" | tail -n 2
  test -s "$out/ft_model/model.onnx" && test -s "$out/ft_model/model.json"
else
  echo "fine-tuning check skipped: no $shared"
fi

times=()
for n in 1 2 3; do
  start=$EPOCHREALTIME
  xvfb-run -a -s "-screen 0 1600x1000x24" "$bundle/medseg-gui" "$demo" \
    --labels "$out/ai_mask.nii.gz" --screenshot "$out/smoke_$n.png"
  end=$EPOCHREALTIME
  test -s "$out/smoke_$n.png"
  times+=("$(python3 -c "print(round($end - $start, 2))")")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
echo "start-up to screenshot (s): ${times[*]} (median $median)"
echo "smoke test passed: $out/smoke_1.png"
