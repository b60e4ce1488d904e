"""Every exception the server raises on purpose is an ``ArkitektServerError``."""

from __future__ import annotations

from pathlib import Path

import pytest

from arkitekt_server import (
    ArkitektServerError,
    ServerConfigError,
    ServerStartError,
    load_server_settings,
)
from arkitekt_server._db import DatabaseUnavailableError, ValueRefusedError
from arkitekt_server._errors import PortInUseError, ServerExtraMissingError
from arkitekt_server._gate import BodyTooLargeError
from arkitekt_server._running import DeploymentChoiceError
from arkitekt_server.fakts._logic import FaktsError, TooManyPendingError
from arkitekt_server.mikro._chunks import ChunkRefusedError
from arkitekt_server.mikro._housekeeping import UnknownStoresError
from arkitekt_server.mikro._storage import StoreInvalidError
from arkitekt_server.rekuest._calls import HubError


@pytest.mark.parametrize(
    "error",
    [
        BodyTooLargeError,
        ChunkRefusedError,
        DatabaseUnavailableError,
        DeploymentChoiceError,
        FaktsError,
        HubError,
        PortInUseError,
        ServerConfigError,
        ServerExtraMissingError,
        ServerStartError,
        StoreInvalidError,
        TooManyPendingError,
        UnknownStoresError,
        ValueRefusedError,
    ],
)
def test_each_deliberate_server_error_is_an_arkitekt_server_error(error: type) -> None:
    assert issubclass(error, ArkitektServerError)


def test_a_bad_configuration_is_caught_as_an_arkitekt_server_error(tmp_path: Path) -> None:
    with pytest.raises(ArkitektServerError, match="port"):
        load_server_settings(port=70000, data_dir=tmp_path)


def test_a_service_module_without_a_service_is_a_config_error() -> None:
    from arkitekt_server._app import load_services
    from arkitekt_server._settings import ServerConfigError

    with pytest.raises(ServerConfigError, match="has no `service = ServerService"):
        load_services(["arkitekt_server._errors"])
