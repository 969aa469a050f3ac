#!/usr/bin/env bash
# Set up a fresh Debian machine for One Blueprint: system packages (apt-get) and a Python venv (pip).
# Usage: scripts/setup.sh [--test]   (--test adds PostgreSQL + PostGIS and GDAL's tools for the test suite)
set -euo pipefail
cd "$(dirname "$0")/.."

# SpatiaLite for the embedded database; Chromium and a CJK font print the viewer's PDF reports
want=(libsqlite3-mod-spatialite chromium fonts-wqy-microhei)
if [[ "${1:-}" == "--test" ]]; then
    # gdal-bin (ogrinfo/ogr2ogr) and QGIS 3.22 (python3-qgis, qgis-providers) drive /ogc in the tests
    want+=(postgresql-15 postgresql-15-postgis-3 gdal-bin python3-qgis qgis-providers)
fi
missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
    echo "setup: apt-get install ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -f "$stamp" ]]; then
    echo "setup: pip install -e .[dev]" >&2
    .venv/bin/python -m pip install -q --upgrade pip >&2
    .venv/bin/python -m pip install -q -e '.[dev]' >&2
    touch "$stamp"
fi
