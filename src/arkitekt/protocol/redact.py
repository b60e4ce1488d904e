"""Secrets never reach a log: every log record of the process is scrubbed when it is created.

:func:`install_redaction` wraps the logging record factory, so it covers every logger, also
loggers created later and those of third-party libraries (``websockets``, ``httpx``,
``httpcore``, ``uvicorn``). A record's message and its arguments are scrubbed of HTTP
credentials (``Authorization: Bearer ...``, ``Basic ...``, cookies) and of secret parameters in
query strings, forms and JSON-like text (``token=``, ``access_token=``, ``client_secret=``,
``device_code=``, ...), and of cloud credentials (``SecretAccessKey``, ``SessionToken`` in
JSON, keyword arguments and the XML of an S3 or STS answer). The client installs it when an
app is built, the server when it starts.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["REDACTED", "install_redaction", "redact"]

REDACTED = "[redacted]"

# Names whose values are secrets wherever they appear as name=value, "name": "value", name: value.
_SECRET_NAMES = "|".join(
    ("access_token", "refresh_token", "id_token", "claim_token", "token", "client_secret",
     "secret", "password", "device_code", "nonce", "operator_secret", "arkitekt_operator",
     "api_key", "apikey", "secret_access_key", "secretaccesskey", "aws_secret_access_key",
     "session_token", "sessiontoken", "aws_session_token")
)  # fmt: skip
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values: "Bearer abc", "Basic abc=", also inside reprs of header lists.
    # (a value of 8 or more token characters, so prose such as "bearer token" stays readable).
    (
        re.compile(r"\b([Bb]earer|[Bb]asic|BEARER|BASIC)(\s+)[A-Za-z0-9._~+/=-]{8,}"),
        rf"\1\2{REDACTED}",
    ),
    # Whole header values that carry credentials without a scheme (cookies, raw authorization).
    (
        re.compile(
            r"(?i)\b((?:proxy-)?authorization|(?:set-)?cookie|x-api-key)"
            r"(['\"]?\s*[:=,]\s*(?-i:b)?['\"]?)(?!\[redacted\])[^\r\n'\"]+"
        ),
        rf"\1\2{REDACTED}",
    ),
    # Cloud credentials in XML: <SecretAccessKey>...</SecretAccessKey> (an STS AssumeRole answer).
    (
        re.compile(r"(?i)(<(?:Secret_?Access_?Key|Session_?Token)>)[^<]+"),
        rf"\1{REDACTED}",
    ),
    # name=value in query strings, forms, cookies; "name": "value" in JSON and dict reprs.
    (
        re.compile(
            rf"(?i)(?<![\w-])((?:{_SECRET_NAMES})(?:['\"])?(?:\s*[:=]\s*)(?-i:b)?['\"]?)"
            r"(?!\[redacted\])[^\s&'\",;)\]}]+"
        ),
        rf"\1{REDACTED}",
    ),
)
_lock = threading.Lock()


def redact(text: str) -> str:
    """``text`` with every credential and secret parameter replaced by ``[redacted]``.

    Example:
        >>> redact("GET /ws?token=abc&x=1 HTTP/1.1")
        'GET /ws?token=[redacted]&x=1 HTTP/1.1'
        >>> redact("('authorization', 'Bearer abc.def.ghi')")
        "('authorization', '[redacted]')"

    """
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not break logging
        return f"<unprintable {type(value).__name__}>"


def _message(record: logging.LogRecord) -> tuple[str, bool]:
    """The record's message as handlers will show it, and whether it could be formatted."""
    try:
        return record.getMessage(), True
    except Exception:  # arguments that do not fit the format: keep the record loggable
        try:
            args = repr(record.args)
        except Exception:
            args = "<unprintable arguments>"
        text = f"{_text(record.msg)} (log arguments that did not fit the message: {args})"
        return text, False


_FORMATTER = logging.Formatter()


def _each(args: tuple[Any, ...] | Mapping[str, Any], clean: Callable[[Any], Any]) -> Any:
    """``args`` of the same shape (a tuple of the same length, a mapping of the same keys)."""
    if isinstance(args, Mapping):
        return {key: clean(value) for key, value in args.items()}
    return tuple(clean(value) for value in args)


def _clean_text(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def _shown_in(message: str) -> Callable[[Any], Any]:
    """How to scrub the arguments of a message that was scrubbed as a whole.

    Each becomes its scrubbed text if that is shown in ``message``, else (it was part of a
    secret) :data:`REDACTED`.
    """

    def clean(value: Any) -> Any:
        text = redact(_text(value))
        if text not in message:
            return REDACTED
        # numbers stay numbers: "%d" and uvicorn's int(status) keep working
        return value if isinstance(value, (bool, int, float)) else text

    return clean


def _scrub(record: logging.LogRecord) -> None:
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text: the traceback is rendered (and scrubbed) once, here.
        record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    # The message is scanned once, as handlers will show it: whatever the type of msg (a dict,
    # an exception) and whether the secret is in the format, an argument or formed by joining.
    message, formatted = _message(record)
    cleaned = redact(message)
    if cleaned == message and formatted:
        return
    if not record.args:
        record.msg = cleaned
        return
    # Formatters may read the arguments themselves (uvicorn's access formatter unpacks its
    # five), so they keep their shape: first each string argument is scrubbed in place, which
    # is enough when the secret was within one (a query string in a logged URL).
    record.args = _each(record.args, _clean_text)
    if formatted and _message(record) == (cleaned, True):
        return
    # Else the scrubbed message becomes the format; "%.0s" consumes each positional argument
    # without showing it. The arguments keep their shape, and none holds a piece of a secret.
    record.args = _each(record.args, _shown_in(cleaned))
    record.msg = cleaned.replace("%", "%%") + (
        "" if isinstance(record.args, Mapping) else "%.0s" * len(record.args)
    )


def _redacting(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _scrub(record)
        return record

    make.arkitekt_redacting = True  # type: ignore[attr-defined]
    return make


def install_redaction() -> None:
    """Scrub secrets from every log record this process creates from now on (idempotent)."""
    with _lock:
        current = logging.getLogRecordFactory()
        if not getattr(current, "arkitekt_redacting", False):
            logging.setLogRecordFactory(_redacting(current))
