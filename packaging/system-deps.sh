#!/usr/bin/env bash
# Install the Debian/Ubuntu packages the app and its tests need, when any is missing.
# Qt (xcb platform) and VTK (OpenGL via Mesa) need the X/GL libraries; the tests need Xvfb and the
# reference tools dcm2niix and dciodvfy. Runs apt-get as root (or through sudo) only when needed.
set -euo pipefail

packages=(
  # Qt's xcb platform plugin and VTK's OpenGL rendering
  libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libfontconfig1 libdbus-1-3 libxrender1 libxi6
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0
  # a virtual X server for headless runs and GUI tests
  xvfb xauth
  # reference tools and a real PACS the tests run against
  dcm2niix dicom3tools orthanc orthanc-dicomweb
  # `make package`: PyInstaller reads binaries' dependencies with objdump (binutils)
  binutils
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 -m venv needs ensurepip, which Debian ships separately.
if ! python3 -c 'import ensurepip' 2>/dev/null; then
  missing+=("python3-venv")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing system packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "error: these packages are missing and this user cannot install them: ${missing[*]}" >&2
  echo "       run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
