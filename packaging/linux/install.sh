#!/usr/bin/env bash
# Install (or remove) a built medseg-gui folder with its menu entry, icon and commands.
#
#   ./install.sh                  as root: /opt/medseg-gui-<ver>, /usr/local/bin, system menu
#                                 as a user: ~/.local/opt/medseg-gui-<ver>, ~/.local/bin, user menu
#   ./install.sh --user           a per-user install even as root
#   ./install.sh --prefix DIR     copy the app to DIR/medseg-gui-<ver> instead
#   ./install.sh --uninstall      remove what the same kind of install put there
#   ./install.sh [options] BUNDLE the folder to install (default: the folder this script is in,
#                                 as in the unpacked .tar.gz, or dist/medseg-gui-<ver> of a checkout)
#
# The menu entry and icon go through xdg-desktop-menu / xdg-icon-resource (xdg-utils) when they
# are there, else they are copied into the XDG folders directly. Nothing else is touched.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
mode="" prefix="" bundle="" action=install
while [ $# -gt 0 ]; do
  case "$1" in
    --user) mode=user ;;
    --system) mode=system ;;
    --prefix) prefix="$2"; shift ;;
    --uninstall) action=uninstall ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    *) bundle="$1" ;;
  esac
  shift
done
if [ -z "$mode" ]; then
  if [ "$(id -u)" -eq 0 ]; then mode=system; else mode=user; fi
fi

# --- which folder to install ---------------------------------------------------------------
if [ -z "$bundle" ]; then
  if [ -x "$here/medseg-gui" ]; then
    bundle="$here"
  else  # run from packaging/linux/ of a checkout: the newest build in dist/
    bundle="$(ls -d "$here"/../../dist/medseg-gui-*/ 2>/dev/null | sort -V | tail -n 1 || true)"
  fi
fi
if [ "$action" = install ] && { [ -z "$bundle" ] || [ ! -x "$bundle/medseg-gui" ]; }; then
  echo "install.sh: no built app found (expected a folder with medseg-gui in it);" \
       "build one with packaging/build.sh or pass its folder" >&2
  exit 2
fi
if [ -n "$bundle" ]; then bundle="$(cd "$bundle" && pwd)"; fi
if [ -n "$bundle" ] && [ -f "$bundle/VERSION" ]; then
  version="$(cat "$bundle/VERSION")"
elif [ -n "$bundle" ]; then
  version="$(basename "$bundle")"; version="${version#medseg-gui-}"
else
  echo "install.sh: pass the installed version's folder to --uninstall" >&2; exit 2
fi

# Desktop file and icons: in the bundle's share/, or beside this script in a checkout.
share="$bundle/share"
desktop_src="$share/applications/medseg-gui.desktop"
[ -f "$desktop_src" ] || desktop_src="$here/medseg-gui.desktop"
svg_src="$share/icons/medseg-gui.svg"; [ -f "$svg_src" ] || svg_src="$here/medseg-gui.svg"
png_src="$share/icons/medseg-gui.png"; [ -f "$png_src" ] || png_src="$here/medseg-gui.png"

if [ "$mode" = system ]; then
  dest_root="${prefix:-/opt}"; bin_dir=/usr/local/bin; data_home=/usr/share
else
  dest_root="${prefix:-$HOME/.local/opt}"; bin_dir="$HOME/.local/bin"
  data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
fi
dest="$dest_root/medseg-gui-$version"
have() { command -v "$1" >/dev/null 2>&1; }

if [ "$action" = uninstall ]; then
  for exe in medseg-gui medseg; do
    # only our own links: never a file some other install put there
    if [ -L "$bin_dir/$exe" ] && [ "$(readlink "$bin_dir/$exe")" = "$dest/$exe" ]; then
      rm -f "$bin_dir/$exe"
    fi
  done
  if have xdg-desktop-menu; then
    xdg-desktop-menu uninstall --mode "$mode" medseg-gui.desktop || true
  fi
  rm -f "$data_home/applications/medseg-gui.desktop"
  if have xdg-icon-resource; then
    xdg-icon-resource uninstall --mode "$mode" --size 256 medseg-gui || true
  fi
  rm -f "$data_home/icons/hicolor/scalable/apps/medseg-gui.svg" \
        "$data_home/icons/hicolor/256x256/apps/medseg-gui.png"
  rm -rf "$dest"
  echo "removed medseg-gui $version ($dest)"
  exit 0
fi

# --- copy the app --------------------------------------------------------------------------
echo "installing medseg-gui $version into $dest"
mkdir -p "$dest_root" "$bin_dir"
if [ "$bundle" != "$dest" ]; then
  rm -rf "$dest.tmp"
  cp -a "$bundle" "$dest.tmp"
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
fi
[ "$mode" = system ] && chmod -R a+rX "$dest"
ln -sfn "$dest/medseg-gui" "$bin_dir/medseg-gui"
ln -sfn "$dest/medseg" "$bin_dir/medseg"

# --- menu entry and icon -------------------------------------------------------------------
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Absolute paths: ~/.local/bin is often not on a desktop session's PATH.
sed -e "/^# install.sh/d" -e "s|^Exec=medseg-gui|Exec=$dest/medseg-gui|" \
  -e "s|^TryExec=.*|TryExec=$dest/medseg-gui|" \
  "$desktop_src" > "$tmp/medseg-gui.desktop"

# xdg-utils when present; a plain copy into the XDG folders when absent or when it refuses
# (e.g. a minimal system without /etc/xdg/menus).
mkdir -p "$data_home/icons/hicolor/scalable/apps"
cp "$svg_src" "$data_home/icons/hicolor/scalable/apps/medseg-gui.svg"
if ! { have xdg-icon-resource &&
       xdg-icon-resource install --mode "$mode" --novendor --size 256 "$png_src" medseg-gui; }; then
  mkdir -p "$data_home/icons/hicolor/256x256/apps"
  cp "$png_src" "$data_home/icons/hicolor/256x256/apps/medseg-gui.png"
fi
if ! { have xdg-desktop-menu &&
       xdg-desktop-menu install --mode "$mode" --novendor "$tmp/medseg-gui.desktop"; }; then
  mkdir -p "$data_home/applications"
  cp "$tmp/medseg-gui.desktop" "$data_home/applications/medseg-gui.desktop"
  if have update-desktop-database; then update-desktop-database -q "$data_home/applications"; fi
fi

echo "installed: $bin_dir/medseg-gui and $bin_dir/medseg -> $dest"
case ":$PATH:" in *":$bin_dir:"*) ;; *) echo "note: $bin_dir is not on your PATH" ;; esac
