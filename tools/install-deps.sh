#!/bin/sh
# Install the Debian packages dsc needs to build and test, if any is missing.
# Runs apt-get as root, or through sudo.  Safe to run again: it does nothing
# when everything is present.
set -eu

# python3 (standard library only) runs make mutate's tools/mutate.py.
packages="build-essential pkg-config liblua5.4-dev libtcc-dev tcc libxsmm-dev
libcriterion-dev graphviz python3 python3-numpy python3-pytest libutf8proc-dev python3-pip"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "install-deps: need root or sudo to install:$missing" >&2
    exit 1
fi
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
