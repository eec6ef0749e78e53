#!/usr/bin/env bash
# System libraries MuJoCo needs to render offscreen on a CPU-only machine (Mesa EGL, OSMesa as the
# fallback), and Debian's Chromium + its WebDriver for the dashboard's browser test (tests/dashboard; no browser
# is ever downloaded at run time). Installs them only when they are missing, and only when we may (root or
# passwordless sudo).
set -u
need=()
ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa.so' || need+=(libegl-mesa0 libegl1)
ldconfig -p 2>/dev/null | grep -q 'libOSMesa.so' || need+=(libosmesa6)
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' || need+=(libgl1)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
echo "[setup] installing system packages for offscreen rendering and the dashboard's browser test: ${need[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "[setup] cannot install ${need[*]} without root: run 'sudo apt-get install ${need[*]}' and retry" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null \
  || echo "[setup] apt-get failed for ${need[*]}; rendering may fall back or fail, the dashboard browser test fails without chromium (see README troubleshooting)" >&2
exit 0
