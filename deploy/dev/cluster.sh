#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for tests: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok playing the kubelet of one
# fake node (pods are driven by the Stage rules in kwok-stages.yaml; no
# container runs). Binaries come from build.sh (built once, then cached).
#
# With --real-node it also runs a real node next to the kwok one: containerd + runc
# on a CNI bridge, a kubelet, kube-proxy and CoreDNS (host processes), so pods
# really run. That needs root and the packages of host-packages.sh, changes the
# host (a bridge, iptables chains, sysctls, mounts, cgroups: `down` undoes them)
# and can run once per machine. See README.md, "A real node".
#
#   deploy/dev/cluster.sh up [--real-node]   start (or say it is already up); prints env
#   deploy/dev/cluster.sh env      print `export KUBECONFIG=...` lines for eval
#   deploy/dev/cluster.sh status   which components run, is the API ready
#   deploy/dev/cluster.sh down     stop everything and remove the state dir
#   deploy/dev/cluster.sh check-real-node   can this machine run the real node (why not)
#
# State (certs, tokens, kubeconfigs, etcd data, logs, pids):
#   ${CODEBASE_MCP_K8S_STATE:-/tmp/codebase-mcp-k8s}
# Everything listens on 127.0.0.1 only, on ports picked free at `up`; with the
# real node, the API server, kubelet and DNS listen on the bridge address instead
# (pods must reach them), and no packet leaves the host's own addresses, the
# bridge and the pods: no masquerade, and forwarding between the bridge and any
# other interface is dropped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${CODEBASE_MCP_K8S_STATE:-/tmp/codebase-mcp-k8s}
node_name=kwok-node-0
service_cidr=10.96.0.0/16
kwok_components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
node_components=(containerd kubelet kube-proxy coredns)
# Kept in step with kube-controller-manager's own names (1.33). The volume
# controllers bind the workspace claim (PersistentVolumeClaim) that the operator's
# indexer pods mount, so the scheduler places them.
controllers=job-controller,garbage-collector-controller,ttl-after-finished-controller,namespace-controller,serviceaccount-controller,resourcequota-controller,persistentvolume-binder-controller,persistentvolume-protection-controller,persistentvolumeclaim-protection-controller
# What real pods of the chart need besides: Deployments, a StatefulSet and its
# volume, Services, the CA bundle that projected service account tokens carry.
node_controllers=deployment-controller,replicaset-controller,statefulset-controller,endpoints-controller,endpointslice-controller,endpointslice-mirroring-controller,root-ca-certificate-publisher-controller,pod-garbage-collector-controller

# The real node. One per machine: the bridge name, kube-proxy's and the kubelet's
# iptables chains and the sysctls are host-wide.
real_node_name=codebase-mcp-real-0
bridge=cbm0
pod_cidr=10.244.0.0/24
bridge_ip=10.244.0.1
real_node_label=codebase-mcp.dev/real-node
pause_image=localhost/codebase-mcp-pause:3.10
forward_chain=CBM-REAL-NODE-FORWARD
# containerd's content and snapshots outlive the cluster, so an `up` finds the images of
# deploy/dev/images.sh already imported (its state, sockets and containers do not).
containerd_root=${CODEBASE_MCP_CONTAINERD_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/codebase-mcp/containerd}
# Sysctls the kubelet or the bridge plugin set; their old values are restored.
host_sysctls=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
              net.ipv4.conf.all.route_localnet vm.overcommit_memory vm.panic_on_oom kernel.panic
              kernel.panic_on_oops kernel.keys.root_maxkeys
              kernel.keys.root_maxbytes)

