"""Texts on the wire: what a stored text may hold, and how a message shows an input.

Shared by the client and the server, so both refuse the same texts and no message repeats
an input at full length.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = [
    "ECHO_CHARS",
    "STORABLE",
    "StoredText",
    "check_storable",
    "echo",
    "too_many_containers",
    "unstorable",
]

ECHO_CHARS = 40
"""How many characters of an input a message repeats at most."""


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """``value`` as a message shows it: its ``repr``, cut to about ``limit`` characters.

    Every error detail that names an input uses this, so a refusal never carries back (or
    into a log) more than a short prefix of what was sent.

    Example:
        >>> echo("abc")
        "'abc'"
        >>> echo("x" * 1000)
        "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (1,000 characters)"

    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[: limit - 1]!r}... ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_UNSTORABLE = re.compile("[\0\ud800-\udfff]")


def unstorable(text: str) -> bool:
    """Whether ``text`` holds a NUL or a lone surrogate, which a database cannot store.

    PostgreSQL text never holds NUL, and a lone surrogate has no UTF-8 form.
    """
    return _UNSTORABLE.search(text) is not None


def check_storable(text: str) -> str:
    """``text`` if a database can store it.

    Raises:
        ValueError: it holds a NUL character or a lone surrogate.

    """
    if unstorable(text):
        raise ValueError("contains a NUL character or a lone surrogate, which cannot be stored")
    return text


STORABLE = AfterValidator(check_storable)
"""The check of a stored text, for ``Annotated[str, Field(max_length=...), STORABLE]`` (after
the length, so a long text is refused for its length, not checked first)."""

StoredText = Annotated[str, STORABLE]
"""A text field that is stored: refused when it holds a NUL or a lone surrogate."""

# control characters (terminal escapes, newlines that forge log lines) and the bidirectional
# overrides and isolates that make a text display as another
_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def check_shown(text: str) -> str:
    r"""``text`` if it can be shown as it is: on a terminal, in a log line, on a page.

    Example:
        >>> check_shown("org.lab.viewer")
        'org.lab.viewer'
        >>> check_shown("two\nlines")
        Traceback (most recent call last):
        ...
        ValueError: contains control or text-direction characters ('\n'); use printable text

    Raises:
        ValueError: it holds a control character (escape, newline, ...), a bidirectional
            override or isolate, a NUL or a lone surrogate.

    """
    found = _UNSHOWN.search(text)
    if found is not None:
        raise ValueError(
            f"contains control or text-direction characters ({found.group()!r:.12}); use "
            "printable text"
        )
    return text


SHOWN = AfterValidator(check_shown)
"""The check of a text that people see as it is (names on the approval page and in the CLI):
also :data:`STORABLE`, as it refuses NUL and lone surrogates too."""


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def too_many_containers(body: bytes | str, limit: int) -> bool:
    """Whether a JSON document holds more than ``limit`` objects and arrays.

    What bounds the memory that parsing a document takes: each object or array costs about 70
    bytes parsed, from as few as 2 bytes of JSON. Brackets inside strings do not count.

    Linear, without parsing: brackets are counted at once, and only when there are more than
    ``limit`` are the strings (where brackets do not count) cut out and they are counted again.

    Example:
        >>> too_many_containers(b'{"a": [1, {}], "b": "[{[{"}', limit=3)
        False
        >>> too_many_containers(b'[[], {}, [{}]]', limit=3)
        True

    """
    data = body.encode() if isinstance(body, str) else body
    if data.count(b"{") + data.count(b"[") <= limit:
        return False
    bare = _JSON_STRING.sub(b"", data)
    return bare.count(b"{") + bare.count(b"[") > limit
