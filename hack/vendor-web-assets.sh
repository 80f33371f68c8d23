#!/usr/bin/env bash
# Vendors the dashboard's front-end libraries into internal/dashboard/static/vendor:
# each package's tarball is fetched from the npm registry at a pinned version, checked
# against the pinned integrity (the registry's dist.integrity, a SHA-512 in Subresource
# Integrity form), and the files the dashboard serves are copied out with the package's
# license. SHA256SUMS then records what was vendored; a test checks the embedded files
# against it, so an edit by hand shows.
#
# Run it only to change a version (edit the pins below); builds, tests and the hub itself
# never need the network or Node. Needs curl, tar, openssl and sha256sum.
set -euo pipefail

cd "$(dirname "$0")/.."
dest=internal/dashboard/static/vendor
registry=${NPM_REGISTRY:-https://registry.npmjs.org}

# package version integrity file-in-package:name-in-vendor...
#
# htmx 2.0 rather than 4.0: 2.0 is the long-maintained line, and how it behaves under a
# Content-Security-Policy without 'unsafe-inline' or 'unsafe-eval' is well known (the
# dashboard turns off its indicator styles and eval). uPlot draws the usage charts.
packages=(
	"htmx.org 2.0.11 sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA== dist/htmx.min.js:htmx.min.js LICENSE:htmx.LICENSE"
	"uplot 1.6.32 sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw== dist/uPlot.iife.min.js:uPlot.iife.min.js dist/uPlot.min.css:uPlot.min.css LICENSE:uPlot.LICENSE"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf "$dest"
mkdir -p "$dest"
for entry in "${packages[@]}"; do
	read -r name version integrity files <<<"$entry"
	tarball="$work/$name-$version.tgz"
	curl -fsSL --retry 3 -o "$tarball" "$registry/$name/-/${name##*/}-$version.tgz"
	got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
	if [ "$got" != "$integrity" ]; then
		echo "$name@$version: the tarball's integrity is $got, not the pinned $integrity" >&2
		exit 1
	fi
	mkdir -p "$work/$name"
	tar -xzf "$tarball" -C "$work/$name"
	for pair in $files; do
		cp "$work/$name/package/${pair%%:*}" "$dest/${pair##*:}"
	done
	echo "$name@$version: $integrity" >>"$dest/VERSIONS"
done
(cd "$dest" && sha256sum -- *.js *.css *.LICENSE VERSIONS >SHA256SUMS)
echo "vendored into $dest:"
cat "$dest/VERSIONS"
