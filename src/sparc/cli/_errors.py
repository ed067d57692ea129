"""Errors on the command line, handled in one place: :class:`SparcGroup`, the root group.

Every error a command raises becomes ONE line on stderr naming what went wrong and the
path or URL it concerns, with exit status 1; Ctrl-C exits 130; click's usage errors stay
click's (exit 2). ``sparc --traceback ...`` or ``SPARC_DEBUG=1`` prints the traceback
instead of the line. Library warnings are one ``Warning: ...`` line each. Example::

    $ sparc download 90 -o /etc/passwd/data
    Error: Not a directory: /etc/passwd/data
    $ sparc datasets search cancer --json > /dev/full
    Error: No space left on device: <stdout>
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Sequence
from typing import IO, Any, NoReturn

import click

#: Exit status after Ctrl-C / SIGINT (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
INTERRUPTED_MESSAGE = "interrupted"
#: Commands that write files, whose partial files a rerun resumes.
RESUMABLE_COMMANDS = {  # command -> what the interrupted-line adds
    "download": "; partial files kept, run again to resume",
    "upload": "; run the same command again to resume (imported files are skipped)",
}
#: Longest error line shown (server messages can be huge, e.g. an echoed 100 kB query).
MAX_MESSAGE = 1000
STDOUT_NAME = "<stdout>"
#: Seconds after SIGINT by which the process has exited, whatever its threads are doing.
HARD_STOP_AFTER = 1.2
#: Seconds the hard stop waits for the "interrupted" line and the flush of the streams (a
#: thread holding stderr's lock could block them for ever) before it exits anyway.
LAST_WORDS_WAIT = 0.4
_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")


class OneLineError(click.ClickException):
    """A failure shown as ``Error: <one line>`` on stderr, exit 1."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class BadArgumentLine(OneLineError):
    """A bad value the user typed (e.g. ``--config`` naming no file): one line, exit 2."""

    exit_code = 2


def one_line(text: str) -> str:
    """``text`` on a single line, at most :data:`MAX_MESSAGE` characters.

    Line breaks (and the indentation after them) become one space; other spacing stays.
    Example: ``one_line("a\\n  b") == "a b"``.
    """
    flat = _LINE_BREAKS.sub(" ", text).strip()
    return flat if len(flat) <= MAX_MESSAGE else flat[: MAX_MESSAGE - 1] + "…"


def describe(exc: BaseException) -> str:
    """One line saying what went wrong, and where.

    Examples: ``NotFoundError: GET http://127.0.0.1:8000/discover/datasets/9 -> 404 Not Found``,
    ``Not a directory: /tmp/file/out``, ``Broken pipe: <stdout>``.
    """
    from sparc.client.errors import SparcError  # light: the errors module imports nothing

    if isinstance(exc, OSError) and not isinstance(exc, SparcError):
        return _describe_os_error(exc)
    text = str(exc) or "(no message)"
    if not isinstance(exc, SparcError):  # a bug or an unexpected failure: still one line
        return f"unexpected {type(exc).__name__}: {text} (run with --traceback for details)"
    url = getattr(exc, "url", "") or ""
    if url and url not in text:
        text += f" ({getattr(exc, 'method', '')} {url})".replace("( ", "(")
    path = getattr(exc, "path", None)
    if path and str(path) not in text:
        text += f" ({path})"
    return f"{type(exc).__name__}: {text}"


def _describe_os_error(exc: OSError) -> str:
    what = exc.strerror or (errno.errorcode.get(exc.errno or 0) if exc.errno else None)
    what = what or str(exc) or type(exc).__name__
    where = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    if not where and exc.errno == errno.EPIPE:  # only a pipe (our stdout) breaks this way
        where = [STDOUT_NAME]
    return f"{what}: {' -> '.join(where)}" if where else f"{type(exc).__name__}: {what}"


def debug_requested(ctx: click.Context | None) -> bool:
    """``--traceback`` was given, or ``SPARC_DEBUG`` is set to something other than 0/empty."""
    root = ctx.find_root() if ctx is not None else None
    if root is not None and root.params.get("traceback"):
        return True
    return os.environ.get("SPARC_DEBUG", "").strip() not in ("", "0", "false", "no")


class _NamedStdout:
    """``sys.stdout`` whose write errors name it: ``OSError(ENOSPC, ..., "<stdout>")``.

    Everything else is delegated, so click and ``json.dump`` use it as the real stream.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def _named(self, exc: OSError) -> OSError:
        if exc.filename is not None or exc.errno is None:
            return exc
        return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), STDOUT_NAME)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._named(exc) from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._named(exc) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _silence_stdout() -> None:
    """After stdout broke (closed pipe, full disk), point its descriptor at /dev/null so the
    interpreter's last flush neither fails nor prints "Exception ignored ..."."""
    try:  # the stream in use (under click's CliRunner it has no descriptor: nothing to do)
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    if fd < 0:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


def _is_stdout_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.filename == STDOUT_NAME


def _report(ctx: click.Context, exc: BaseException, line: str, exit_code: int) -> NoReturn:
    """Show ``exc`` as ``line`` (or its traceback when debugging), then exit ``exit_code``."""
    if debug_requested(ctx):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        if exit_code == EXIT_INTERRUPTED:
            _show_interrupted(line)
        raise click.exceptions.Exit(exit_code)
    if exit_code == EXIT_INTERRUPTED:
        _show_interrupted(line)
        raise click.exceptions.Exit(exit_code)
    raise OneLineError(line)


