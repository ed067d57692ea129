"""Shared fixtures: one real sandbox server (``sparc sandbox serve --port 0``) per test session.

Tests that need faults or real delays start a sandbox of their own (``sandbox_factory``), so
nothing leaks into the shared one; a test that sets faults on the shared sandbox anyway has them
cleared when it ends.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest

from sparc.sandbox.process import SandboxProcess

# A test run started in the background of a shell without job control inherits SIGINT ignored,
# and so would every `sparc` child; the Ctrl-C tests need the ordinary disposition (children
# get SIG_DFL back at exec, since a Python handler is not inherited).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def unnamed_files(tmp_path_factory: pytest.TempPathFactory) -> bool:
    """Whether downloads here receive small files unnamed: Linux ``O_TMPFILE``, taken by the
    file system of the tests' temporary folders (overlayfs on older kernels, NFS... refuse it:
    the client then uses named partial files), and ``/proc`` to link them by."""
    import os

    if not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"):
        return False
    try:
        fd = os.open(tmp_path_factory.getbasetemp(), os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:
        return False
    os.close(fd)
    return True


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """The sandbox, started once; ``sandbox.url`` is its base URL."""
    with SandboxProcess(tmp_path_factory.mktemp("sandbox"), "--time-scale", "0") as sb:
        yield sb


@pytest.fixture(scope="session")
def sandbox_url(sandbox: SandboxProcess) -> str:
    return sandbox.url


@pytest.fixture(autouse=True)
def _shared_sandbox_without_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Clear fault rules a test left on the shared sandbox."""
    yield
    if "sandbox" in request.fixturenames:
        sb: SandboxProcess = request.getfixturevalue("sandbox")
        if sb.faults():
            sb.clear_faults()


@pytest.fixture
def sandbox_factory(tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Callable[..., SandboxProcess]]:
    """Start extra sandboxes for one test, stopped when it ends. Example::

        sb = sandbox_factory("--time-scale", "1", "--seed", "3")
        sb.set_faults([{"route": "GET /_assets/*", "kind": "slow", "seconds": 2}])
    """
    started: list[SandboxProcess] = []

    def start(*args: str) -> SandboxProcess:
        sb = SandboxProcess(tmp_path_factory.mktemp("sandbox"), *args).start()
        started.append(sb)
        return sb

    yield start
    for sb in started:
        sb.stop()
