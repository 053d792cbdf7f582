#!/usr/bin/env bash
# The mission on the real node, end to end, with its figures: brings the dev
# cluster up with its real node (unless it is up), builds and imports the images
# (deploy/dev/images.sh, cached), and runs tests/kubernetes/test_real_node.py:
# helm install of the chart with the bundled PostgreSQL, indexing through a real
# MCP client and through a kubectl-applied IndexingRequest, search, and the
# failures a real pod can have. The last line starts `real-node smoke ok:`.
#
#   deploy/dev/smoke-real.sh [pytest args]
#
# A cluster started here is stopped at the end; one that was up stays up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
now() { date +%s%3N; }
secs() { printf '%d.%d' $(( $1 / 1000 )) $(( $1 % 1000 / 100 )); }

t0=$(now)
started_here=0
if ! "$here/cluster.sh" status >/dev/null 2>&1; then
  started_here=1
  "$here/cluster.sh" up --real-node >/dev/null
fi
if [[ $started_here == 1 ]]; then trap '"$here/cluster.sh" down >/dev/null 2>&1 || true' EXIT; fi
eval "$("$here/cluster.sh" env)"
t_cluster=$(( $(now) - t0 ))

t1=$(now)
"$here/images.sh" >/dev/null
t_images=$(( $(now) - t1 ))

figures=$(mktemp)
t2=$(now)
(
  cd "$root"
  CODEBASE_MCP_REAL_NODE=1 CODEBASE_MCP_REAL_NODE_FIGURES=$figures \
    "$python" -m pytest -q -p no:cacheprovider tests/kubernetes/test_real_node.py "$@"
)
t_tests=$(( $(now) - t2 ))

summary=$("$python" - "$figures" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
print(
    f"install to ready {f.get('install_to_ready_s')} s, "
    f"start_indexing_background answered in {f.get('start_answer_s')} s, "
    f"{f.get('mission_files')} files / {f.get('mission_chunks')} chunks indexed in a real pod in "
    f"{f.get('mission_index_s')} s ({f.get('live_statuses')} live statuses), "
    f"search {f.get('mission_search_s')} s, kubectl-applied request {f.get('applied_path_s')} s, "
    f"unpullable image failed after {f.get('unpullable_failed_s')} s"
)
PY
)
rm -f "$figures"
echo "real-node smoke ok: cluster $(secs "$t_cluster") s, images $(secs "$t_images") s, tests $(secs "$t_tests") s; $summary"
