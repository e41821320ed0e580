#!/usr/bin/env bash
# Installs what building and testing flusso needs on Debian 12, if missing.
# Usage: test/install-deps.sh [--bench]   (--bench adds Redis and Python venv)
set -euo pipefail

packages=(
	make gcc pkg-config
	postgresql-15 postgresql-server-dev-15 postgresql-contrib
	libcurl4-openssl-dev libjson-c-dev
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl
	nginx-light openssl python3 python3-psycopg2
	openjdk-17-jdk-headless maven curl jq procps
)
if [ "${1:-}" = "--bench" ]; then
	packages+=(redis-server python3-venv python3-dev libpq-dev)
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}" >&2
	sudo_cmd=""
	[ "$(id -u)" = 0 ] || sudo_cmd="sudo"
	$sudo_cmd apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
