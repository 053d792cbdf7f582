#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for tests: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok playing the kubelet of one
# fake node (pods are driven by the Stage rules in kwok-stages.yaml; no
# container runs). Binaries come from build.sh (built once, then cached).
#
#   deploy/dev/cluster.sh up       start (or say it is already up); prints env
#   deploy/dev/cluster.sh env      print `export KUBECONFIG=...` lines for eval
#   deploy/dev/cluster.sh status   which components run, is the API ready
#   deploy/dev/cluster.sh down     stop everything and remove the state dir
#
# State (certs, tokens, kubeconfigs, etcd data, logs, pids):
#   ${CODEBASE_MCP_K8S_STATE:-/tmp/codebase-mcp-k8s}
# Everything listens on 127.0.0.1 only, on ports picked free at `up`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${CODEBASE_MCP_K8S_STATE:-/tmp/codebase-mcp-k8s}
node_name=kwok-node-0
service_cidr=10.96.0.0/16
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
# Kept in step with kube-controller-manager's own names (1.33).
controllers=job-controller,garbage-collector-controller,ttl-after-finished-controller,namespace-controller,serviceaccount-controller,resourcequota-controller

log() { echo "[cluster.sh $(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_of() { cat "$state/pids/$1" 2>/dev/null || true; }
# Alive and still ours: after a reboot a stale pid file may name another process.
alive() {
  local pid; pid=$(pid_of "$1")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "/$1 "
}

api_port() { cat "$state/ports/apiserver" 2>/dev/null; }
readyz() {
  local port; port=$(api_port) || return 1
  [[ -n $port ]] || return 1
  [[ $(curl -sf --max-time 2 --cacert "$state/pki/ca.crt" \
        -H "Authorization: Bearer $(cat "$state/admin-token")" \
        "https://127.0.0.1:$port/readyz" 2>/dev/null) == ok ]]
}

print_env() {
  echo "export KUBECONFIG=$state/kubeconfig"
  echo "export CODEBASE_MCP_K8S_TOKEN_FILE=$state/admin-token"
  echo "export CODEBASE_MCP_K8S_BIN=$(cat "$state/bin-dir")"
  echo "export PATH=$(cat "$state/bin-dir"):\$PATH"
}

# Wait until "$@" succeeds; $1 is the timeout in seconds, $2 a description.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      die "timed out after ${timeout}s waiting for $what (logs: $state/logs)"
    fi
    check_alive
    sleep 0.2
  done
}

check_alive() {
  local c
  for c in "${components[@]}"; do
    if [[ -e $state/pids/$c ]] && ! alive "$c"; then
      tail -n 30 "$state/logs/$c.log" >&2 || true
      die "$c exited (log: $state/logs/$c.log)"
    fi
  done
}

free_ports() {
  # Bind all at once so the ports differ; the tiny race with other processes
  # between close and use is acceptable for a test cluster.
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

start() {
  local name=$1; shift
  # setsid: own process group, so a Ctrl-C in the caller's terminal does not
  # reach it and `down` can stop it by pid.
  setsid "$@" >"$state/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$state/pids/$name"
}

gen_pki() {
  local pki=$state/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout ca.key -out ca.crt -days 3650 -subj "/CN=codebase-mcp-dev-ca" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf '%s\n' \
      "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
      "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" > apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out apiserver.crt -days 3650 -extfile apiserver.ext 2>/dev/null
    # Service account token signing key pair.
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
}

write_kubeconfig() {
  local file=$1 user=$2 token=$3 port=$4
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: codebase-mcp-dev
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 < "$state/pki/ca.crt")
users:
- name: $user
  user:
    token: $token
contexts:
- name: codebase-mcp-dev
  context:
    cluster: codebase-mcp-dev
    user: $user
    namespace: default
current-context: codebase-mcp-dev
EOF
  chmod 600 "$file"
}

new_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

