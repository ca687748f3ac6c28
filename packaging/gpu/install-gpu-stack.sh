#!/usr/bin/env bash
# Add the GPU stack to a Python install of medseg-gui: a CUDA build of PyTorch, TensorRT, pycuda
# and cuda-python (the [tensorrt] extra, from NVIDIA's index), the CUDA runtime they load, and the
# CUDA build of ONNX Runtime. Then print which backend `--backend auto` now picks.
#
#   bash packaging/gpu/install-gpu-stack.sh                 into the project's .venv
#   bash packaging/gpu/install-gpu-stack.sh --venv DIR      into another virtual environment
#   TORCH_INDEX=https://download.pytorch.org/whl/cu126 bash packaging/gpu/install-gpu-stack.sh
#
# UNTESTED: TensorRT cannot be installed on this project's machines (see README.md here).
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=.venv
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) venv="${2:?--venv needs a folder}"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install-gpu-stack.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# What pip cannot install: the driver, and the toolkit pycuda compiles against.
command -v nvidia-smi >/dev/null || { echo "no NVIDIA driver: nvidia-smi not found" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
if ! command -v nvcc >/dev/null && [ ! -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then
  echo "pycuda has no wheel and builds from source: install the CUDA toolkit (nvcc) or set" \
       "CUDA_HOME" >&2
  exit 1
fi
export PATH="${CUDA_HOME:-/usr/local/cuda}/bin:$PATH"

if [ "$venv" = .venv ]; then make setup; fi
pip=("$venv/bin/python" -m pip install)
torch_version=$("$venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')

# 1. PyTorch with CUDA. `auto` asks torch whether there is a GPU, so a CPU torch (the Makefile's
#    workstation pin) would keep every backend on the CPU even with TensorRT installed.
if [ -n "${TORCH_INDEX:-}" ]; then
  "${pip[@]}" --force-reinstall "torch==$torch_version" --index-url "$TORCH_INDEX"
else  # PyPI's Linux x86_64 torch wheel is the CUDA build, with the CUDA runtime as nvidia-* wheels
  "${pip[@]}" --force-reinstall "torch==$torch_version"
fi
# 2. TensorRT, pycuda, cuda-python: the [tensorrt] extra. TensorRT's wheels come from NVIDIA's
#    index and bring their own libraries (tensorrt_libs) and the CUDA runtime wheel.
"${pip[@]}" --extra-index-url https://pypi.nvidia.com -e '.[tensorrt]' nvidia-cuda-runtime-cu12
# 3. ONNX Runtime's CUDA build replaces the CPU one (both install the module `onnxruntime`).
"$venv/bin/python" -m pip uninstall -y onnxruntime
"${pip[@]}" onnxruntime-gpu

# What the app will use now.
"$venv/bin/python" - <<'EOF'
import onnxruntime
import tensorrt
import torch

from medseg_gui.inference.backend import auto_choice

print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU", torch.cuda.is_available())
print("TensorRT", tensorrt.__version__)
print("ONNX Runtime providers", onnxruntime.get_available_providers())
print("--backend auto picks: %s on %s" % auto_choice())
EOF
echo "next: $venv/bin/medseg build-engine --precision fp16   (once per GPU and model version)"
