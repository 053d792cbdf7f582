"""Run a Python snippet the way an ordinary user would, so permission tests also run as root.

Root reads every directory whatever its mode (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), and CI runs
as root here, so a test of "an unreadable directory is refused" would otherwise be skipped on every
run that matters. As root the snippet runs under `setpriv` with those two capabilities dropped
from the bounding and inheritable sets: still uid 0 (it can read the test's own files and reach the
embedded database), but a mode-000 directory is refused to it as to anyone else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

_DROP = "-dac_override,-dac_read_search"


def command_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE for this test")
    return [setpriv, f"--inh-caps={_DROP}", f"--bounding-set={_DROP}"]


def run_python(code: str, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command_prefix(), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=dict(os.environ),
    )
