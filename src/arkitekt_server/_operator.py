"""The operator's sign-in for the approval page: a secret only the operator has, and sessions.

A decision on the approval page needs more than the page: any process on the server's machine
can fetch the page and post its form, and can send any header it likes. So deciding needs the
operator secret, which only the operator has: the ``operator_secret`` setting, or else a random
secret that the server keeps in ``<data_dir>/operator-secret`` (mode 0600, in the 0700 data
directory, like the database the CLI's ``arkitekt approve`` needs); ``arkitekt server`` prints it
at start when its output is a terminal, and otherwise only where the file is. Signing in with
it gives the browser a session cookie (HttpOnly, SameSite=Strict) for the approval page and the
image gallery. A session is its end time, a random part and an HMAC of both under a key derived
from the operator secret: every replica that has the same secret accepts it (nothing is kept
on the server), and changing the secret ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from pathlib import Path

from arkitekt_server._db import private_dir
from arkitekt_server._secrets import derive_secret, hash_secret, new_secret
from arkitekt_server._settings import ServerSettings

__all__ = [
    "OPERATOR_COOKIE",
    "OPERATOR_FILE",
    "OperatorSessions",
    "operator_secret",
    "operator_secret_file",
]

OPERATOR_COOKIE = "arkitekt_operator"
OPERATOR_FILE = "operator-secret"
SESSION_SECONDS = 12 * 3600


def operator_secret_file(data_dir: Path) -> Path:
    """Where the server keeps its generated operator secret."""
    return data_dir / OPERATOR_FILE


def operator_secret(settings: ServerSettings) -> str:
    """The operator secret: the setting, or the one in the data directory (made on first use).

    The file is created with mode 0600 (and an existing one is set to it).
    """
    if settings.operator_secret is not None:
        return settings.operator_secret.get_secret_value()
    private_dir(settings.data_dir)
    path = operator_secret_file(settings.data_dir)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        secret = path.read_text(encoding="utf-8").strip()
        if secret:
            return secret
        path.unlink()
        return operator_secret(settings)
    secret = new_secret()
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(secret + "\n")
    return secret


class OperatorSessions:
    """Sessions of a signed-in browser: ``<end>.<random>.<mac>``, each valid for ``ttl`` seconds.

    Args:
        secret: the operator secret a sign-in must present (and the sessions' key comes from).
        ttl: how long a session lasts.
    """

    def __init__(self, secret: str, ttl: float = SESSION_SECONDS) -> None:
        self._secret_hash = hash_secret(secret)
        self._key = derive_secret(secret, "operator sessions").encode()
        self.ttl = ttl

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def sign_in(self, secret: str) -> str | None:
        """A new session if ``secret`` is the operator secret, else ``None``."""
        if not hmac.compare_digest(hash_secret(secret), self._secret_hash):
            return None
        body = f"{int(time.time() + self.ttl)}.{new_secret()}"
        return f"{body}.{self._mac(body)}"

    def valid(self, session: str | None) -> bool:
        """Whether ``session`` (a cookie's value) is a live session signed with this key."""
        if not session or len(session) > 200:
            return False
        body, _, mac = session.rpartition(".")
        end = body.partition(".")[0]
        if not hmac.compare_digest(self._mac(body), mac) or not (end.isascii() and end.isdigit()):
            return False
        return int(end) > time.time()
