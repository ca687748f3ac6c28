#!/usr/bin/env bash
# Add TensorRT, pycuda and cuda-python (the [tensorrt] extra) and CUDA onnxruntime to .venv.
# Untested here: see packaging/gpu/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v nvidia-smi >/dev/null || { echo "no NVIDIA driver (nvidia-smi) found" >&2; exit 1; }
command -v nvcc >/dev/null || { echo "pycuda builds from source: install the CUDA toolkit (nvcc)" >&2; exit 1; }
make setup
.venv/bin/python -m pip install --extra-index-url https://pypi.nvidia.com -e '.[tensorrt]'
.venv/bin/python -m pip install onnxruntime-gpu
.venv/bin/python -c 'import tensorrt, pycuda.driver; print("TensorRT", tensorrt.__version__)'
