#!/usr/bin/env bash
# Render the Helm chart into the plain manifests of deploy/base, for people who don't use Helm:
#
#   deploy/render.sh              rewrite deploy/base (and the chart's copy of the CRD)
#   deploy/render.sh --check      exit 1, with a diff, if deploy/base is not what the chart renders
#   deploy/render.sh --out DIR    render into DIR instead (what the drift test does)
#
# The chart's default values, except two things plain manifests cannot do:
# - migrations.mode=initContainer: there are no Helm hooks, so the server and operator pods run
#   `codebase-mcp db upgrade` in an init container (idempotent, under an advisory lock);
# - server.auth.existingSecret=codebase-mcp-auth: a token generated here would be committed, the
#   same for everyone; you create that Secret (docs/kubernetes.md).
# The `helm test` pod is left out (--skip-tests): without Helm nothing would run it.
# Helm's own labels and annotations (helm.sh/*, app.kubernetes.io/managed-by) are dropped.
# helm comes from deploy/dev/tools.sh (the venv's PyPI package), so no network is needed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
[[ -x $python ]] || python=$(command -v python3)

mode=write out=$here/base
case "${1:-}" in
  --check) mode=check out=$(mktemp -d) ;;
  --out) out=${2:?usage: render.sh --out DIR}; mode=out ;;
  "") ;;
  *) echo "usage: $0 [--check | --out DIR]" >&2; exit 2 ;;
esac

helm=${HELM:-}
if [[ -z $helm ]]; then
  tools=$(mktemp -d)
  trap 'rm -rf "$tools"' EXIT
  PYTHON=$python "$here/dev/tools.sh" "$tools" 2>/dev/null
  helm=$tools/helm
fi

chart=$root/charts/codebase-mcp
if [[ $mode == write ]]; then
  cp "$here/crds/indexingrequests.yaml" "$chart/files/indexingrequests.yaml"
elif ! cmp -s "$here/crds/indexingrequests.yaml" "$chart/files/indexingrequests.yaml"; then
  echo "render.sh: charts/codebase-mcp/files/indexingrequests.yaml differs from deploy/crds/; run deploy/render.sh" >&2
  exit 1
fi

mkdir -p "$out"
"$helm" template codebase-mcp "$chart" --namespace codebase-mcp \
  --set migrations.mode=initContainer \
  --set server.auth.existingSecret=codebase-mcp-auth \
  --skip-tests \
  | "$python" "$here/split_manifests.py" "$out"

if [[ $mode == check ]]; then
  if ! diff -ru "$here/base" "$out"; then
    echo "render.sh: deploy/base is out of date; run deploy/render.sh" >&2
    rm -rf "$out"
    exit 1
  fi
  rm -rf "$out"
fi
