#!/bin/bash
# Build pycuda from its sdist on a GPU machine and run the GPU tests there (TensorRT cannot be
# installed, so its engine launch is played by PyTorch on pycuda's stream; see
# tests/test_pycuda_buffers.py). Run from the repository root with, in .pyc/, the pycuda sdist
# and wheels of its needs (pytools, platformdirs, mako, siphash24), and MONAI's wheel in .whl/:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_17_x86_64 \
#       -d .pyc pytools platformdirs mako siphash24     (and the pycuda-2026.1.tar.gz from PyPI)
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl .pyc/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .pyc/pycuda-*.tar.gz > /tmp/pycuda_build.txt 2>&1 || { tail -30 /tmp/pycuda_build.txt; exit 1; }
echo "pycuda built in $(( $(date +%s) - t0 )) s"
python3 -c "import pycuda, pycuda.driver as d; d.init(); print('pycuda', pycuda.VERSION_TEXT, d.Device(0).name(), 'CUDA', d.get_version())"
python3 -m pytest -q -p no:cacheprovider tests/test_pycuda_buffers.py tests/test_inference_gpu.py 2>&1 | tail -15 | tee "${OUT:-/tmp}/pycuda_gpu_tests_h200.txt"
