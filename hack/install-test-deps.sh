#!/usr/bin/env bash
# Installs the programs the tests run beside the project's own: PostgreSQL
# (the usage store's second backend), Prometheus (the metrics tests), curl
# (the README walkthrough test) and Chromium (the dashboard's browser tests,
# headless), from Debian packages. Does nothing when they are present.
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
pg_found=""
for dir in /usr/lib/postgresql/*/bin; do
	[ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && pg_found=1
done
[ -n "$pg_found" ] || missing+=(postgresql-15)

[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing test dependencies: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
	echo "apt-get not found: install ${missing[*]} with your package manager" >&2
	exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo="sudo -n"
	else
		echo "Installing ${missing[*]} needs root: run 'sudo apt-get install ${missing[*]}'" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
