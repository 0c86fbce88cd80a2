#!/usr/bin/env bash
# Installs what hellobench needs on a Debian 12 machine (run as root), then a local nox.
# Idempotent: packages already present are not touched; apt-get runs only when one is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
	# build and run the native driver and the C servers
	gcc libc6-dev make
	# the io_uring servers (impls/iouring-c): liburing headers and library
	liburing-dev
	# eBPF servers: compile, load, attach
	clang llvm libbpf-dev bpftool iproute2 libelf-dev
	# kernel modules and the VM environment
	linux-image-amd64 linux-headers-amd64 qemu-system-x86 busybox-static kmod cpio xz-utils
	# calibration against sockperf, manual poking
	sockperf netcat-openbsd procps
	# the history store's PostgreSQL tests: a throwaway server of Debian's package
	postgresql
	# the report's browser test
	chromium
	# two hosts (--server-host): the ssh client here, the tests' own sshd in a netns, and
	# the server host's interface record (driver, offloads, channels)
	openssh-server openssh-client ethtool
	# a Python for nox
	python3 python3-venv python3-pip
	# nox -s lint: actionlint checks the CI workflow's shell steps with it
	shellcheck
)

if [ "$(id -u)" -ne 0 ]; then
	echo "bootstrap: run as root (it installs Debian packages and loads BPF programs)" >&2
	exit 2
fi

missing=()
for pkg in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "bootstrap: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# no service the packages bring (sshd, PostgreSQL) is started: the tests start their
	# own, bound to loopback or to a namespace's address
	own_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		own_policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$own_policy"
		chmod +x "$own_policy"
		trap 'rm -f "$own_policy"' EXIT
	fi
	apt-get install -y -q --no-install-recommends "${missing[@]}"
	if [ -n "$own_policy" ]; then
		rm -f "$own_policy"
		trap - EXIT
	fi
fi

# nox with uv: sessions' environments are created and filled in seconds, not half a minute
if [ ! -x .venv/bin/nox ] || [ ! -x .venv/bin/uv ]; then
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q "nox[uv]"
fi
