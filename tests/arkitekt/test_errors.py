"""The error tree: every error class is an ArkitektError, reachable from the top level, and
each branch re-exported by its service package; unknown provider names fail one way."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import arkitekt
import arkitekt.mikro
import arkitekt.rekuest
from arkitekt import App, Provide, inject
from arkitekt import errors as errors_module
from arkitekt.errors import (
    AgentRefusedError,
    ArkitektError,
    MessageRefusedError,
    MikroError,
    RekuestError,
    ServerUnreachableError,
    UnknownProviderError,
)
from arkitekt.integrations.fastapi import service
from arkitekt.rekuest._caller import error_of

ERRORS = [getattr(errors_module, name) for name in errors_module.__all__]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: error.__name__)
def test_every_error_is_an_arkitekt_error_in_the_tree_and_at_the_top(error: type) -> None:
    assert issubclass(error, ArkitektError)
    assert getattr(arkitekt, error.__name__) is error
    assert error.__name__ in arkitekt.__all__
    assert f" {error.__name__} " in f" {errors_module.__doc__} ".replace("\n", " ")


def test_the_error_module_holds_every_error_class() -> None:
    classes = {
        name
        for name, value in vars(errors_module).items()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }
    assert classes - {"ExceptionGroup"} == set(errors_module.__all__)


def test_service_packages_re_export_their_branch() -> None:
    for package, base in ((arkitekt.mikro, MikroError), (arkitekt.rekuest, RekuestError)):
        branch = {error.__name__ for error in ERRORS if issubclass(error, base)}
        assert branch <= set(package.__all__)
        for name in branch:
            assert getattr(package, name) is getattr(errors_module, name)
    assert arkitekt.rekuest.AgentRefusedError is AgentRefusedError


def test_connection_errors_are_connection_errors() -> None:
    assert issubclass(ServerUnreachableError, ConnectionError)
    assert issubclass(arkitekt.rekuest.ConnectionLostError, ConnectionError)


def test_the_wires_refused_kind_has_its_class() -> None:
    message = {"t": "error", "id": "call-1", "kind": "refused", "m": "unreadable answer"}
    error = error_of(message)
    assert type(error) is MessageRefusedError
    assert (str(error), error.assignment_id) == ("unreadable answer", "call-1")


def test_override_with_an_unknown_name_suggests_a_close_one(make_app: Callable[..., App]) -> None:
    app = make_app()
    with (
        pytest.raises(UnknownProviderError, match="did you mean 'mikro'") as caught,
        app.override(mikor=object()),
    ):
        pass
    assert caught.value.name == "mikor"
    assert "rekuest" in caught.value.known
    assert "'mikor'" in str(caught.value)


def test_fastapi_service_with_an_unknown_name(make_app: Callable[..., App]) -> None:
    with pytest.raises(UnknownProviderError, match=r"no such provider 'mikor'.*'mikro'"):
        service(make_app(), "mikor")


def test_inject_with_an_unknown_name_fails_at_call_time(make_app: Callable[..., App]) -> None:
    @inject  # not checked here: the function may be meant for another app's container
    def count(mikro: Any = Provide("mikor")) -> Any:
        return mikro

    with make_app(), pytest.raises(UnknownProviderError) as caught:
        count()
    message = str(caught.value)
    assert "count()" in message
    assert "'mikor'" in message
    assert "did you mean 'mikro'?" in message


def test_unknown_name_without_a_close_match_lists_the_known_ones() -> None:
    error = UnknownProviderError("zzz", ["mikro", "fakts"], "app 'x'")
    assert str(error) == "app 'x' has no such provider 'zzz' (it has: fakts, mikro)"
