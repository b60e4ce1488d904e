"""Texts on the wire: what a stored text may hold, and how a message shows an input.

Shared by the client and the server, so both refuse the same texts and no message repeats
an input at full length.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["ECHO_CHARS", "STORABLE", "StoredText", "check_storable", "echo", "unstorable"]

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
