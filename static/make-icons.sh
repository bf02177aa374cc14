#!/usr/bin/env bash
# Renders the app icons (static/icon-192.png, icon-512.png, icon-maskable-512.png) from the same
# drawing as icon.svg, with Debian's Chromium. The PNGs are committed; run this only to change them.
# The maskable icon fills the square and keeps the bubble inside the central safe zone.
set -euo pipefail
cd "$(dirname "$0")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for spec in "192 14 1 icon-192.png" "512 14 1 icon-512.png" "512 0 0.72 icon-maskable-512.png"; do
  read -r size rx scale name <<<"$spec"
  cat >"$work/icon.html" <<HTML
<!doctype html><html><head><style>html,body{margin:0;padding:0;background:transparent}svg{display:block}</style></head><body>
<svg xmlns="http://www.w3.org/2000/svg" width="$size" height="$size" viewBox="0 0 64 64"><rect width="64" height="64" rx="$rx" fill="#1f4e79"/><g transform="translate(32 32) scale($scale) translate(-32 -32)"><path d="M16 20h32a4 4 0 0 1 4 4v14a4 4 0 0 1-4 4H30l-9 8v-8h-5a4 4 0 0 1-4-4V24a4 4 0 0 1 4-4z" fill="#fff"/></g></svg>
</body></html>
HTML
  chromium --headless --disable-gpu --no-sandbox --hide-scrollbars --default-background-color=00000000 \
    --window-size="$size,$size" --screenshot="$PWD/$name" "file://$work/icon.html" >/dev/null 2>&1
done
