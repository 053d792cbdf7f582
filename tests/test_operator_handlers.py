"""How the operator's event handlers treat a database or API server that is away for a while."""

from __future__ import annotations

import logging

import pytest
from codebase_operator.handlers import _left_to_the_resync
from codebase_operator.objects import describe_unreachable
from sqlalchemy.exc import OperationalError

from mcp_server.runners.kube_api import Unavailable

POD = {"kind": "Pod", "metadata": {"name": "cbm-index-1234-abcde"}}


def database_away() -> OperationalError:
    cause = Exception(
        'connection is bad: connection to server on socket "/run/pg/.s.PGSQL.5432" failed\n'
        "\tIs the server running locally and accepting connections on that socket?"
    )
    return OperationalError("SELECT 1", {}, cause)


def test_an_outage_is_one_line_naming_what_is_away() -> None:
    line = describe_unreachable(database_away())
    assert line.startswith("the database is unreachable (connection is bad")
    assert "\n" not in line
    assert describe_unreachable(Unavailable("timed out")).startswith("the Kubernetes API is unreachable")


def test_an_event_that_meets_an_outage_is_left_to_the_resync_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="codebase_operator"), _left_to_the_resync(POD):  # type: ignore[arg-type]
        raise database_away()
    (record,) = caplog.records
    assert record.getMessage().startswith("Pod cbm-index-1234-abcde not reflected yet, the resync will")
    assert record.exc_info is None


def test_an_event_that_meets_a_bug_still_raises() -> None:
    with pytest.raises(KeyError), _left_to_the_resync(POD):  # type: ignore[arg-type]
        raise KeyError("status")
