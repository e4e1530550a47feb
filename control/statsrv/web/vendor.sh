#!/bin/sh
# Fetches the charting library the status page embeds (uPlot, MIT) from
# npm and checks it against the hash it was vendored with: make web-vendor.
# The files are committed, so that a fresh clone builds without a network;
# this script says where they came from and refreshes them.
set -eu
cd "$(dirname "$0")"
version=1.6.32
tgz_sha256=4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null)
echo "$tgz_sha256  $tmp/uplot-$version.tgz" | sha256sum -c --quiet
tar -xzf "$tmp/uplot-$version.tgz" -C "$tmp"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" .
cp "$tmp/package/LICENSE" LICENSE.uPlot
echo "uPlot $version vendored"