real_node() { [[ -f $state/real-node ]]; }
components() {
  if real_node; then echo "${kwok_components[@]}" "${node_components[@]}"; else echo "${kwok_components[@]}"; fi
}

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
api_host() { if real_node; then echo "$bridge_ip"; else echo 127.0.0.1; fi; }
readyz() {
  local port; port=$(api_port) || return 1
  [[ -n $port ]] || return 1
  [[ $(curl -sf --max-time 2 --cacert "$state/pki/ca.crt" \
        -H "Authorization: Bearer $(cat "$state/admin-token")" \
        "https://$(api_host):$port/readyz" 2>/dev/null) == ok ]]
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
  for c in $(components); do
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
    local extra_ip=""
    if real_node; then extra_ip=",IP:$bridge_ip"; fi
    printf '%s\n' \
      "subjectAltName=IP:127.0.0.1,IP:10.96.0.1$extra_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
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
    server: https://$(api_host):$port
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
  local want_real=$1
  if [[ -d $state ]]; then
    local c all=1
    for c in $(components); do alive "$c" || all=0; done
    if [[ $all == 1 ]] && readyz; then
      if [[ $want_real == 1 ]] && ! real_node; then
        die "up without a real node (state: $state); run \`$0 down\` first"
      fi
      log "already up (state: $state)"
      print_env
      return 0
    fi
    log "stale state in $state, cleaning up first"
    cmd_down
  fi

  local t0 bin
  t0=$(date +%s%3N)
  # A failed start stops what it started and undoes its host changes, but keeps
  # the state dir for its logs; the next `up` (or `down`) clears it.
  trap 'stop_all; undo_host; log "up failed; logs kept in $state/logs"' EXIT
  if [[ $want_real == 1 ]]; then check_real_node_host; fi
  bin=$("$here/build.sh")
  mkdir -p "$state"/{logs,pids,ports,etcd,kwok}
  chmod 700 "$state"
  if [[ $want_real == 1 ]]; then touch "$state/real-node"; fi
  for c in $(components) kubectl; do
    [[ $c == containerd ]] && continue
    [[ -x $bin/$c ]] || die "$bin/$c missing; run deploy/dev/build.sh"
  done
  echo "$bin" > "$state/bin-dir"
  if real_node; then prepare_host; fi
  gen_pki

  local etcd_port etcd_peer api_port kwok_port
  read -r etcd_port etcd_peer api_port kwok_port < <(free_ports 4)
  echo "$etcd_port" > "$state/ports/etcd"
  echo "$api_port" > "$state/ports/apiserver"
  echo "$kwok_port" > "$state/ports/kwok"

  local admin_token kcm_token sched_token kwok_token kubelet_token proxy_token dns_token
  admin_token=$(new_token); kcm_token=$(new_token)
  sched_token=$(new_token); kwok_token=$(new_token)
  kubelet_token=$(new_token); proxy_token=$(new_token); dns_token=$(new_token)
  echo "$admin_token" > "$state/admin-token"
  # token,user,uid,"groups": the admin and kwok are cluster admins; the
  # controller manager, scheduler and kube-proxy get the identities the default
  # RBAC bootstrap policy grants their roles to. The kubelet and CoreDNS of the
  # real node are cluster admins too (no Node authorizer, no CoreDNS role here).
  cat > "$state/tokens.csv" <<EOF
$admin_token,admin,admin,"system:masters"
$kwok_token,kwok,kwok,"system:masters"
$kcm_token,system:kube-controller-manager,system:kube-controller-manager
$sched_token,system:kube-scheduler,system:kube-scheduler
$kubelet_token,system:node:$real_node_name,system:node:$real_node_name,"system:nodes,system:masters"
$proxy_token,system:kube-proxy,system:kube-proxy
$dns_token,coredns,coredns,"system:masters"
EOF
  chmod 600 "$state/admin-token" "$state/tokens.csv"
  write_kubeconfig "$state/kubeconfig" admin "$admin_token" "$api_port"
  write_kubeconfig "$state/kube-controller-manager.kubeconfig" system:kube-controller-manager "$kcm_token" "$api_port"
  write_kubeconfig "$state/kube-scheduler.kubeconfig" system:kube-scheduler "$sched_token" "$api_port"
  write_kubeconfig "$state/kwok.kubeconfig" kwok "$kwok_token" "$api_port"
  write_kubeconfig "$state/kubelet.kubeconfig" "system:node:$real_node_name" "$kubelet_token" "$api_port"
  write_kubeconfig "$state/kube-proxy.kubeconfig" system:kube-proxy "$proxy_token" "$api_port"
  write_kubeconfig "$state/coredns.kubeconfig" coredns "$dns_token" "$api_port"

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
  # With the real node: on the bridge address (pods reach it through the
  # `kubernetes` Service, whose endpoint the API server keeps at that address),
  # the ServiceAccount admission plugin on (real pods mount tokens), and node
  # addresses instead of DNS names for `kubectl logs` and `exec`.
  local api_flags=(--disable-admission-plugins=ServiceAccount,TaintNodesByCondition --endpoint-reconciler-type=none)
  if real_node; then
    api_flags=(--disable-admission-plugins=TaintNodesByCondition --kubelet-preferred-address-types=InternalIP,Hostname)
  fi
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address="$(api_host)" --advertise-address="$(api_host)" --secure-port="$api_port" \
    --cert-dir="$state/pki/serving" \
    --tls-cert-file="$state/pki/apiserver.crt" --tls-private-key-file="$state/pki/apiserver.key" \
    --client-ca-file="$state/pki/ca.crt" \
    --token-auth-file="$state/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$state/pki/sa.pub" \
    --service-account-signing-key-file="$state/pki/sa.key" \
    --authorization-mode=RBAC \
    --enable-admission-plugins=OwnerReferencesPermissionEnforcement \
    --service-cluster-ip-range="$service_cidr" \
    "${api_flags[@]}" \
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
  # --pvclaimbinder-sync-period: a claim made before its volume reached the
  # controller's cache is retried after this (15 s by default, per test namespace).
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$state/kube-controller-manager.kubeconfig" \
    --controllers="$controllers$(real_node && echo ",$node_controllers")" \
    --pvclaimbinder-sync-period=1s \
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
  if real_node; then start_real_node "$bin"; fi
  wait_for 60 "default namespace" "${kubectl[@]}" get namespace default
  # The serviceaccount controller (in the controller manager) creates it; a
  # token request proves the signing keys work too.
  wait_for 60 "default service account" "${kubectl[@]}" -n default get serviceaccount default
  wait_for 30 "service account token" "${kubectl[@]}" -n default create token default --duration=10m

  local ms=$(( $(date +%s%3N) - t0 ))
  trap - EXIT
  log "up in $(( ms / 1000 )).$(( ms % 1000 / 100 ))s: API https://$(api_host):$api_port$(real_node && echo ", real node $real_node_name") (state: $state)"
  print_env
}

