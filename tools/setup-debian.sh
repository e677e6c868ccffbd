#!/bin/sh
# Installs what libpixel needs to build and test on Debian 12 (bookworm).
# Runs apt-get through sudo when not root.  Usage: tools/setup-debian.sh [--build-only]
set -eu
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
BUILD="meson ninja-build gcc pkg-config python3 libjansson-dev libyaml-dev libpcre2-dev zlib1g-dev
       librdkafka-dev libmaxminddb-dev check"
# Real components the integration tests start on loopback, and their data.
TEST="python3-yaml rsyslog rsyslog-relp haproxy nginx-light kcat uap-core mmdb-bin curl apache2-utils gzip iproute2"
PKGS="$BUILD"
[ "${1:-}" = "--build-only" ] || PKGS="$BUILD $TEST"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
# The Debian packages enable their system services; the tests never use them.
for svc in rsyslog haproxy nginx; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
echo "setup-debian: installed $(echo $PKGS | wc -w) packages"
