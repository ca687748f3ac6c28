#!/usr/bin/env bash
# Smoke test of a BUILT bundle: on a virtual X server the app opens the demo study, the bundle's
# own `medseg segment` segments it on the CPU, the app shows the result and writes a screenshot.
#
#   bash packaging/smoke_test.sh [dist/medseg-gui-<version>] [OUT_DIR]
#
# Exits 0 only when every step worked. Prints the bundle's size and the start-up time to the
# screenshot (median of 3 runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:-$(ls -d dist/medseg-gui-*/ | head -n 1)}
out=${2:-$(mktemp -d)}
bundle=${bundle%/}
mkdir -p "$out"
export MEDSEG_HOME="$out/home"   # nothing written outside the test folder
demo="$bundle/_internal/resources/demo/STS_008/dicom/image"
test -d "$demo" || { echo "smoke: no demo study in $bundle" >&2; exit 1; }

echo "size: $(du -sh "$bundle" | cut -f1)"
"$bundle/medseg" info "$demo" > "$out/info.json"
"$bundle/medseg" segment "$demo" -o "$out/ai_mask.nii.gz" --device cpu
test -s "$out/ai_mask.nii.gz"

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
