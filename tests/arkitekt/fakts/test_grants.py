"""Client grants against the real server: device code, static token, static config, cache."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from arkitekt import App, easy, whoami
from arkitekt._cli import build
from arkitekt.errors import (
    DiscoveryError,
    GrantError,
    InsecureTransportError,
    NoActiveAppError,
    ServerUnreachableError,
)
from arkitekt.fakts import StaticConfigGrant, StaticTokenGrant
from arkitekt_server import EmbeddedServer
from tests.helpers import database_args

runner = CliRunner()


def test_discovery_waits_for_the_first_call(tmp_path: Path) -> None:
    app = easy("lazy", url="http://127.0.0.1:9", headless=True, cache_dir=tmp_path)
    with app:  # entering contacts nothing: the server is down and nothing fails
        pass
    with app, pytest.raises(DiscoveryError) as caught:
        whoami()
    message = str(caught.value)
    assert "http://127.0.0.1:9/.well-known/fakts" in message
    assert "arkitekt server" in message
    assert message.lower().count("is the server running?") == 1, message
    assert "pip install 'arkitekt-lab[server]'" in message  # this project, not its namesake


def test_whoami_outside_a_scope_fails_at_once() -> None:
    with pytest.raises(NoActiveAppError, match="with app"):
        whoami()


def test_device_code_auto_approved_then_authenticated_call(connect: Callable[..., App]) -> None:
    app = connect("device-app", version="2.0")
    with app:
        info = whoami()
    assert info.identifier == "device-app"
    assert info.version == "2.0"


def test_second_run_reuses_the_cached_approval(
    connect: Callable[..., App], capsys: pytest.CaptureFixture[str]
) -> None:
    with connect("cached-app") as app:
        first = whoami()
    assert "approve" not in capsys.readouterr().err  # approved at once: nobody is asked
    cache = app.fakts.cache.path
    assert cache.exists()
    assert cache.stat().st_mode & 0o777 == 0o600
    assert cache.parent.stat().st_mode & 0o077 == 0
    with connect("cached-app") as again:
        second = whoami()
    assert second.client_id == first.client_id  # the same approval
    assert "approve" not in capsys.readouterr().err  # nobody was asked
    assert again.fakts.cache.path == cache


def test_approvals_are_per_version(connect: Callable[..., App]) -> None:
    with connect("versioned", version="1"):
        one = whoami()
    with connect("versioned", version="2"):
        two = whoami()
    assert one.client_id != two.client_id


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"format": 1}', b"\xff\xfe", b""],
    ids=["garbage", "list", "incomplete", "binary", "empty"],
)
def test_a_corrupt_cache_is_ignored_with_a_warning(
    connect: Callable[..., App], content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    app = connect("corrupt-cache")
    path = app.fakts.cache.path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(content)
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, "arkitekt.fakts"), app:
        assert whoami().identifier == "corrupt-cache"
    assert "ignoring the corrupt token cache" in caplog.text
    assert json.loads(path.read_text())["key"]["identifier"] == "corrupt-cache"  # rewritten


def test_a_foreign_or_open_cache_file_is_not_trusted(
    connect: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    with connect("owner") as app:
        whoami()
    path = app.fakts.cache.path
    data = json.loads(path.read_text())
    other = connect("other")
    other_path = other.fakts.cache.path
    other_path.write_text(json.dumps(data))  # another app's token under this app's name
    other_path.chmod(0o600)
    assert other.fakts.cache.load() is None
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, "arkitekt.fakts"):
        assert app.fakts.cache.load() is None
    assert "readable by others" in caplog.text


def test_a_cached_token_of_a_revoked_approval_asks_again(
    connect: Callable[..., App], server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    with connect("revoked-app") as app:
        first = whoami()
    result = runner.invoke(build(), ["revoke", first.client_id, *database_args(server)])
    assert result.exit_code == 0, result.output
    with caplog.at_level(logging.WARNING, "arkitekt.fakts"), connect("revoked-app"):
        second = whoami()
    assert second.client_id != first.client_id
    assert "no longer works" in caplog.text
    assert app.fakts.cache.load() is not None


def test_revocation_while_open_re_runs_the_grant_once(
    server_factory: Callable[..., EmbeddedServer], tmp_path: Path
) -> None:
    # The CLI revokes in the database directly: no principal cache, so it counts at once.
    server = server_factory(auto_approve=True, auth_cache_seconds=0)
    with easy("revoked-live", url=server.url, headless=True, cache=False, cache_dir=tmp_path):
        first = whoami()
        result = runner.invoke(build(), ["revoke", first.client_id, *database_args(server)])
        assert result.exit_code == 0
        second = whoami()  # 401 -> token endpoint refuses -> grant again -> retry
    assert second.client_id != first.client_id


@pytest.fixture
def manual(server_factory: Callable[..., EmbeddedServer]) -> EmbeddedServer:
    return server_factory(auto_approve=False)


def _approve_when_asked(
    capsys: pytest.CaptureFixture[str], server: EmbeddedServer, command: str
) -> Iterator[threading.Thread]:
    """Watch stderr for the printed code and decide it through the CLI, like a person would."""
    outcome: dict[str, str] = {}

    def person() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            err = capsys.readouterr().err
            if "arkitekt approve " in err:
                code = err.split("arkitekt approve ")[1].split(")")[0].strip()
                result = runner.invoke(build(), [command, code, *database_args(server)])
                outcome["output"] = result.output
                return
            time.sleep(0.05)

    thread = threading.Thread(target=person, daemon=True)
    thread.start()
    yield thread
    thread.join(5)


def test_headless_prints_the_link_and_a_person_approves_through_the_cli(
    manual: EmbeddedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = easy("headless-app", url=manual.url, headless=True, cache_dir=tmp_path)
    for _ in _approve_when_asked(capsys, manual, "approve"):
        with app:
            assert whoami().identifier == "headless-app"


def test_a_denied_app_gets_a_clear_error(
    manual: EmbeddedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = easy("denied-app", url=manual.url, headless=True, cache_dir=tmp_path)
    for _ in _approve_when_asked(capsys, manual, "deny"):
        with app, pytest.raises(GrantError, match="denied"):
            whoami()
    assert app.fakts.cache.load() is None


def test_approval_timeout_names_the_link(manual: EmbeddedServer, tmp_path: Path) -> None:
    app = easy("slow-app", url=manual.url, headless=True, cache_dir=tmp_path, approval_timeout=0.5)
    with app, pytest.raises(GrantError, match=r"not approved within 0\.5 s") as caught:
        whoami()
    assert "/f/configure/?device_code=" in str(caught.value)


def test_static_token_needs_no_person(server: EmbeddedServer, tmp_path: Path) -> None:
    created = runner.invoke(
        build(),
        ["token", "create", "--identifier", "ci-app", *database_args(server)],
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    os.environ["FAKTS_TOKEN"] = token
    try:
        app = easy("ci-app", url=server.url, cache_dir=tmp_path)
    finally:
        del os.environ["FAKTS_TOKEN"]
    assert isinstance(app.fakts.grant, StaticTokenGrant)
    with app:
        first = whoami()
    with easy("ci-app", url=server.url, token=token, cache_dir=tmp_path):
        assert whoami().client_id == first.client_id  # redeem is idempotent
    with (
        easy("not-ci-app", url=server.url, token=token, cache_dir=tmp_path),
        pytest.raises(GrantError, match="for app 'ci-app'"),
    ):
        whoami()


def test_a_static_config_needs_no_server(tmp_path: Path) -> None:
    config = {"self": {"deployment_name": "offline"}, "mikro": {"endpoint_url": "x"}}
    app = easy("offline", url="http://127.0.0.1:9", fakts=config, cache_dir=tmp_path)
    assert isinstance(app.fakts.grant, StaticConfigGrant)

    async def group() -> object:
        transport = await app.container.transport()
        return await transport.agroup("mikro")

    with app:
        assert app.app_slot.scope.bridge.call(group) == {"endpoint_url": "x"}


def test_the_grant_is_swappable_before_entering_only(tmp_path: Path) -> None:
    app = easy("swap", url="http://127.0.0.1:9", cache_dir=tmp_path)
    app.fakts.grant = StaticConfigGrant({"self": {}})
    with app, pytest.raises(Exception, match="configure services before"):
        app.fakts.grant = StaticConfigGrant({})
    assert isinstance(app.fakts.grant, StaticConfigGrant)


def test_discovery_gives_up_after_its_timeout(tmp_path: Path) -> None:
    # A socket that accepts connections but never answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        app = easy(
            "silent", url=f"http://127.0.0.1:{port}", discovery_timeout=0.3, cache_dir=tmp_path
        )
        start = time.monotonic()
        with app, pytest.raises(DiscoveryError, match=r"did not complete within 0.3 s"):
            whoami()
        assert time.monotonic() - start < 3
    finally:
        listener.close()


def test_plain_http_to_another_machine_is_refused_before_sending(tmp_path: Path) -> None:
    app = easy("insecure", url="http://192.0.2.10:8000", cache_dir=tmp_path)
    with app, pytest.raises(InsecureTransportError, match="allow_insecure"):
        whoami()


def test_a_url_without_scheme_tries_https_then_http(server: EmbeddedServer, tmp_path: Path) -> None:
    host = server.url.removeprefix("http://")
    with easy("schemeless", url=host, headless=True, cache_dir=tmp_path):
        assert whoami().identifier == "schemeless"


def test_concurrent_first_calls_discover_once(server: EmbeddedServer, tmp_path: Path) -> None:
    app = easy("racing", url=server.url, headless=True, cache=False, cache_dir=tmp_path)
    with app:
        futures = [app.run_in_thread(whoami) for _ in range(8)]
        ids = {future.result(timeout=20).client_id for future in futures}
    assert len(ids) == 1
    listed = runner.invoke(build(), ["clients", *database_args(server)])
    assert listed.exit_code == 0
    assert len([line for line in listed.output.splitlines() if " racing@" in line]) == 1


def test_cli_login_whoami_logout(server: EmbeddedServer, tmp_path: Path) -> None:
    env = {"ARKITEKT_CACHE_DIR": str(tmp_path), "FAKTS_URL": server.url}
    cli = build()
    before = runner.invoke(cli, ["whoami", "--identifier", "term"], env=env)
    assert before.exit_code == 1
    assert before.output.strip() == f"term@0.1.0 is not logged in at {server.url}"
    login = runner.invoke(cli, ["login", "--identifier", "term", "--headless"], env=env)
    assert login.exit_code == 0, login.output
    assert "logged in to arkitekt as term@0.1.0" in login.output
    who = runner.invoke(cli, ["whoami", "--identifier", "term"], env=env)
    assert who.exit_code == 0, who.output
    assert who.output.startswith("term@0.1.0 at arkitekt")
    out = runner.invoke(cli, ["logout", "--identifier", "term"], env=env)
    assert out.exit_code == 0, out.output
    assert runner.invoke(cli, ["whoami", "--identifier", "term"], env=env).exit_code == 1
    assert httpx.get(server.url + "/health/").status_code == 200


def test_whoami_with_an_explicit_app_from_a_plain_thread(connect: Callable[..., App]) -> None:
    first, second = connect("explicit-one"), connect("explicit-two")
    with first, second:  # second is active here
        box: list[str] = []
        worker = threading.Thread(target=lambda: box.append(whoami(fakts=first.fakts).identifier))
        worker.start()
        worker.join(20)
        assert box == ["explicit-one"]
        assert whoami(fakts=first.fakts).identifier == "explicit-one"  # beats the active app
        assert whoami().identifier == "explicit-two"


def test_settings_are_frozen(tmp_path: Path) -> None:
    from pydantic import ValidationError

    app = easy("frozen", url="http://127.0.0.1:9", cache_dir=tmp_path)
    with pytest.raises(ValidationError, match="frozen"):
        app.settings.timeout = -5  # type: ignore[misc]


def test_a_lost_granted_answer_is_reported_as_such_not_resent(
    connect: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer "granted" uses the code up: it is lost with the connection, never re-asked."""
    send = httpx.AsyncHTTPTransport.handle_async_request
    polls: list[str] = []

    async def drop_the_granted_answer(
        self: httpx.AsyncHTTPTransport, request: httpx.Request
    ) -> httpx.Response:
        response = await send(self, request)
        if request.url.path.endswith("/challenge/"):
            polls.append((await response.aread()).decode())
            await response.aclose()
            response = httpx.Response(response.status_code, content=polls[-1].encode())
            if len(polls) == 1 and '"granted"' in polls[0]:  # acted on; the answer is lost
                raise httpx.ReadError("connection reset", request=request)
        return response

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", drop_the_granted_answer)
    with connect("lost-answer-app") as app, pytest.raises(ServerUnreachableError) as caught:
        whoami()
    assert "/challenge/" in str(caught.value)
    assert len(polls) == 1  # not resent (a resend could only hear "already used")
    assert app.fakts.cache.load() is None
