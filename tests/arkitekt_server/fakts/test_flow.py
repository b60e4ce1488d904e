"""The fakts v1 flow against a real server: discovery, approval, claim, tokens, revocation."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from arkitekt_server import EmbeddedServer
from arkitekt_server._db import utcnow
from arkitekt_server._operator import operator_secret
from arkitekt_server.fakts import _logic as logic
from arkitekt_server.fakts._admin import prune as prune_expired
from arkitekt_server.fakts._models import DeviceCode
from tests.helpers import database_args, server_database


def _expire_device_codes(server: EmbeddedServer) -> None:
    """Move the expiry of every device code of ``server`` a second into the past.

    As if their time had run out, without waiting for it: the server reads the wall clock,
    which a test cannot move, so the codes' stored expiry moves instead.
    """

    async def expire() -> None:
        database = server_database(server)
        past = utcnow() - dt.timedelta(seconds=1)
        try:
            async with database.sessions() as session:
                await session.execute(update(DeviceCode).values(expires_at=past))
                await session.commit()
        finally:
            await database.dispose()

    asyncio.run(expire())


def test_well_known_names_the_fakts_root(fakts: Any) -> None:
    answer = fakts.http.get("/.well-known/fakts").json()
    assert answer["base_url"] == f"{fakts.server.url}/f/"
    assert answer["name"] == "arkitekt"
    assert "version" in answer


def test_code_waits_then_is_pending_once_the_page_was_opened(fakts: Any) -> None:
    code = fakts.start()
    assert fakts.challenge(code) == {"status": "waiting"}
    page, nonce = fakts.page(code)
    assert page.status_code == 200
    assert "flow-app" in page.text
    assert "1.0" in page.text
    assert "write" in page.text
    assert nonce
    assert fakts.challenge(code) == {"status": "pending"}


def test_approval_through_the_page_grants_a_claim_token_once(fakts: Any) -> None:
    code = fakts.start()
    assert fakts.decide(code, "approve").status_code == 200
    granted = fakts.challenge(code)
    assert granted["status"] == "granted"
    assert granted["token"]
    again = fakts.challenge(code)
    assert again["status"] == "error"  # a code grants once


def test_claimed_config_has_every_group_with_urls_of_this_server(fakts: Any) -> None:
    config = fakts.approved_config()
    base = fakts.server.url + "/"
    assert config["self"]["deployment_name"] == "arkitekt"
    lok = config["lok"]
    assert lok["base_url"] == base + "lok"
    assert lok["grant_type"] == "client-credentials"
    assert lok["scopes"] == ["read", "write"]
    assert lok["userinfo_url"] == base + "lok/userinfo/"
    assert config["mikro"]["endpoint_url"].startswith(base)
    assert config["rekuest"]["agent"]["endpoint_url"].startswith("ws://127.0.0.1:")


def test_token_exchange_with_basic_or_form_credentials_and_userinfo(fakts: Any) -> None:
    config = fakts.approved_config()
    lok = config["lok"]
    token = fakts.bearer(config)
    form = fakts.http.post(
        lok["token_url"],
        data={
            "grant_type": "client_credentials",
            "client_id": lok["client_id"],
            "client_secret": lok["client_secret"],
            "scope": "read",
        },
    )
    assert form.status_code == 200
    assert form.json()["token_type"] == "Bearer"
    assert form.json()["scope"] == "read"
    who = fakts.http.get(lok["userinfo_url"], headers={"Authorization": f"Bearer {token}"})
    assert who.status_code == 200
    assert who.json()["client_id"] == lok["client_id"]
    assert who.json()["identifier"] == "flow-app"


@pytest.mark.parametrize(
    ("auth", "data"),
    [
        (None, {"grant_type": "client_credentials"}),
        (("nobody", "wrong"), {"grant_type": "client_credentials"}),
    ],
)
def test_token_endpoint_refuses_unknown_clients(
    fakts: Any, auth: tuple[str, str] | None, data: dict[str, str]
) -> None:
    response = fakts.http.post("/lok/token/", data=data, auth=auth)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_token_endpoint_refuses_a_wrong_secret_and_other_grant_types(fakts: Any) -> None:
    lok = fakts.approved_config()["lok"]
    wrong = fakts.http.post(
        lok["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(lok["client_id"], lok["client_secret"] + "x"),
    )
    assert wrong.status_code == 401
    other = fakts.http.post(
        lok["token_url"], data={"grant_type": "password"}, auth=(lok["client_id"], "x")
    )
    assert other.status_code == 400
    assert other.json()["error"] == "unsupported_grant_type"


def test_denied_code_can_never_be_claimed(fakts: Any) -> None:
    code = fakts.start()
    _, nonce = fakts.page(code)
    form = {"device_code": code, "nonce": nonce}
    assert fakts.http.post("/f/configure/", data={**form, "action": "deny"}).status_code == 200
    assert fakts.challenge(code)["status"] == "denied"
    late = fakts.http.post("/f/configure/", data={**form, "action": "approve"})
    assert late.status_code == 409
    assert "already denied" in late.text
    assert fakts.challenge(code)["status"] == "denied"


def test_expired_code_can_never_be_claimed(fakts: Any) -> None:
    code = fakts.start()
    _, nonce = fakts.page(code)
    _expire_device_codes(fakts.server)
    answer = fakts.challenge(code)
    assert answer["status"] == "error"
    assert "expired" in answer["message"]
    late = fakts.http.post(
        "/f/configure/", data={"device_code": code, "nonce": nonce, "action": "approve"}
    )
    assert late.status_code == 409
    assert fakts.challenge(code)["status"] == "error"


def test_stale_nonce_is_refused(fakts: Any) -> None:
    code = fakts.start()
    fakts.page(code)
    forged = fakts.http.post(
        "/f/configure/", data={"device_code": code, "nonce": "forged", "action": "approve"}
    )
    assert forged.status_code == 403
    assert fakts.challenge(code)["status"] == "pending"


@pytest.mark.anyio
async def test_page_refuses_decisions_from_other_machines(
    manual_server: EmbeddedServer, manifest: Any
) -> None:
    # A browser on another machine cannot be provoked on loopback: drive the same app in-process
    # with a foreign client address.
    from arkitekt_server import create_app

    app = create_app(manual_server.settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            code = (await http.post("/f/start/", json={"manifest": manifest})).json()["code"]
            secret = operator_secret(manual_server.settings)
            signed = await http.post("/f/signin/", data={"device_code": code, "secret": secret})
            assert signed.status_code == 303
            page = await http.get("/f/configure/", params={"device_code": code})
            nonce = page.text.split("name='nonce' value='")[1].split("'")[0]
            decided = await http.post(
                "/f/configure/", data={"device_code": code, "nonce": nonce, "action": "approve"}
            )
            assert decided.status_code == 403
            answer = (await http.post("/f/challenge/", json={"code": code})).json()
            assert answer["status"] == "pending"


def test_unknown_claim_token_and_code_answer_protocol_errors(fakts: Any) -> None:
    assert fakts.claim("no-such-token")["status"] == "error"
    assert fakts.challenge("NOSUCHCODE")["status"] == "error"
    assert fakts.page("NOSUCHCODE")[0].status_code == 404


def test_revoked_approval_stops_claim_token_and_bearer(fakts: Any) -> None:
    code = fakts.start()
    fakts.decide(code, "approve")
    claim_token = fakts.challenge(code)["token"]
    config = fakts.claim(claim_token)["config"]
    token = fakts.bearer(config)
    headers = {"Authorization": f"Bearer {token}"}
    assert fakts.http.post("/lok/revoke/", headers=headers).json() == {"revoked": 1}
    assert fakts.http.get("/lok/userinfo/", headers=headers).status_code == 401
    assert fakts.claim(claim_token)["status"] == "error"
    lok = config["lok"]
    again = fakts.http.post(
        lok["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(lok["client_id"], lok["client_secret"]),
    )
    assert again.status_code == 401


def test_retrieve_only_for_public_apps(
    server_factory: Callable[..., EmbeddedServer], fakts_for: Any, manifest: Any
) -> None:
    fakts = fakts_for(server_factory(public_apps=["viewer"]))
    viewer = {"identifier": "viewer", "version": "2"}
    granted = fakts.http.post("/f/retrieve/", json={"manifest": viewer}).json()
    assert granted["status"] == "granted"
    assert fakts.claim(granted["token"])["status"] == "granted"
    refused = fakts.http.post("/f/retrieve/", json={"manifest": manifest}).json()
    assert refused["status"] == "error"


def test_auto_approve_grants_loopback_clients_at_once(
    server: EmbeddedServer, fakts_for: Any
) -> None:
    fakts = fakts_for(server)
    code = fakts.start({"identifier": "auto", "version": "1"})
    assert fakts.challenge(code)["status"] == "granted"


def test_expired_codes_and_tokens_are_pruned(fakts: Any) -> None:
    server = fakts.server
    old = fakts.start()
    _expire_device_codes(server)

    async def prune(keep: float) -> int:
        database = server_database(server)
        try:
            async with database.sessions() as session:
                return await prune_expired(session, keep_seconds=keep)
        finally:
            await database.dispose()

    assert asyncio.run(prune(3600)) == 0  # expired, but recently: kept
    assert asyncio.run(prune(0)) == 1
    assert fakts.challenge(old)["message"].startswith("unknown device code")


@pytest.mark.parametrize(
    ("cache_seconds", "after"),
    [(0, 401), (3600, 200)],
    ids=["refused-at-once-without-a-cache", "trusted-within-the-cache-time"],
)
def test_a_cli_revocation_counts_within_the_auth_cache_time(
    server_factory: Callable[..., EmbeddedServer],
    fakts_for: Any,
    cache_seconds: float,
    after: int,
) -> None:
    # The CLI writes the database directly: a token checked less than `auth_cache_seconds` ago
    # is still trusted; past that (here: at once, with no cache) the revocation counts.
    from typer.testing import CliRunner

    from arkitekt._cli import build

    server = server_factory(auto_approve=False, auth_cache_seconds=cache_seconds)
    fakts = fakts_for(server)
    config = fakts.approved_config()
    headers = {"Authorization": f"Bearer {fakts.bearer(config)}"}
    assert fakts.http.get("/lok/userinfo/", headers=headers).status_code == 200
    revoked = CliRunner().invoke(
        build(), ["revoke", config["lok"]["client_id"], *database_args(server)]
    )
    assert revoked.exit_code == 0
    assert fakts.http.get("/lok/userinfo/", headers=headers).status_code == after


def test_concurrent_polls_of_an_approved_code_grant_exactly_once(
    server: EmbeddedServer, fakts_for: Any
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(3):
        code = fakts_for(server).start({"identifier": f"racer-{attempt}", "version": "1"})
        clients = [fakts_for(server) for _ in range(12)]
        with ThreadPoolExecutor(len(clients)) as pool:
            answers = list(pool.map(lambda client, code=code: client.challenge(code), clients))
        granted = [answer for answer in answers if answer["status"] == "granted"]
        assert len(granted) == 1, answers
        assert all(a["message"] == "this device code was already used" for a in answers
                   if a["status"] != "granted")  # fmt: skip


def test_a_decision_posted_from_another_origin_is_refused(fakts: Any) -> None:
    code = fakts.start()
    _, nonce = fakts.page(code)
    forged = fakts.http.post(
        "/f/configure/",
        data={"device_code": code, "nonce": nonce, "action": "approve"},
        headers={"Origin": "http://evil.example"},
    )
    assert forged.status_code == 403
    assert fakts.challenge(code)["status"] == "pending"
    same = fakts.http.post(
        "/f/configure/",
        data={"device_code": code, "nonce": nonce, "action": "approve"},
        headers={"Origin": fakts.server.url},
    )
    assert same.status_code == 200
    assert fakts.challenge(code)["status"] == "granted"


def test_codes_waiting_for_a_decision_are_capped_per_address_and_on_the_server(
    server_factory: Callable[..., EmbeddedServer], fakts_for: Any
) -> None:
    from arkitekt.protocol.fakts import StartRequest

    server = server_factory(
        auto_approve=False,
        max_pending_device_codes=3,
        max_pending_device_codes_per_address=2,
        device_code_ttl_seconds=2,
    )
    fakts = fakts_for(server)

    def start() -> httpx.Response:
        return fakts.http.post("/f/start/", json={"manifest": {"identifier": "c", "version": "1"}})

    async def start_from(address: str) -> str:
        database = server_database(server)
        body = StartRequest.model_validate({"manifest": {"identifier": "c", "version": "1"}})
        try:
            async with database.sessions() as session:
                return await logic.start(
                    session, body, auto_approve=False, settings=server.settings, address=address
                )
        finally:
            await database.dispose()

    first, _ = start().json()["code"], start()
    refused = start()
    assert refused.status_code == 429, refused.text
    assert "2 device codes from your address are open" in refused.json()["detail"]
    assert refused.headers["retry-after"] == "2"
    asyncio.run(start_from("192.0.2.7"))  # another address: its own cap; the server's 3rd
    with pytest.raises(logic.TooManyPendingError, match="3 device codes on this server"):
        asyncio.run(start_from("192.0.2.8"))
    assert fakts.decide(first, "deny").status_code == 200  # a decision frees a place
    assert start().status_code == 200
    assert start().status_code == 429
    _expire_device_codes(server)  # so does expiry
    assert start().status_code == 200


def test_auto_approved_codes_count_until_their_app_polls(
    server_factory: Callable[..., EmbeddedServer], fakts_for: Any, manifest: dict[str, Any]
) -> None:
    server = server_factory(auto_approve=True, max_pending_device_codes_per_address=2)
    fakts = fakts_for(server)
    first, _ = fakts.start(), fakts.start()  # approved at once, but never polled
    assert fakts.http.post("/f/start/", json={"manifest": manifest}).status_code == 429
    assert fakts.challenge(first)["status"] == "granted"  # used: it no longer counts
    assert fakts.challenge(fakts.start())["status"] == "granted"
