#!/usr/bin/env bash
# Build the one-folder desktop app: dist/medseg-gui-<version>/ and
# dist/medseg-gui-<version>-linux-x86_64.tar.gz (+ .sha256).
#
#   bash packaging/build.sh              build with the project's .venv (make setup creates it)
#   bash packaging/build.sh --clean      build with a fresh venv holding only what the app needs
#                                        at run time (build/package-venv: torch CPU, '.[onnx]')
#   bash packaging/build.sh --venv DIR   build with the virtual environment DIR
#   make package                         the first form, then packaging/smoke_test.sh
#
# The spec (packaging/medseg-gui.spec) leaves out what the app never uses. The bundle ships
# resources/ (demo study with its licence) and every model folder under engines/; TensorRT plans
# are built on the target machine. Beside the executables go VERSION, install.sh and share/
# (desktop entry, icons) so that the unpacked archive installs itself: ./install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
mode=project
while [ $# -gt 0 ]; do
  case "$1" in
    --clean) mode=clean; venv=build/package-venv ;;
    --venv) mode=given; venv="${2:?--venv needs a folder}"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

case "$mode" in
  project) make setup ;;
  clean)
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    # The CPU build of torch first (the same pin as the Makefile), so nothing pulls CUDA wheels.
    "$venv/bin/python" -m pip install -q torch==2.13.0
    "$venv/bin/python" -m pip install -q '.[onnx]'
    ;;
  given) test -x "$venv/bin/python" || { echo "build.sh: $venv is not a venv" >&2; exit 2; } ;;
esac
"$venv/bin/python" -m pip install -q "pyinstaller>=6.10"

version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' medseg_gui/__init__.py)
name="medseg-gui-${version}"
bundle="dist/$name"
archive="dist/$name-linux-$(uname -m).tar.gz"

start=$SECONDS
"$venv/bin/python" -m PyInstaller --noconfirm --log-level WARN --distpath dist \
  --workpath build/pyinstaller packaging/medseg-gui.spec
echo "$version" > "$bundle/VERSION"
install -m 755 packaging/linux/install.sh "$bundle/install.sh"
install -D -m 644 packaging/linux/medseg-gui.desktop "$bundle/share/applications/medseg-gui.desktop"
install -D -m 644 packaging/linux/medseg-gui.svg "$bundle/share/icons/medseg-gui.svg"
install -D -m 644 packaging/linux/medseg-gui.png "$bundle/share/icons/medseg-gui.png"

# Quick self-check of the frozen app before packing it (the full check is smoke_test.sh):
# it starts, and it sees the models it ships.
check_home=$(mktemp -d)
MEDSEG_HOME="$check_home" "$bundle/medseg" --version
MEDSEG_HOME="$check_home" "$bundle/medseg" models list
rm -rf "$check_home"

tar -C dist -czf "$archive" "$name"
(cd dist && sha256sum "$(basename "$archive")" > "$(basename "$archive").sha256")
echo "built in $((SECONDS - start)) s:"
du -sh "$bundle" "$archive"
echo "largest parts of $bundle/_internal:"
du -sh "$bundle"/_internal/* | sort -h | tail -n 6