# --- the real node ------------------------------------------------------------

check_real_node_host() {
  local why=""
  if [[ $(id -u) != 0 ]]; then why="needs root (containerd, the bridge, iptables)"
  elif [[ ! -d /sys/fs/cgroup/memory && ! -f /sys/fs/cgroup/cgroup.controllers ]]; then why="no memory cgroup"
  elif [[ ! -d /proc/sys/net/bridge ]]; then why="no bridge netfilter (br_netfilter) in this kernel"
  elif ! grep -qw overlay /proc/filesystems; then why="no overlay filesystem in this kernel"
  else
    local tool
    for tool in containerd runc ctr iptables ip /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback; do
      if ! command -v "$tool" >/dev/null && [[ ! -x $tool ]]; then
        why="$tool not found (run deploy/dev/host-packages.sh)"; break
      fi
    done
  fi
  if [[ -z $why ]] && ip link show "$bridge" >/dev/null 2>&1; then
    why="bridge $bridge exists: another real node runs on this machine (one per machine)"
  fi
  [[ -z $why ]] || die "cannot run a real node here: $why"
}

# Host changes, each recorded under $state/host so `down` (or a failed `up`)
# undoes exactly them.
prepare_host() {
  mkdir -p "$state/host" "$state/containerd" "$state/cni/net.d" "$state/cni/ipam" "$state/kubelet" \
    "$state/pod-logs" "$state/coredns"
  local k
  for k in "${host_sysctls[@]}"; do
    sysctl -n "$k" 2>/dev/null | sed "s|^|$k=|" >> "$state/host/sysctls" || true
  done
  ls /run/netns 2>/dev/null > "$state/host/netns-before" || true
  ip link add "$bridge" type bridge
  echo "$bridge" > "$state/host/bridge"
  ip addr add "$bridge_ip/${pod_cidr#*/}" dev "$bridge"
  ip link set "$bridge" up
  # Services between pods on one bridge need bridged packets to see kube-proxy's
  # DNAT (the reply would otherwise skip the un-NAT), and routing to the bridge.
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.ipv4.ip_forward=1
  # Nothing is forwarded between the bridge and any other interface: pods reach
  # each other, the host's addresses and the services, nothing else.
  iptables -w -N "$forward_chain"
  echo "$forward_chain" > "$state/host/forward-chain"
  iptables -w -A "$forward_chain" -i "$bridge" ! -o "$bridge" -j DROP
  iptables -w -A "$forward_chain" -o "$bridge" ! -i "$bridge" -j DROP
  iptables -w -I FORWARD 1 -j "$forward_chain"
}

