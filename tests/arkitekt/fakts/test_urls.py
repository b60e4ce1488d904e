"""The discovery URL: one spelling per server, so an approval is found however the URL is typed;
a value that is no http(s) URL of a server is refused where it enters, saying what to give."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from arkitekt import App, easy, whoami
from arkitekt._cli import build
from arkitekt.errors import ConfigError
from arkitekt.fakts import TokenCache
from arkitekt.protocol.hosts import discovery_url
from arkitekt_server import EmbeddedServer
from tests.helpers import database_args

runner = CliRunner()


@pytest.fixture
def manual(server_factory: Callable[..., EmbeddedServer]) -> EmbeddedServer:
    return server_factory(auto_approve=False)


def _spellings(url: str) -> list[str]:
    """Other spellings of ``http://127.0.0.1:PORT``: trailing slashes, a capital scheme."""
    return [url + "/", url + "//", url.replace("http://", "HTTP://"), url.upper() + "/"]


def _approved(app: App, server: EmbeddedServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Enter ``app`` once, approving its printed code through the CLI as a person would."""
    done = threading.Event()

    def person() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not done.is_set():
            err = capsys.readouterr().err
            if "arkitekt approve " in err:
                code = err.split("arkitekt approve ")[1].split(")")[0].strip()
                runner.invoke(build(), ["approve", code, *database_args(server)])
                return
            time.sleep(0.05)

    thread = threading.Thread(target=person, daemon=True)
    thread.start()
    try:
        with app:
            whoami()
    finally:
        done.set()
        thread.join(5)


def test_an_approved_app_is_not_asked_again_under_another_spelling_of_the_url(
    manual: EmbeddedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def app(url: str, wait: float = 1) -> App:
        return easy("spelled", url=url, headless=True, cache_dir=tmp_path, approval_timeout=wait)

    _approved(app(manual.url, wait=20), manual, capsys)
    for url in _spellings(manual.url):
        with app(url):  # asking again would time out after 1 s: nobody approves now
            assert whoami().identifier == "spelled"
        assert "approve" not in capsys.readouterr().err, url
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_an_approval_cached_under_the_former_spelling_is_found_and_moved(
    manual: EmbeddedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def app(wait: float = 1) -> App:
        return easy(
            "legacy", url=manual.url, headless=True, cache_dir=tmp_path, approval_timeout=wait
        )

    first = app(wait=20)
    _approved(first, manual, capsys)
    entry = first.fakts.cache.load()
    assert entry is not None
    # what an earlier version wrote for FAKTS_URL=http://127.0.0.1:PORT/ (keyed as typed)
    former = TokenCache(tmp_path, "legacy", "0.1.0", manual.url + "/")
    former.store(entry)
    first.fakts.cache.path.unlink()
    again = app()
    with again:
        assert whoami().identifier == "legacy"
    assert "approve" not in capsys.readouterr().err
    assert again.fakts.cache.load() == entry
    assert not former.path.exists()  # moved to the one spelling's file
    former.store(entry)
    again.fakts.logout()  # forgets both spellings: nothing resurrects the approval
    assert not former.path.exists()
    assert again.fakts.cache.load() is None


def test_whoami_finds_a_login_under_another_spelling(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    env = {"ARKITEKT_CACHE_DIR": str(tmp_path), "FAKTS_URL": server.url + "/"}
    cli = build()
    login = runner.invoke(cli, ["login", "--identifier", "spelt", "--headless"], env=env)
    assert login.exit_code == 0, login.output
    for url in _spellings(server.url):
        who = runner.invoke(cli, ["whoami", "--identifier", "spelt", "--url", url], env=env)
        assert who.exit_code == 0, (url, who.output)
        assert who.output.startswith("spelt@0.1.0 at arkitekt")


@pytest.mark.parametrize(
    ("typed", "spelled"),
    [
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("HTTP://Lab.Example.ORG:8000", "http://lab.example.org:8000"),
        ("https://lab.example.org:443/", "https://lab.example.org"),
        ("http://lab.example.org:80", "http://lab.example.org"),
        ("http://lab.example.org:443", "http://lab.example.org:443"),
        ("https://lab.example.org/Arkitekt//", "https://lab.example.org/Arkitekt"),
        ("http://[::1]:8000/", "http://[::1]:8000"),
        ("LOCALHOST:8000/", "localhost:8000"),
        ("lab.example.org", "lab.example.org"),
        ("  http://127.0.0.1:8000  ", "http://127.0.0.1:8000"),
    ],
)
def test_spellings_of_one_server_share_one_setting_and_one_cache_file(
    typed: str, spelled: str, tmp_path: Path
) -> None:
    app = easy("spelling", url=typed, cache_dir=tmp_path)
    assert app.settings.url == spelled
    same = easy("spelling", url=spelled, cache_dir=tmp_path)
    assert app.fakts.cache.path == same.fakts.cache.path


hosts = st.from_regex(r"\A[a-z][a-z0-9-]{0,8}[a-z0-9](\.[a-z][a-z0-9]{0,8}){1,2}\Z")


@settings(max_examples=60, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https"]),
    host=hosts,
    port=st.none() | st.integers(1, 65535),
    path=st.sampled_from(["", "/a", "/A/b"]),
    slashes=st.sampled_from(["", "/", "//"]),
    upper=st.booleans(),
)
def test_the_one_spelling_is_stable_and_ignores_case_default_ports_and_slashes(
    scheme: str, host: str, port: int | None, path: str, slashes: str, upper: bool
) -> None:
    authority = host if port is None else f"{host}:{port}"
    typed = f"{scheme}://{authority}"
    typed = (typed.upper() if upper else typed) + path + slashes
    spelled = discovery_url(typed)
    assert discovery_url(spelled) == spelled
    default = {"http": 80, "https": 443}[scheme]
    shown = host if port in (None, default) else f"{host}:{port}"
    assert spelled == f"{scheme}://{shown}{path}"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ftp://x", r"'ftp://x' uses the scheme 'ftp'; arkitekt talks http and https only"),
        ("file:///etc/hosts", r"uses the scheme 'file'"),
        ("not-a-url", r"'not-a-url' is not a URL of a server"),
        ("http://", r"'http://' is not a URL of a server"),
        ("://lab.example.org", r"is not a URL of a server \(nothing before ://\)"),
        ("http://lab.example.org:99999", r"port is not a number from 1 to 65535"),
        ("http://lab.example.org:0", r"port is not a number from 1 to 65535"),
        ("http://lab.example.org/?next=1", r"no \?query or #fragment"),
        ("http://-lab-.org", r"is not a URL of a server"),
    ],
)
def test_a_value_that_is_no_server_url_is_refused_naming_it_and_the_fix(
    value: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"url \(from argument\): .*" + says) as caught:
        easy("bad-url", url=value)
    assert "like https://lab.example.org or http://127.0.0.1:8000" in str(caught.value)
    monkeypatch.setenv("FAKTS_URL", value)
    with pytest.raises(ConfigError, match=r"url \(from environment variable FAKTS_URL\)"):
        easy("bad-url")


def test_a_password_in_the_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigError, match="user name or password") as caught:
        easy("bad-url", url="https://me:hunter2@lab.example.org")
    assert "hunter2" not in str(caught.value)
    assert "'https://***@lab.example.org'" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ftp://x", "uses the scheme 'ftp'; arkitekt talks http and https only"),
        ("not-a-url", "'not-a-url' is not a URL of a server"),
    ],
)
def test_cli_login_says_what_is_wrong_with_the_url(value: str, says: str, tmp_path: Path) -> None:
    env = {"ARKITEKT_CACHE_DIR": str(tmp_path)}
    for args in (["login", "--url", value, "--headless"], ["whoami", "--url", value]):
        result = runner.invoke(build(), args, env=env)
        assert result.exit_code == 1
        assert says in result.output, result.output
        assert "is the server running" not in result.output.lower()
        assert "clear text" not in result.output
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