cmd_up() {
  if [[ -d $state ]]; then
    local c all=1
    for c in "${components[@]}"; do alive "$c" || all=0; done
    if [[ $all == 1 ]] && readyz; then
      log "already up (state: $state)"
      print_env
      return 0
    fi
    log "stale state in $state, cleaning up first"
    cmd_down
  fi

  local t0 bin
  t0=$(date +%s%3N)
  # A failed start stops what it started but keeps the state dir for its logs;
  # the next `up` (or `down`) clears it.
  trap 'stop_all; log "up failed; logs kept in $state/logs"' EXIT
  bin=$("$here/build.sh")
  for c in "${components[@]}" kubectl; do
    [[ -x $bin/$c ]] || die "$bin/$c missing; run deploy/dev/build.sh"
  done

  mkdir -p "$state"/{logs,pids,ports,etcd,kwok}
  chmod 700 "$state"
  echo "$bin" > "$state/bin-dir"
  gen_pki

  local etcd_port etcd_peer api_port kwok_port
  read -r etcd_port etcd_peer api_port kwok_port < <(free_ports 4)
  echo "$etcd_port" > "$state/ports/etcd"
  echo "$api_port" > "$state/ports/apiserver"
  echo "$kwok_port" > "$state/ports/kwok"

  local admin_token kcm_token sched_token kwok_token
  admin_token=$(new_token); kcm_token=$(new_token)
  sched_token=$(new_token); kwok_token=$(new_token)
  echo "$admin_token" > "$state/admin-token"
  # token,user,uid,"groups": the admin and kwok are cluster admins; the
  # controller manager and scheduler get the identities the default RBAC
  # bootstrap policy grants their roles to.
  cat > "$state/tokens.csv" <<EOF
$admin_token,admin,admin,"system:masters"
$kwok_token,kwok,kwok,"system:masters"
$kcm_token,system:kube-controller-manager,system:kube-controller-manager
$sched_token,system:kube-scheduler,system:kube-scheduler
EOF
  chmod 600 "$state/admin-token" "$state/tokens.csv"
  write_kubeconfig "$state/kubeconfig" admin "$admin_token" "$api_port"
  write_kubeconfig "$state/kube-controller-manager.kubeconfig" system:kube-controller-manager "$kcm_token" "$api_port"
  write_kubeconfig "$state/kube-scheduler.kubeconfig" system:kube-scheduler "$sched_token" "$api_port"
  write_kubeconfig "$state/kwok.kubeconfig" kwok "$kwok_token" "$api_port"

  start etcd "$bin/etcd" \
    --name=codebase-mcp-dev --data-dir="$state/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-cluster="codebase-mcp-dev=http://127.0.0.1:$etcd_peer" \
    --unsafe-no-fsync --log-level=warn
  wait_for 30 etcd curl -sf "http://127.0.0.1:$etcd_port/health"

  # --endpoint-reconciler-type=none: Endpoints may not hold a loopback address,
  # so the default reconciler would fail forever on 127.0.0.1.
  # TaintNodesByCondition off: it taints new nodes not-ready, and the taint is
  # lifted by the node lifecycle controller, which we do not run (it would also
  # evict pods when kwok's heartbeats lag).
  # OwnerReferencesPermissionEnforcement on, as on OpenShift and hardened
  # clusters: setting blockOwnerDeletion needs `update` on the owner's
  # finalizers subresource, so a missing RBAC rule fails the tests.
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --cert-dir="$state/pki/serving" \
    --tls-cert-file="$state/pki/apiserver.crt" --tls-private-key-file="$state/pki/apiserver.key" \
    --client-ca-file="$state/pki/ca.crt" \
    --token-auth-file="$state/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$state/pki/sa.pub" \
    --service-account-signing-key-file="$state/pki/sa.key" \
    --authorization-mode=RBAC \
    --disable-admission-plugins=ServiceAccount,TaintNodesByCondition \
    --enable-admission-plugins=OwnerReferencesPermissionEnforcement \
    --service-cluster-ip-range="$service_cidr" \
    --endpoint-reconciler-type=none \
    --profiling=false
  wait_for 90 "kube-apiserver /readyz" readyz

  local kubectl=("$bin/kubectl" --kubeconfig="$state/kubeconfig")
  # The node exists before kwok starts, so kwok picks it up by annotation.
  "${kubectl[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $node_name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $node_name
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF

  # --secure-port=0: no metrics/health endpoints, so nothing else to bind.
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$state/kube-controller-manager.kubeconfig" \
    --controllers="$controllers" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$state/pki/sa.key" \
    --root-ca-file="$state/pki/ca.crt" \
    --secure-port=0
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$state/kube-scheduler.kubeconfig" \
    --leader-elect=false --secure-port=0
  start kwok "$bin/kwok" \
    --kubeconfig="$state/kwok.kubeconfig" \
    --config="$here/kwok-stages.yaml" \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --server-address="127.0.0.1:$kwok_port" \
    --node-ip=127.0.0.1 \
    --node-lease-duration-seconds=40

  wait_for 60 "node $node_name Ready" \
    "${kubectl[@]}" wait --for=condition=Ready "node/$node_name" --timeout=1s
  wait_for 60 "default namespace" "${kubectl[@]}" get namespace default
  # The serviceaccount controller (in the controller manager) creates it; a
  # token request proves the signing keys work too.
  wait_for 60 "default service account" "${kubectl[@]}" -n default get serviceaccount default
  wait_for 30 "service account token" "${kubectl[@]}" -n default create token default --duration=10m

  local ms=$(( $(date +%s%3N) - t0 ))
  trap - EXIT
  log "up in $(( ms / 1000 )).$(( ms % 1000 / 100 ))s: API https://127.0.0.1:$api_port (state: $state)"
  print_env
}

stop_all() {
  local c pids=()
  # All at once: each takes 1-3 s to shut down and the state goes anyway.
  for c in "${components[@]}"; do
    alive "$c" && pids+=("$(pid_of "$c")")
  done
  if (( ${#pids[@]} )); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local pid left
    for _ in $(seq 100); do
      left=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
      (( left )) || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
}

cmd_down() {
  stop_all
  rm -rf "$state"
  log "down (removed $state)"
}

cmd_status() {
  local c rc=0
  [[ -d $state ]] || { echo "not up (no $state)"; return 1; }
  for c in "${components[@]}"; do
    if alive "$c"; then printf '%-24s running (pid %s)\n' "$c" "$(pid_of "$c")"
    else printf '%-24s not running\n' "$c"; rc=1; fi
  done
  if readyz; then echo "API https://127.0.0.1:$(api_port) ready"
  else echo "API not ready"; rc=1; fi
  return $rc
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) [[ -f $state/kubeconfig ]] || die "not up (no $state/kubeconfig)"; print_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
