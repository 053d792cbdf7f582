#!/usr/bin/env bash
# Smoke test of a running dev control plane (deploy/dev/cluster.sh up): real Job
# and pod objects driven by kwok, podFailurePolicy and backoff, stuck pods,
# garbage collection, TTL, namespace deletion, a CRD with a status subresource
# and CEL validation. Exits non-zero on the first failed check.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$here/cluster.sh" env)"
ns=smoke-$$
k() { kubectl -n "$ns" "$@"; }
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*" >&2; exit 1; }
t_start=$(date +%s)

# wait_jsonpath TIMEOUT RESOURCE JSONPATH EXPECTED
wait_jsonpath() {
  local timeout=$1 res=$2 path=$3 want=$4 got=""
  local deadline=$(( $(date +%s) + timeout ))
  while (( $(date +%s) < deadline )); do
    got=$(k get "$res" -o "jsonpath=$path" 2>/dev/null || true)
    [[ $got == "$want" ]] && return 0
    sleep 0.2
  done
  fail "$res $path: want '$want', got '$got'"
}

# job NAME [pod template labels as JSON] [pod template annotations as JSON] [extra spec JSON]
job() {
  local name=$1 labels=${2:-'{}'} annotations=${3:-'{}'} extra=${4:-'{}'}
  python3 - "$name" "$labels" "$annotations" "$extra" <<'PY' | k apply -f - >/dev/null
import json, sys
name, labels, annotations, extra = sys.argv[1], *map(json.loads, sys.argv[2:])
spec = {
    "backoffLimit": 0,
    "template": {
        "metadata": {"labels": labels, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "indexer", "image": "codebase-mcp-indexer:dev",
                            "command": ["codebase-mcp-index"]}],
        },
    },
}
spec.update(extra)
print(json.dumps({"apiVersion": "batch/v1", "kind": "Job",
                  "metadata": {"name": name}, "spec": spec}))
PY
}
pod_of() { k get pods -l "batch.kubernetes.io/job-name=$1" -o name | head -n1; }

trap 'kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT
kubectl create namespace "$ns" >/dev/null
wait_jsonpath 30 serviceaccount/default '{.metadata.name}' default
pass "namespace $ns has its default service account"

