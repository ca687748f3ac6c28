#!/usr/bin/env bash
# Install a built bundle (dist/medseg-gui-<version>/) as a desktop program.
#
#   sudo bash packaging/linux/install.sh dist/medseg-gui-0.1.0     -> /opt, /usr/local/bin
#   bash packaging/linux/install.sh dist/medseg-gui-0.1.0           -> ~/.local (no root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bundle=$(cd "${1:?usage: install.sh dist/medseg-gui-<version>}" && pwd)
name=$(basename "$bundle")
if [ "$(id -u)" -eq 0 ]; then
  prefix=/opt; bin=/usr/local/bin; apps=/usr/share/applications; icons=/usr/share/icons/hicolor
else
  prefix=$HOME/.local/opt; bin=$HOME/.local/bin; apps=$HOME/.local/share/applications
  icons=$HOME/.local/share/icons/hicolor
fi
mkdir -p "$prefix" "$bin" "$apps" "$icons/scalable/apps" "$icons/256x256/apps"
rm -rf "${prefix:?}/$name"
cp -a "$bundle" "$prefix/$name"
ln -sfn "$prefix/$name/medseg-gui" "$bin/medseg-gui"
ln -sfn "$prefix/$name/medseg" "$bin/medseg"
sed -e "s|^Exec=.*|Exec=$prefix/$name/medseg-gui %f|" \
    -e "s|^TryExec=.*|TryExec=$prefix/$name/medseg-gui|" \
    "$here/medseg-gui.desktop" > "$apps/medseg-gui.desktop"
cp "$here/medseg-gui.svg" "$icons/scalable/apps/medseg-gui.svg"
cp "$here/medseg-gui.png" "$icons/256x256/apps/medseg-gui.png"
command -v update-desktop-database >/dev/null && update-desktop-database "$apps" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q "$icons" || true
echo "installed $name in $prefix; run medseg-gui (or find 'MedSeg Workstation' in the menu)"
