"""What the ``sparc`` command line logs to stderr, and how it keeps secrets out of it.

- default: the library's warnings (``sparc.client`` WARNING records, e.g. each retry) as one
  ``Warning: ...`` line each, so a slow or failing service is never silent;
- ``--quiet`` (commands that have it): none of those;
- ``-v``: every request (``INFO sparc.client: GET ... -> 200``), once: httpx's own request log
  is left out (it would repeat each request, with its presigned URL in full);
- ``-vv``: debug records of every logger, httpx and httpcore included.

Every line goes through :class:`RedactingFilter`: query values whose names say key, secret,
token, signature, credential, password or auth, and ``user:password@`` in URLs, become
``***``. Example::

    configure(verbose=1)   # in the root command
    logging.getLogger("httpx").info("GET https://s3/x?X-Amz-Signature=abc")   # not shown
    logging.getLogger("sparc.client").info("GET https://s3/x?X-Amz-Signature=abc")
    # -> INFO sparc.client: GET https://s3/x?X-Amz-Signature=***

Only :mod:`logging` and :mod:`click` are imported here (``sparc --help`` stays light).
"""

from __future__ import annotations

import logging
import re
import sys
from collections import deque

import click

from sparc.client.config import SECRET_PARAM_WORDS

LIBRARY_LOGGER = "sparc.client"
#: Loggers that repeat each request (with its full URL) at INFO; shown only with ``-vv``.
TRANSPORT_LOGGERS = ("httpx", "httpcore")
#: Words that mark a query parameter as secret: the library's own list (a light import).
SECRET_WORDS = SECRET_PARAM_WORDS
MASK = "***"
_WORDS = "|".join(SECRET_WORDS)
#: ``?name=value`` / ``&name=value`` where the name holds a secret word (any case).
_SECRET_QUERY = re.compile(
    rf"(?i)([?&;](?:[^=&;?#\s\"'<>]*(?:{_WORDS})[^=&;?#\s\"'<>]*)=)[^&;#\s\"'<>]*")
#: ``scheme://user:password@`` (user info in a URL).
_USER_INFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s\"'<>]+@")
#: ``(b'authorization', b'Bearer ...')``: a header in httpcore's debug records.
_SECRET_HEADER = re.compile(rf"(?i)(\(b?['\"][^'\"]*(?:{_WORDS})[^'\"]*['\"], b?['\"])[^'\"]*")
_SHOWN_MAX = 64


def redact(text: str) -> str:
    """``text`` with every secret query value and URL user info replaced by ``***``.

    Example: ``redact("GET https://u:p@h/o?X-Amz-Signature=ab&x=1")``
    == ``"GET https://***@h/o?X-Amz-Signature=***&x=1"``.
    """
    if "=" not in text and "@" not in text and "(" not in text:
        return text
    text = _SECRET_QUERY.sub(rf"\1{MASK}", text)
    return _SECRET_HEADER.sub(rf"\1{MASK}", _USER_INFO.sub(rf"\1{MASK}@", text))


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and its traceback text) through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class _EchoHandler(logging.Handler):
    """Writes each record as one line to the *current* stderr (click's, under ``CliRunner``),
    above the progress bar when one is drawn."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            _shown.append(record.getMessage())
        try:
            bars = sys.modules.get("tqdm")
            if bars is not None:  # a progress bar may be drawn: write above it, then redraw it
                bars.tqdm.write(line, file=sys.stderr)
            else:
                click.echo(line, err=True)
        except (OSError, ValueError):  # stderr is gone: nothing more to say
            pass


_handler: _EchoHandler | None = None
_saved_levels: dict[str, int] = {}
_verbose = 0
_shown: deque[str] = deque(maxlen=_SHOWN_MAX)  # recent warning texts, for already_shown()


def configure(verbose: int) -> None:
    """Install the CLI's one log handler for ``verbose`` (0, 1 = ``-v``, 2+ = ``-vv``).

    Replaces a handler installed earlier (so repeated in-process runs do not stack handlers);
    :func:`unconfigure` removes it.
    """
    global _handler, _verbose
    unconfigure()
    _verbose = verbose
    handler = _EchoHandler()
    handler.addFilter(RedactingFilter())
    if verbose:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        target = logging.getLogger()
        level = logging.DEBUG if verbose > 1 else logging.INFO
        _saved_levels[""] = target.level
        target.setLevel(level)
        if verbose < 2:
            for name in TRANSPORT_LOGGERS:
                _saved_levels[name] = logging.getLogger(name).level
                logging.getLogger(name).setLevel(logging.WARNING)
    else:  # the library's warnings only, as the library warnings are shown: "Warning: ..."
        handler.setFormatter(logging.Formatter("Warning: %(message)s"))
        handler.setLevel(logging.WARNING)
        target = logging.getLogger(LIBRARY_LOGGER)
    target.addHandler(handler)
    _handler = handler


def quiet() -> None:
    """``--quiet``: the library's warnings are not shown (``-v`` logging stays as asked)."""
    if _handler is not None and not _verbose:
        _handler.setLevel(logging.CRITICAL + 1)


def unconfigure() -> None:
    """Remove the handler :func:`configure` installed and restore the levels it changed."""
    global _handler
    if _handler is not None:
        for name in ("", LIBRARY_LOGGER):
            logging.getLogger(name or None).removeHandler(_handler)
        _handler = None
    for name, level in _saved_levels.items():
        logging.getLogger(name or None).setLevel(level)
    _saved_levels.clear()


def already_shown(message: str) -> bool:
    """Whether a warning with this text was just shown as a log line (the library often both
    logs and ``warnings.warn``\\ s the same text: the CLI shows it once)."""
    return redact(message) in _shown