# 1. A plain Job: scheduled onto the fake node, Succeeded, Job Complete.
job ok
wait_jsonpath 30 job/ok '{.status.conditions[?(@.type=="Complete")].status}' True
pod=$(pod_of ok)
[[ $(k get "$pod" -o jsonpath='{.spec.nodeName}') == kwok-node-0 ]] || fail "ok: not on kwok-node-0"
[[ $(k get "$pod" -o jsonpath='{.status.phase}') == Succeeded ]] || fail "ok: pod not Succeeded"
[[ $(k get "$pod" -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}') == 0 ]] || fail "ok: exit code"
pass "job ok: pod on kwok-node-0 Succeeded with exit 0, Job Complete"

# 2. run-duration keeps the pod Running for a while.
job slow '{}' '{"codebase-mcp.dev/run-duration": "3s"}'
wait_jsonpath 15 job/slow '{.status.active}' 1
pod=$(pod_of slow)
wait_jsonpath 10 "$pod" '{.status.phase}' Running
wait_jsonpath 5 job/slow '{.status.ready}' 1
sleep 1
[[ $(k get "$pod" -o jsonpath='{.status.phase}') == Running ]] || fail "slow: left Running before 3s"
wait_jsonpath 15 job/slow '{.status.conditions[?(@.type=="Complete")].status}' True
pass "job slow: Running (ready) for ~3s, then Complete"

# 3. fail-exit-code + podFailurePolicy FailJob on that exit code.
job pfp '{"codebase-mcp.dev/fail-exit-code": "3"}' \
  '{"codebase-mcp.dev/fail-reason": "Error", "codebase-mcp.dev/fail-message": "simulated"}' \
  '{"backoffLimit": 5, "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]}}'
wait_jsonpath 30 job/pfp '{.status.conditions[?(@.type=="Failed")].reason}' PodFailurePolicy
pod=$(pod_of pfp)
[[ $(k get "$pod" -o jsonpath='{.status.phase}') == Failed ]] || fail "pfp: pod not Failed"
[[ $(k get "$pod" -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}') == 3 ]] || fail "pfp: exit code"
[[ $(k get job/pfp -o jsonpath='{.status.failed}') == 1 ]] || fail "pfp: retried despite FailJob"
pass "job pfp: pod Failed with exitCode 3; podFailurePolicy failed the Job at once (reason PodFailurePolicy)"

# 4. fail-exit-code without a policy: retried up to backoffLimit.
job backoff '{"codebase-mcp.dev/fail-exit-code": "1"}' '{}' '{"backoffLimit": 1}'
wait_jsonpath 60 job/backoff '{.status.conditions[?(@.type=="Failed")].reason}' BackoffLimitExceeded
[[ $(k get job/backoff -o jsonpath='{.status.failed}') == 2 ]] || fail "backoff: want 2 failed pods"
pass "job backoff: 2 pods failed with exit 1, Job Failed (BackoffLimitExceeded)"

# 5. Stuck Pending: scheduled, but kwok leaves it alone.
job stuck '{"codebase-mcp.dev/stuck-pending": "true"}'
wait_jsonpath 15 job/stuck '{.status.active}' 1
pod=$(pod_of stuck)
wait_jsonpath 10 "$pod" '{.spec.nodeName}' kwok-node-0
sleep 3
[[ $(k get "$pod" -o jsonpath='{.status.phase}') == Pending ]] || fail "stuck: left Pending"
pass "job stuck: pod scheduled and still Pending after 3s"

# 6. Stuck with a waiting reason, as an image pull failure looks.
job pull '{"codebase-mcp.dev/stuck-pending": "ImagePullBackOff"}'
wait_jsonpath 15 job/pull '{.status.active}' 1
pod=$(pod_of pull)
wait_jsonpath 10 "$pod" '{.status.containerStatuses[0].state.waiting.reason}' ImagePullBackOff
[[ $(k get "$pod" -o jsonpath='{.status.phase}') == Pending ]] || fail "pull: not Pending"
pass "job pull: pod Pending with waiting reason ImagePullBackOff"

# 7. Unschedulable: the real scheduler says so.
job unsched '{}' '{}' '{"template": {"spec": {"restartPolicy": "Never", "nodeSelector": {"codebase-mcp.dev/no-such-node": "true"}, "containers": [{"name": "indexer", "image": "x"}]}}}'
wait_jsonpath 15 job/unsched '{.status.active}' 1
pod=$(pod_of unsched)
wait_jsonpath 15 "$pod" '{.status.conditions[?(@.type=="PodScheduled")].reason}' Unschedulable
pass "job unsched: pod Pending, PodScheduled=False reason Unschedulable"

# 8. Deleting a Job with propagation removes its pods (garbage collector + kwok).
k delete job stuck --cascade=foreground --wait=true --timeout=30s >/dev/null
[[ -z $(k get pods -l batch.kubernetes.io/job-name=stuck -o name) ]] || fail "stuck: pods left after delete"
pass "job stuck deleted with foreground propagation: no pods left"

# 9. activeDeadlineSeconds fails a Job whose pod never finishes.
job deadline '{}' '{"codebase-mcp.dev/run-duration": "1h"}' '{"activeDeadlineSeconds": 2}'
wait_jsonpath 30 job/deadline '{.status.conditions[?(@.type=="Failed")].reason}' DeadlineExceeded
pass "job deadline: Failed with DeadlineExceeded"

# 10. ttlSecondsAfterFinished deletes the finished Job.
job ttl '{}' '{}' '{"ttlSecondsAfterFinished": 1}'
deadline=$(( $(date +%s) + 30 ))
while k get job/ttl >/dev/null 2>&1; do
  (( $(date +%s) < deadline )) || fail "ttl: Job not deleted"
  sleep 0.5
done
pass "job ttl: deleted after it finished"

# 11. A CRD with a status subresource and CEL validation.
crd=widgets.smoke.codebase-mcp.dev
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.codebase-mcp.dev
spec:
  group: smoke.codebase-mcp.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [projectId]
            properties:
              projectId: {type: string, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'}
              path: {type: string}
              git: {type: string}
            x-kubernetes-validations:
            - rule: "has(self.path) != has(self.git)"
              message: "exactly one of path or git"
          status:
            type: object
            properties:
              phase: {type: string}
EOF
kubectl wait --for=condition=Established "crd/$crd" --timeout=30s >/dev/null
widget() {
  k apply -f - <<EOF
apiVersion: smoke.codebase-mcp.dev/v1alpha1
kind: Widget
metadata: {name: $1}
spec: $2
EOF
}
widget good '{projectId: default, path: /workspace}' >/dev/null
if out=$(widget bad '{projectId: default, path: /a, git: "file:///b"}' 2>&1); then
  fail "crd: invalid object accepted"
fi
[[ $out == *"exactly one of path or git"* ]] || fail "crd: unexpected error: $out"
k patch widget good --subresource=status --type=merge -p '{"status": {"phase": "Running"}}' >/dev/null
[[ $(k get widget good -o jsonpath='{.status.phase}') == Running ]] || fail "crd: status not written"
k patch widget good --type=merge -p '{"status": {"phase": "Failed"}}' >/dev/null
[[ $(k get widget good -o jsonpath='{.status.phase}') == Running ]] || fail "crd: status written through main resource"
kubectl delete crd "$crd" --wait=false >/dev/null
pass "crd: CEL rule refused an invalid object; status only through the subresource"

# 12. RBAC is enforced: a service account with no roles cannot list pods.
token=$(k create token default --duration=10m)
if kubectl --token="$token" -n "$ns" get pods >/dev/null 2>&1; then
  fail "rbac: default service account may list pods"
fi
pass "rbac: the default service account is refused"

# 13. Namespace deletion finishes (namespace controller + kwok finalizing pods).
trap - EXIT
kubectl delete namespace "$ns" --timeout=60s >/dev/null
pass "namespace $ns deleted"
echo "smoke test passed in $(( $(date +%s) - t_start ))s"
