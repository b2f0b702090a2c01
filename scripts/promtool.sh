#!/usr/bin/env bash
# Print the path of a `promtool` (Prometheus's checker), for tests/app/test_metrics_lint.py.
# One on PATH is used; else, as root on Debian, the binary is taken out of Debian's
# `prometheus` package (downloaded, not installed: no server is set up) into DIR.
#
#   PATH="$(dirname "$(scripts/promtool.sh)"):$PATH"
#
# Exit 2 when there is none and none can be had (the test then skips). Only the path
# goes to stdout.
set -euo pipefail

DIR=${HEARTH_TEST_PROMTOOL_DIR:-${TMPDIR:-/tmp}/hearth-promtool}

if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
if [ -x "$DIR/promtool" ]; then echo "$DIR/promtool"; exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool: not found; on Debian: apt-get install prometheus" >&2; exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq prometheus >&2 2>/dev/null) ||
    { apt-get update -qq >&2 && (cd "$work" && apt-get download -qq prometheus >&2); } ||
    { echo "promtool: could not download Debian's prometheus package" >&2; exit 2; }
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p "$DIR"
cp "$work/root/usr/bin/promtool" "$DIR/promtool"
echo "$DIR/promtool"
