"""Process lifetime: children that end with the process that started them.

`make run`'s launcher starts every process of the platform. If the launcher dies without a chance to stop them
(SIGKILL, the OOM killer), nothing else would: each child leads its own session (so a terminal's Ctrl-C reaches
only the launcher, which stops them in order). Linux's PR_SET_PDEATHSIG closes that gap: the kernel sends the
child a signal when the thread that started it ends. Elsewhere this is a no-op.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1

_libc: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        # Loaded here, in the parent: a preexec_fn should not load libraries between fork and exec.
        _libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(sig: int = signal.SIGTERM, parent_pid: int | None = None) -> None:
    """Ask the kernel to send `sig` to this process when its parent ends.

    `parent_pid`: the pid the caller expects as its parent; if that parent already ended before the request took
    effect (the child was re-parented), the signal is sent at once instead.
    """
    if _libc is None:
        return
    _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def child_preexec(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: the child gets `sig` when this process (more exactly: the calling
    thread, so spawn from the main thread) ends. It runs after Popen's `user=` switch, which would clear it."""
    return functools.partial(die_with_parent, sig, os.getpid())


# Set by the launcher in the environment of the processes it starts. A process that forks workers of its own
# (uvicorn with several workers) calls `die_with_parent_if_asked()` in each of them, so they end with it too.
DIE_WITH_PARENT_ENV = "NEXUSCART_DIE_WITH_PARENT"


def die_with_parent_if_asked() -> None:
    if os.environ.get(DIE_WITH_PARENT_ENV):
        die_with_parent(signal.SIGTERM, None)
        if os.getppid() == 1:  # the parent is already gone: adopted by init before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)