def _interrupted_line(ctx: click.Context | None) -> str:
    command = ctx.invoked_subcommand if ctx is not None else None
    return INTERRUPTED_MESSAGE + RESUMABLE_COMMANDS.get(command or "", "")


class _HardStop:
    """Ctrl-C always ends the process: at most :data:`HARD_STOP_AFTER` s after SIGINT.

    The first SIGINT raises KeyboardInterrupt as usual (the command stops its transfers and
    exits 130 after the "interrupted" line) and wakes a watcher thread; a worker thread still
    blocked on a socket when its time runs out would keep the interpreter from exiting, so the
    watcher then shows the line (if not shown yet), flushes the streams and ends the process
    with ``os._exit(130)``. The handler only writes a byte to a pipe: starting a thread there
    takes locks the interrupted main thread may hold. The line and the flush run on a thread of
    their own, given :data:`LAST_WORDS_WAIT` s: a lock held by a stuck thread (stderr's, this
    one's) never keeps the process alive; the line then goes straight to file descriptor 2.
    Installed by :func:`sparc.cli.main` only (never under ``CliRunner``).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.line_shown = False
        self.line_written = False
        self.wake_fd: int | None = None  # the pipe's write end, once installed
        self.ctx: click.Context | None = None  # the running root context, for the line

    def install(self) -> None:
        """Handle SIGINT, unless it is ignored (``nohup``, ``&`` in a script) or not ours."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            read_fd, self.wake_fd = os.pipe()
            threading.Thread(target=self.watch, args=(read_fd,), name="sparc-hard-stop",
                             daemon=True).start()
            signal.signal(signal.SIGINT, self.on_sigint)

    def on_sigint(self, signum: int, frame: Any) -> None:
        if self.wake_fd is not None:
            try:
                os.write(self.wake_fd, b"!")
            except OSError:
                pass
        raise KeyboardInterrupt

    def show_line(self, line: str) -> None:
        with self.lock:
            if self.line_shown:
                return
            self.line_shown = True
        _echo_err(line)
        self.line_written = True

    def watch(self, read_fd: int) -> None:
        try:
            os.read(read_fd, 1)  # the first SIGINT
        except OSError:
            return
        time.sleep(HARD_STOP_AFTER)
        line = _interrupted_line(self.ctx)
        done = threading.Event()
        threading.Thread(target=self._last_words, args=(line, done), name="sparc-last-words",
                         daemon=True).start()
        if not done.wait(LAST_WORDS_WAIT) and not self.line_written:
            try:  # past any lock: the line must still reach the user
                os.write(2, f"{line}\n".encode(errors="replace"))
            except OSError:
                pass
        os._exit(EXIT_INTERRUPTED)

    def _last_words(self, line: str, done: threading.Event) -> None:
        self.show_line(line)
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        done.set()


_hard_stop = _HardStop()


def install_hard_stop() -> None:
    """Make Ctrl-C end the process within :data:`HARD_STOP_AFTER` s (see :class:`_HardStop`)."""
    _hard_stop.install()


def _show_interrupted(line: str) -> None:
    _hard_stop.show_line(line)


def _show_warning_line(message: Warning | str, category: type[Warning], filename: str,
                       lineno: int, file: IO[str] | None = None, line: str | None = None) -> None:
    """A library warning as ``Warning: <one line>`` on stderr (no source file and line), unless
    the same text was just shown as a log line."""
    from sparc.cli._logging import already_shown, redact

    if already_shown(str(message)):
        return
    _echo_err(f"Warning: {one_line(redact(str(message)))}")


def _echo_err(line: str) -> None:
    try:
        click.echo(line, err=True)
    except (OSError, ValueError):  # stderr is gone too: the exit status still tells
        pass


class SparcGroup(click.Group):
    """The root ``sparc`` group: runs a command and turns whatever it raises into one line.

    ``SparcError`` and ``OSError`` -> ``Error: <what>: <path or URL>``, exit 1;
    KeyboardInterrupt (SIGINT) -> "interrupted; ...", exit 130; click's own exceptions
    (usage errors, ``--help``, exits) pass through unchanged.
    """

    def main(self, args: Sequence[str] | None = None, *a: Any, **kw: Any) -> Any:
        real_stdout = sys.stdout
        if real_stdout is not None and not isinstance(real_stdout, _NamedStdout):
            sys.stdout = _NamedStdout(real_stdout)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning_line
                return super().main(args, *a, **kw)
        finally:
            if isinstance(sys.stdout, _NamedStdout):
                sys.stdout = real_stdout

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        """Parse the root options; ``--help``/``--version`` write to stdout here, before
        :meth:`invoke`, so a broken stdout is caught here too."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except OSError as exc:
            if _is_stdout_error(exc) or exc.errno == errno.EPIPE:
                _silence_stdout()
            if debug_requested(None):
                raise
            raise OneLineError(describe(exc)) from exc

    def invoke(self, ctx: click.Context) -> Any:
        _hard_stop.ctx = ctx
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a full disk or a closed pipe shows here, not at exit
            return result
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except KeyboardInterrupt as exc:
            _report(ctx, exc, _interrupted_line(ctx), EXIT_INTERRUPTED)
        except Exception as exc:
            if _is_stdout_error(exc) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
                _silence_stdout()
            _report(ctx, exc, describe(exc), 1)
