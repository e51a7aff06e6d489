#!/usr/bin/env bash
# Build the sandbox base image without a registry: debootstrap a minimal Debian release (bookworm by
# default; bullseye and trixie for Python 3.9 and 3.13) with Python, then `docker import` it.
# Usage: build-base.sh TAG MIRROR [RELEASE [EXTRA_PACKAGES]]  (EXTRA_PACKAGES: comma-separated)
set -euo pipefail
tag=${1:-repair-agent/base:bookworm}
mirror=${2:-http://deb.debian.org/debian}
release=${3:-bookworm}
extra=${4:+,$4}
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
rootfs=$(mktemp -d /tmp/repair-agent-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,git,ca-certificates$extra \
    "$release" "$rootfs" "$mirror" >&2
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' - "$tag" >&2
echo "$tag"
