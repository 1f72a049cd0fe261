#!/usr/bin/env bash
# Renders a report page (mixseg report --out DIR) in headless Chromium and
# writes a PNG of it, to look at the plots as a reader would (installs
# Debian's chromium if missing).
#   scripts/report-screenshot.sh DIR [OUT.png]   (default DIR/report.png)
set -euo pipefail
DIR=$(cd "$1" && pwd)
PNG=${2:-$DIR/report.png}
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2600 \
  --screenshot="$PNG" "file://$DIR/report.html" 2>/dev/null
echo "wrote $PNG"
