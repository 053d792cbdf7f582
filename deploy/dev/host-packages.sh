#!/usr/bin/env bash
# Install the Debian packages the real node and the image builds need (idempotent; needs root and
# apt). Checked on Debian 12: containerd 1.6, runc 1.1 (not crun: it refuses hybrid cgroups),
# the CNI plugins, mmdebstrap and buildah for the images, iptables for kube-proxy, git for the
# test repositories (`git daemon`), gcc for the pause container.
set -euo pipefail
packages=(containerd runc containernetworking-plugins mmdebstrap buildah iptables git gcc libc6-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
(( ${#missing[@]} )) || exit 0
echo "[host-packages.sh] installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
