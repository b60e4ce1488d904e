"""A typing test of the public API, checked by mypy (``make lint``), never run.

Each ``assert_type`` states what a type checker must infer for an app author's code; a change
that loses a type (an ``Any`` leaking out of a decorator, a twin with the wrong signature)
fails ``mypy``. The functions are not called: nothing here touches a server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, assert_type

import numpy as np
import xarray as xr

import arkitekt
import arkitekt.extension
from arkitekt import (
    App,
    ArkitektError,
    Manifest,
    NoActiveAppError,
    Provide,
    Settings,
    UnknownProviderError,
    awhoami,
    easy,
    inject,
    load_settings,
    whoami,
)
from arkitekt.extension import (
    AppSlot,
    Bridge,
    Scope,
    ScopeKind,
    Service,
    current_scope,
    loopsafe,
    owner_scope,
    syncify,
)
from arkitekt.fakts import Fakts
from arkitekt.mikro import Image, Mikro, afrom_xarray, from_xarray, get_image
from arkitekt.protocol.fakts import UserInfo
from arkitekt.rekuest import Assignment, Rekuest, acall, call, iterate, register, submit


def app_author() -> None:
    app = easy("typing-test", url="http://127.0.0.1:9")
    assert_type(app, App)
    assert_type(app.manifest, Manifest)
    assert_type(app.settings, Settings)
    assert_type(app.fakts, Fakts)
    assert_type(app.mikro, Mikro)
    assert_type(app.rekuest, Rekuest)
    assert_type(app.is_open, bool)
    assert_type(load_settings(), Settings)
    assert_type(arkitekt.__version__, str)
    with app as entered:
        assert_type(entered, App)
        image = from_xarray(xr.DataArray(np.zeros((2, 2)), dims=["x", "y"]), name="blank")
        assert_type(image, Image)
        assert_type(get_image(image.id), Image)
        assert_type(from_xarray(image.data, name="copy", mikro=app.mikro), Image)
        assert_type(whoami(), UserInfo)
        assert_type(call("add", 1, b=2), Any)
        assert_type(submit("add", 1), Assignment)
        assert_type(iterate("frames", count=3), Iterator[Any])


async def async_app_author(app: App) -> None:
    async with app as entered:
        assert_type(entered, App)
        assert_type(await awhoami(), UserInfo)
        assert_type(await acall("add", 1), Any)
        image = await afrom_xarray(xr.DataArray(np.zeros((2, 2)), dims=["x", "y"]), name="b")
        assert_type(image, Image)


@inject
def count_images(prefix: str, *, mikro: Mikro = Provide("mikro")) -> int:
    return len(prefix)


@inject
async def acount_images(*, mikro: Mikro = Provide("mikro")) -> int:
    return 0


@register
def add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


async def injected_functions(app: App) -> None:
    assert_type(count_images("x"), int)
    assert_type(count_images("x", mikro=app.mikro), int)
    assert_type(await acount_images(), int)
    assert_type(add(1), int)  # @register keeps the plain function


def errors(error: Exception) -> None:
    if isinstance(error, UnknownProviderError):
        assert_type(error.known, list[str])
    assert issubclass(NoActiveAppError, ArkitektError)


class Echo(Service):
    """A service as a service author writes it."""

    async def asay(self, text: str) -> str:
        return text


@loopsafe
async def asay(text: str, *, echo: Echo | None = None) -> str:
    return text


say = syncify(asay)


async def service_author() -> None:
    assert_type(say("hi"), str)
    assert_type(await asay("hi"), str)
    scope = current_scope("say()")
    assert_type(scope, Scope)
    assert_type(scope.kind, ScopeKind)
    assert_type(scope.bridge, Bridge)
    assert_type(scope.app_slot, AppSlot)
    assert_type(owner_scope([], "say()"), Scope)


def names_that_do_not_exist() -> None:
    """mypy must refuse these: a lazy module's ``__getattr__`` is hidden from it (if it saw one,
    any name would pass as ``Any`` and these ignores would be reported as unused)."""
    from arkitekt import Provid  # type: ignore[attr-defined]
    from arkitekt.mikro import Mikr  # type: ignore[attr-defined]
    from arkitekt.rekuest import Event  # type: ignore[attr-defined]
    from arkitekt_server import EmbeddedServr  # type: ignore[attr-defined]

    _ = arkitekt.extension.ScopedResourse  # type: ignore[attr-defined]
    _ = Provid, Mikr, Event, EmbeddedServr
