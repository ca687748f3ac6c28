#!/usr/bin/env bash
# Build the one-folder desktop app: dist/medseg-gui-<version>/ and dist/medseg-gui-<version>.tar.gz
#
#   bash packaging/build.sh          (or: make package)
#
# Uses the project's .venv (make setup creates it) plus PyInstaller; the spec leaves out what the
# app never uses (see packaging/medseg-gui.spec). The bundle ships resources/ (demo study with its
# licence) and every model folder under engines/; TensorRT plans are built on the target machine.
set -euo pipefail
cd "$(dirname "$0")/.."
make setup
.venv/bin/python -m pip install -q "pyinstaller>=6.10"
version=$(.venv/bin/python -c 'import medseg_gui; print(medseg_gui.__version__)')
.venv/bin/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
  packaging/medseg-gui.spec
tar -C dist -czf "dist/medseg-gui-${version}.tar.gz" "medseg-gui-${version}"
du -sh "dist/medseg-gui-${version}" "dist/medseg-gui-${version}.tar.gz"