write_node_configs() {
  local bin=$1 kubelet_port kubelet_healthz proxy_healthz proxy_metrics dns_ready
  read -r kubelet_port kubelet_healthz proxy_healthz proxy_metrics dns_ready < <(free_ports 5)
  echo "$dns_ready" > "$state/ports/coredns-ready"
  local sock=$state/containerd/containerd.sock
  # restrict_oom_score_adj: CAP_SYS_RESOURCE may be missing from the bounding
  # set (it is on the VMs this was built on), and then no one may lower
  # oom_score_adj: runc fails every sandbox with "can't get final child's PID
  # from pipe: EOF" unless containerd clamps the value. Registry mirrors point at
  # a closed loopback port: nothing is ever pulled from outside (pods use
  # imagePullPolicy Never or IfNotPresent with imported images).
  cat > "$state/containerd/config.toml" <<EOF
version = 2
root = "$containerd_root"
state = "$state/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$state/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$state/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["http://127.0.0.1:9"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://127.0.0.1:9"]
EOF
  cat > "$state/cni/net.d/10-codebase-mcp.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "codebase-mcp-dev",
  "plugins": [
    {
      "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "dataDir": "$state/cni/ipam",
               "ranges": [[{"subnet": "$pod_cidr", "gateway": "$bridge_ip"}]],
               "routes": [{"dst": "0.0.0.0/0"}]}
    }
  ]
}
EOF
  # Pods resolve cluster names only: no upstream servers in their resolv.conf.
  : > "$state/kubelet/resolv.conf"
  cat > "$state/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $bridge_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
clusterDNS: [$bridge_ip]
clusterDomain: cluster.local
resolvConf: $state/kubelet/resolv.conf
podCIDR: $pod_cidr
podLogsDir: $state/pod-logs
maxPods: 60
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
evictionPressureTransitionPeriod: 5s
nodeStatusUpdateFrequency: 4s
syncFrequency: 5s
fileCheckFrequency: 0s
shutdownGracePeriod: 0s
EOF
  echo "$kubelet_port $kubelet_healthz $proxy_healthz $proxy_metrics" > "$state/ports/node"
  cat > "$state/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $state/kube-proxy.kubeconfig}
hostnameOverride: $real_node_name
mode: iptables
clusterCIDR: $pod_cidr
bindAddress: $bridge_ip
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
nodePortAddresses: [$bridge_ip/32]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  # Cluster names only; anything else is refused (there is no upstream).
  cat > "$state/coredns/Corefile" <<EOF
.:53 {
    bind $bridge_ip
    ready 127.0.0.1:$dns_ready
    errors
    cache 5
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $state/coredns.kubeconfig codebase-mcp-dev
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
}
EOF
}

