"""A plain `pip install codebase-mcp` (no `[kubernetes]` extra) runs everything local: nothing on
the local paths imports kopf or the Kubernetes client, and the operator says which extra it needs.

The extra's absence is simulated in a child process by an import hook that refuses both packages.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

WITHOUT_EXTRA = textwrap.dedent(
    """
    import sys

    class _NotInstalled:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.split(".")[0] in ("kopf", "kubernetes"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name.split(".")[0])
            return None

    sys.meta_path.insert(0, _NotInstalled)
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def test_the_local_front_ends_and_runners_import_without_the_kubernetes_extra() -> None:
    done = _run(
        """
        from mcp_server.frontends import cli, mcp_tools, operations, quick
        from mcp_server.runners import local, supervisor
        from mcp_server.indexer import entrypoint
        assert "kopf" not in sys.modules and "kubernetes" not in sys.modules
        """
    )
    assert done.returncode == 0, done.stderr


def test_the_operator_command_names_the_extra_it_needs() -> None:
    done = _run(
        """
        from mcp_server.frontends import cli
        sys.exit(cli.main(["operator"]))
        """
    )
    assert done.returncode == 1, done.stderr
    assert "pip install 'codebase-mcp[kubernetes]'" in done.stderr
