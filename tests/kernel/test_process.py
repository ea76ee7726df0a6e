"""Children that end with the process that started them (kernel.process), as the launcher starts every process."""
from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from nexuscart.launcher import REPO_ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")

PARENT = """
import subprocess, sys, time
from kernel.process import child_preexec
child = subprocess.Popen(["sleep", "300"], start_new_session=True, preexec_fn=child_preexec())
print(child.pid, flush=True)
time.sleep(300)
"""


def test_a_child_ends_when_its_parent_is_killed_without_a_chance_to_stop_it() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        assert child.is_running()

        parent.kill()
        parent.wait()

        child.wait(timeout=15)  # raises TimeoutExpired if the child outlives its parent
    finally:
        if child.is_running():
            child.kill()
