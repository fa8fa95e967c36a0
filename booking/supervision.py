"""A dramatiq worker process never outlives dramatiq's main process.

dramatiq's main process supervises its worker processes; if it is SIGKILLed (an OOM
kill, a supervisor's hard stop), the workers would be orphaned and keep deciding with
nobody to restart or stop them, while the supervisor above starts a fresh set beside
them. Each worker process asks the kernel to kill it when its parent dies (Linux's
PR_SET_PDEATHSIG); its open decision transaction is then rolled back and the re-drive
hands its provider to the new set."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

import dramatiq

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    """Have the kernel SIGKILL this process when its parent exits. False where the
    kernel offers no such thing (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("could not tie this worker process to its parent: errno %s", ctypes.get_errno())
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)
    return True


class DieWithParent(dramatiq.Middleware):
    """In each worker process, before it consumes anything."""

    def after_process_boot(self, broker):
        die_with_parent()