# A docker-archive of the static pause binary (build.sh), for `ctr images import`:
# one layer, no registry, no image builder.
pause_archive() {
  python3 - "$1" "$2" "$pause_image" <<'PY'
import hashlib, io, json, sys, tarfile
binary, out, ref = sys.argv[1:]
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    info = tar.gettarinfo(binary, arcname="pause")
    info.uid = info.gid = 0; info.uname = info.gname = ""; info.mtime = 0; info.mode = 0o755
    with open(binary, "rb") as f:
        tar.addfile(info, f)
layer_bytes = layer.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
}).encode()
config_name = hashlib.sha256(config).hexdigest() + ".json"
with tarfile.open(out, "w") as tar:
    for name, data in ((config_name, config), ("layer.tar", layer_bytes),
                       ("manifest.json", json.dumps([{"Config": config_name, "RepoTags": [ref],
                                                      "Layers": ["layer.tar"]}]).encode())):
        info = tarfile.TarInfo(name); info.size = len(data); info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
PY
}

start_real_node() {
  local bin=$1 sock=$state/containerd/containerd.sock
  [[ -x $bin/pause ]] || die "$bin/pause missing: build.sh builds it when gcc is installed"
  mkdir -p "$containerd_root"
  local kubectl=("$bin/kubectl" --kubeconfig="$state/kubeconfig")
  write_node_configs "$bin"
  start containerd "$(command -v containerd)" --config "$state/containerd/config.toml" --log-level warn
  wait_for 30 containerd ctr --address "$sock" version
  pause_archive "$bin/pause" "$state/containerd/pause.tar"
  ctr --address "$sock" -n k8s.io images import "$state/containerd/pause.tar" >/dev/null
  # Tainted, so nothing lands here unless it asks to (the tests' real pods
  # tolerate the taint and select the node by label); kwok's tests keep theirs.
  start kubelet "$bin/kubelet" \
    --config="$state/kubelet/config.yaml" \
    --kubeconfig="$state/kubelet.kubeconfig" \
    --root-dir="$state/kubelet/root" \
    --cert-dir="$state/kubelet/pki" \
    --hostname-override="$real_node_name" \
    --node-ip="$bridge_ip" \
    --node-labels="$real_node_label=true" \
    --register-with-taints="$real_node_label=true:NoSchedule" \
    --v=1
  start kube-proxy "$bin/kube-proxy" --config="$state/kube-proxy.yaml" --v=1
  start coredns "$bin/coredns" -conf "$state/coredns/Corefile"
  wait_for 90 "node $real_node_name Ready" \
    "${kubectl[@]}" wait --for=condition=Ready "node/$real_node_name" --timeout=1s
  wait_for 60 "CoreDNS ready" curl -sf --max-time 2 "http://127.0.0.1:$(cat "$state/ports/coredns-ready")/ready"
  # The images of deploy/dev/images.sh, when they were built before `up`.
  CODEBASE_MCP_K8S_STATE=$state "$here/images.sh" --import >/dev/null
}

# Pods of the real node stop through the kubelet first (it tears down their
# network and volumes), with the controllers gone so nothing replaces them.
drain_real_node() {
  local bin kubectl sock=$state/containerd/containerd.sock
  bin=$(cat "$state/bin-dir" 2>/dev/null) || return 0
  kubectl=("$bin/kubectl" --kubeconfig="$state/kubeconfig" --request-timeout=5s)
  alive kubelet && readyz || return 0
  stop_components kube-controller-manager kube-scheduler
  "${kubectl[@]}" delete pods --all-namespaces --field-selector "spec.nodeName=$real_node_name" \
    --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
  local deadline=$(( $(date +%s) + 30 ))
  while (( $(date +%s) < deadline )); do
    [[ -z $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null) ]] && break
    sleep 0.5
  done
}

