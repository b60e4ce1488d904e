"""Only the operator decides on the approval page: a process on the server's machine that can
fetch the page and post its form, with any headers, gets nowhere without the operator secret."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from arkitekt_server._logs import WARNINGS_PER_WINDOW, Throttled
from arkitekt_server._operator import (
    OPERATOR_COOKIE,
    OperatorSessions,
    operator_secret,
    operator_secret_file,
)
from arkitekt_server._settings import ServerConfigError, ServerSettings, load_server_settings
from arkitekt_server.fakts import _routes as routes


def test_a_local_process_cannot_approve_by_reading_the_page(fakts: Any) -> None:
    code = fakts.start()
    page, nonce = fakts.page(code, sign_in=False)
    assert page.status_code == 200
    assert "operator secret" in page.text
    assert nonce == ""  # no form to post without signing in
    same_origin = {"Origin": fakts.server.url, "Referer": page.url.__str__(),
                   "Sec-Fetch-Site": "same-origin"}  # fmt: skip
    for cookie in (None, "guessed-session"):
        if cookie is not None:
            fakts.http.cookies.set(OPERATOR_COOKIE, cookie)
        forged = fakts.http.post(
            "/f/configure/",
            data={"device_code": code, "nonce": nonce or "guessed", "action": "approve"},
            headers=same_origin,
        )
        assert forged.status_code == 403, forged.text
        assert "operator" in forged.text
    assert fakts.challenge(code) == {"status": "pending"}


def test_a_wrong_operator_secret_gets_no_session(fakts: Any) -> None:
    code = fakts.start()
    refused = fakts.sign_in("x" * 43, code)
    assert refused.status_code == 403
    assert "Wrong operator secret" in refused.text
    assert OPERATOR_COOKIE not in fakts.http.cookies
    assert fakts.page(code, sign_in=False)[1] == ""


def test_the_signed_in_operator_decides(fakts: Any) -> None:
    code = fakts.start()
    signed = fakts.sign_in(code=code)
    assert signed.status_code == 303
    assert signed.headers["location"] == f"../configure/?device_code={code}&grant=device_code"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{OPERATOR_COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/;"):
        assert attribute.lower() in cookie.lower(), cookie
    assert operator_secret(fakts.server.settings) not in cookie  # a session, not the secret
    assert fakts.decide(code, "approve").status_code == 200
    assert fakts.challenge(code)["status"] == "granted"


def test_the_operator_secret_is_kept_private_and_stable(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path / "data")
    first = operator_secret(settings)
    path = operator_secret_file(settings.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    path.chmod(0o644)
    assert operator_secret(settings) == first  # the same across restarts
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 40


def test_an_operator_secret_setting_is_used_and_must_be_long(tmp_path: Path) -> None:
    chosen = "a-long-operator-secret"
    settings = ServerSettings(data_dir=tmp_path / "data", operator_secret=chosen)
    assert operator_secret(settings) == chosen
    assert not operator_secret_file(settings.data_dir).exists()
    assert chosen not in repr(settings)
    with pytest.raises(ServerConfigError, match=r"operator_secret.*at least 16"):
        load_server_settings(data_dir=tmp_path, operator_secret="short")


def test_sessions_expire_and_are_random() -> None:
    sessions = OperatorSessions("s" * 20, ttl=0)
    session = sessions.sign_in("s" * 20)
    assert session is not None
    assert not sessions.valid(session)  # expired at once
    live = OperatorSessions("s" * 20)
    one, two = live.sign_in("s" * 20), live.sign_in("s" * 20)
    assert one != two
    assert live.valid(one)
    assert live.valid(two)
    assert not live.valid("s" * 20)
    assert live.sign_in("wrong") is None


def test_a_session_holds_on_every_replica_with_the_secret_and_nowhere_else() -> None:
    one = OperatorSessions("s" * 20).sign_in("s" * 20)
    assert one is not None
    assert OperatorSessions("s" * 20).valid(one)  # another replica, the same secret
    assert not OperatorSessions("t" * 20).valid(one)  # the secret changed: every session ends
    end, rest = one.split(".", 1)
    assert not OperatorSessions("s" * 20).valid(f"{int(end) + 3600}.{rest}")  # extended
    for forged in ("", "1.2", f"9{one}", f"{one}0", one.replace(".", ":"), "²." + rest):
        assert not OperatorSessions("s" * 20).valid(forged), forged


def test_wrong_secrets_cannot_flood_the_log(
    fakts: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(routes, "_wrong_secret", Throttled(routes.log, "fakts: wrong secret"))
    caplog.set_level(logging.WARNING, logger="arkitekt_server.fakts")
    for attempt in range(WARNINGS_PER_WINDOW + 10):
        assert fakts.sign_in(f"wrong-secret-{attempt:04d}-padding").status_code == 403
    refused = [r for r in caplog.records if "wrong operator secret" in r.getMessage()]
    assert len(refused) == WARNINGS_PER_WINDOW  # a burst is logged, the rest only counted
