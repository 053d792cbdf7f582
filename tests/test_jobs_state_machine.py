"""The job state machine: transitions are conditional, terminal states are final."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from mcp_server.core.errors import InvalidTransition, JobNotFound
from mcp_server.core.jobs import ALLOWED_FROM, TERMINAL_STATUSES, JobStatus, JobStore

P, R, C, F, X = (
    JobStatus.PENDING,
    JobStatus.RUNNING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
# The design (docs/design.md, "The job state machine"), written out here rather than read from
# the implementation's own table: (from, to) pairs that a transition may take, and no others.
DESIGNED_TRANSITIONS = {(P, R), (P, F), (P, X), (R, C), (R, F), (R, X)}

ORDER = {
    JobStatus.PENDING: 0,
    JobStatus.RUNNING: 1,
    JobStatus.COMPLETED: 2,
    JobStatus.FAILED: 2,
    JobStatus.CANCELLED: 2,
}


def _new(store: JobStore) -> uuid.UUID:
    return store.create(repo_path="/tmp/r", project_id="default").id


def test_a_new_job_is_pending_with_zero_counters(clean_db: Engine) -> None:
    store = JobStore(clean_db)
    job = store.get(_new(store))
    assert job.status is JobStatus.PENDING
    assert (job.files_indexed, job.chunks_created) == (0, 0)
    assert job.started_at is None and job.completed_at is None


def test_the_happy_path_sets_timestamps(clean_db: Engine) -> None:
    store = JobStore(clean_db)
    job_id = _new(store)
    assert store.mark_running(job_id)
    running = store.get(job_id)
    assert running.status is JobStatus.RUNNING and running.started_at is not None
    assert store.complete(job_id, files_indexed=3, chunks_created=7)
    done = store.get(job_id)
    assert done.status is JobStatus.COMPLETED
    assert done.completed_at is not None and done.completed_at >= running.started_at  # type: ignore[operator]
    assert (done.files_indexed, done.chunks_created) == (3, 7)


def test_a_pending_job_cannot_complete_without_running(clean_db: Engine) -> None:
    store = JobStore(clean_db)
    job_id = _new(store)
    assert not store.complete(job_id)
    assert store.get(job_id).status is JobStatus.PENDING


def test_a_terminal_job_never_changes_again(clean_db: Engine) -> None:
    store = JobStore(clean_db)
    job_id = _new(store)
    store.mark_running(job_id)
    assert store.fail(job_id, "boom")
    assert not store.complete(job_id)
    assert not store.cancel(job_id)
    assert not store.mark_running(job_id)
    job = store.get(job_id)
    assert job.status is JobStatus.FAILED and job.error_message == "boom"


def test_nothing_transitions_into_pending(clean_db: Engine) -> None:
    store = JobStore(clean_db)
    with pytest.raises(InvalidTransition):
        store.transition(_new(store), JobStatus.PENDING)


def test_progress_is_only_recorded_while_running(clean_db: Engine) -> None:
    store = JobStore(clean_db)
    job_id = _new(store)
    assert not store.update_progress(job_id, files_seen=5)
    store.mark_running(job_id)
    assert store.update_progress(job_id, files_seen=5, files_total=10, phase="parsing")
    job = store.get(job_id)
    assert (job.files_seen, job.files_total, job.phase, job.percent) == (5, 10, "parsing", 50.0)
    store.cancel(job_id)
    assert not store.update_progress(job_id, files_seen=6)
    assert store.get(job_id).files_seen == 5


def test_creating_with_an_existing_job_id_adopts_the_row(clean_db: Engine) -> None:
    store = JobStore(clean_db)
    job_id = uuid.uuid4()
    first = store.create(repo_path="/a", project_id="p", job_id=job_id)
    store.mark_running(job_id)
    second = store.create(repo_path="/b", project_id="q", job_id=job_id)
    assert second.id == first.id and second.repo_path == "/a" and second.status is JobStatus.RUNNING


def test_an_unknown_job_is_reported_as_not_found(clean_db: Engine) -> None:
    with pytest.raises(JobNotFound):
        JobStore(clean_db).get(uuid.uuid4())


def test_a_job_is_not_found_under_another_project(clean_db: Engine) -> None:
    store = JobStore(clean_db)
    job_id = store.create(repo_path="/a", project_id="alpha").id
    with pytest.raises(JobNotFound):
        store.get(job_id, project_id="beta")


def test_the_allowed_transitions_are_exactly_the_design(clean_db: Engine) -> None:
    implemented = {(source, target) for target, sources in ALLOWED_FROM.items() for source in sources}
    assert implemented == DESIGNED_TRANSITIONS
    assert not any(source in TERMINAL_STATUSES for source, _ in DESIGNED_TRANSITIONS)


EVENTS = st.lists(
    st.sampled_from([JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=EVENTS)
def test_any_sequence_of_events_never_moves_a_job_backwards(
    clean_db: Engine, events: list[JobStatus]
) -> None:
    store = JobStore(clean_db)
    job_id = _new(store)
    current = JobStatus.PENDING
    for event in events:
        applied = store.transition(job_id, event, error_message="x" if event is JobStatus.FAILED else None)
        after = store.get(job_id).status
        assert applied == ((current, event) in DESIGNED_TRANSITIONS)
        assert ORDER[after] >= ORDER[current]
        if current in TERMINAL_STATUSES:
            assert after is current
        current = after
