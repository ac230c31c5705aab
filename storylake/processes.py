"""Child processes (the Sail server, Streamlit): tied to their parent's life, stopped politely, then for good."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM, wait up to `grace_s`, then SIGKILL; returns once the process is reaped."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved in the parent (Linux only): the child between fork and exec then only calls it, with
    no dlopen whose loader lock another thread of the parent may have held at the fork."""
    if sys.platform != "linux":
        return None
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]


_PRCTL = _prctl()


def die_with_parent() -> None:
    """In a child before exec (Popen preexec_fn): the kernel sends it SIGKILL when its parent dies, even by kill -9,
    so a killed parent leaves no child running under PID 1 (Linux prctl PR_SET_PDEATHSIG; a no-op elsewhere). The
    parent here is the thread that started the child (prctl(2)): it must outlive the child."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


@contextmanager
def forwarding_signals(proc: subprocess.Popen, signals: tuple[signal.Signals, ...] = (
        signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """While inside: `signals` received by this process are passed on to `proc` (which then shuts down and is
    waited for by the caller), instead of ending this process and orphaning `proc`."""
    previous = {sig: signal.signal(sig, lambda signum, _frame: proc.send_signal(signum)) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