undo_host() {
  [[ -d $state/host ]] || return 0
  local bin runc_root
  bin=$(cat "$state/bin-dir" 2>/dev/null || true)
  # Whatever still runs: containers (by runc's own list), then their shims.
  runc_root=$state/containerd/runc/k8s.io
  if [[ -d $runc_root ]]; then
    local id
    for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
      runc --root "$runc_root" kill --all "$id" KILL 2>/dev/null || true
      runc --root "$runc_root" delete --force "$id" 2>/dev/null || true
    done
  fi
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $state/containerd/containerd.sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Mounts under the state dir (the kubelet's bind mount of its root, volumes,
  # container root filesystems), deepest first.
  local m
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(
    awk -v p="$state/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  # The pods' network namespaces (their veths go with them).
  local ns
  for ns in $(ls /run/netns 2>/dev/null); do
    if [[ $ns == cni-* ]] && ! grep -qxF "$ns" "$state/host/netns-before" 2>/dev/null; then
      ip netns delete "$ns" 2>/dev/null || true
    fi
  done
  # kube-proxy's chains (its own cleanup), then the kubelet's (KUBE-FIREWALL,
  # KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT, ...): no one else on the machine
  # runs a kube-proxy or kubelet (check_real_node_host).
  if [[ -n $bin && -x $bin/kube-proxy ]]; then "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  local ipt table chain rule
  for ipt in iptables ip6tables; do
    for table in filter nat mangle; do
      while read -r rule; do
        eval "$ipt -w -t $table ${rule/-A /-D }" 2>/dev/null || true
      done < <($ipt -w -t "$table" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-' || true)
      for chain in $($ipt -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
        $ipt -w -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $($ipt -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
        $ipt -w -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  if [[ -f $state/host/forward-chain ]]; then
    iptables -w -D FORWARD -j "$forward_chain" 2>/dev/null || true
    iptables -w -F "$forward_chain" 2>/dev/null || true
    iptables -w -X "$forward_chain" 2>/dev/null || true
  fi
  if [[ -f $state/host/bridge ]]; then ip link delete "$bridge" 2>/dev/null || true; fi
  # The kubelet's pod cgroups (cgroupfs driver), leaves first.
  local root
  for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/unified/kubepods; do
    [[ -d $root ]] && find "$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  # Its links to the container logs.
  find /var/log/containers -maxdepth 1 -type l -lname "$state/*" -delete 2>/dev/null || true
  # And the sysctls it (or the bridge plugin) set.
  local kv
  while read -r kv; do sysctl -qw "$kv" 2>/dev/null || true; done < "$state/host/sysctls"
  rm -rf "$state/host"
}

# --- stopping --------------------------------------------------------------------

stop_components() {
  local c pids=()
  # All at once: each takes 1-3 s to shut down and the state goes anyway.
  for c in "$@"; do
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

stop_all() {
  if real_node; then
    drain_real_node
    # The node's processes before the API server, so none of them complains
    # about it going away while still holding containers.
    stop_components "${node_components[@]}"
  fi
  # shellcheck disable=SC2046
  stop_components $(components)
}

cmd_down() {
  stop_all
  undo_host
  rm -rf "$state"
  log "down (removed $state)"
}

cmd_status() {
  local c rc=0
  [[ -d $state ]] || { echo "not up (no $state)"; return 1; }
  for c in $(components); do
    if alive "$c"; then printf '%-24s running (pid %s)\n' "$c" "$(pid_of "$c")"
    else printf '%-24s not running\n' "$c"; rc=1; fi
  done
  if readyz; then echo "API https://$(api_host):$(api_port) ready"
  else echo "API not ready"; rc=1; fi
  if real_node; then echo "real node $real_node_name (bridge $bridge, $pod_cidr)"; fi
  return $rc
}

case "${1:-}" in
  up)
    case "${2:-}" in
      --real-node) cmd_up 1 ;;
      "") cmd_up 0 ;;
      *) echo "usage: $0 up [--real-node]" >&2; exit 2 ;;
    esac ;;
  down) cmd_down ;;
  env) [[ -f $state/kubeconfig ]] || die "not up (no $state/kubeconfig)"; print_env ;;
  status) cmd_status ;;
  # Exit 0 if this machine can run the real node, else say why on the last line.
  check-real-node) check_real_node_host ;;
  *) echo "usage: $0 up [--real-node]|down|env|status" >&2; exit 2 ;;
esac
