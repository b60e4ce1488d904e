"""The app's dependency-injection container: what each service is built from.

Each :class:`~arkitekt.App` owns one instance. Singletons here live as long as the app
object and hold configuration; :class:`~arkitekt.extension.ScopedResource` values (the HTTP
transport, ...) live for one ``with app:`` and are opened lazily. Services receive other
providers through constructor arguments; a service that needs a scoped resource receives the
provider itself (``transport.provider``) and resolves it per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from dependency_injector import containers, providers

from arkitekt._resources import ScopedResource
from arkitekt._scope import AppSlot, ScopeKind
from arkitekt._settings import Settings
from arkitekt.errors import ScopeError
from arkitekt.fakts import Fakts
from arkitekt.mikro import Mikro
from arkitekt.protocol.fakts import Manifest
from arkitekt.rekuest import Rekuest
from arkitekt.transport import open_transport

__all__ = ["ArkitektContainer", "check_scopes"]


class ArkitektContainer(containers.DeclarativeContainer):
    """Providers of an app. Subclass it to add providers; override them in tests.

    ``app_slot``, ``manifest`` and ``settings`` are given by the app; the rest are built from
    them.
    """

    app_slot = providers.Dependency(instance_of=AppSlot)
    manifest = providers.Dependency(instance_of=Manifest)
    settings = providers.Dependency(instance_of=Settings)

    fakts = providers.Singleton(Fakts, app_slot=app_slot, manifest=manifest, settings=settings)
    transport = ScopedResource(open_transport, app_slot=app_slot, fakts=fakts, settings=settings)
    mikro = providers.Singleton(
        Mikro, app_slot=app_slot, transport=transport.provider, fakts=fakts, settings=settings
    )
    rekuest = providers.Singleton(
        Rekuest, app_slot=app_slot, transport=transport.provider, fakts=fakts, settings=settings
    )


def _lifetime(provider: providers.Provider[Any]) -> ScopeKind | None:
    """APP or TASK for scoped resources; ``None`` (longer than any scope) for the rest."""
    return provider.kind if isinstance(provider, ScopedResource) else None


def _direct(provider: providers.Provider[Any]) -> Iterable[providers.Provider[Any]]:
    # A Delegate (`x.provider`) is a lazy reference resolved per call, not a captured value.
    for dep in provider.related:
        if not isinstance(dep, providers.Delegate):
            yield dep


def _captured(
    provider: providers.Provider[Any],
) -> Iterator[tuple[providers.Provider[Any], list[providers.Provider[Any]]]]:
    """Yield every provider whose value ``provider`` holds, with the providers in between.

    The walk goes through arguments of arguments (a Factory passed to a Singleton is called
    when the Singleton is built, and its value kept), and stops at Delegates.
    """
    seen = {id(provider)}
    stack = [(dep, list[providers.Provider[Any]]()) for dep in reversed(list(_direct(provider)))]
    while stack:
        dep, between = stack.pop()
        if id(dep) in seen:
            continue
        seen.add(id(dep))
        yield dep, between
        stack.extend((inner, [*between, dep]) for inner in reversed(list(_direct(dep))))


def check_scopes(container: containers.Container) -> None:
    """Check that no provider captures a value that lives shorter than itself.

    A singleton may not take a scoped resource as an argument, directly or through other
    providers (a Factory argument of its own): it would keep a value that closes with the
    scope. Pass ``resource.provider`` instead. An APP-scoped resource may not depend on a
    TASK-scoped one.

    Raises:
        ScopeError: naming the two providers (and the ones in between).

    """
    names = {id(p): n for n, p in container.providers.items()}

    def label(provider: providers.Provider[Any]) -> str:
        if id(provider) in names:
            return names[id(provider)]
        provides = getattr(provider, "provides", None)
        made = getattr(provides, "__qualname__", None)
        return f"{type(provider).__name__}({made})" if made else type(provider).__name__

    for name, provider in container.providers.items():
        mine = _lifetime(provider)
        for dep, between in _captured(provider):
            theirs = _lifetime(dep)
            if theirs is None or (mine is not None and mine >= theirs):
                continue
            dep_name = label(dep)
            via = f" through {' -> '.join(label(p) for p in between)}" if between else ""
            raise ScopeError(
                f"provider {name!r} lives longer than {dep_name!r} ({theirs.name}-scoped) but "
                f"captures it{via}; pass `{dep_name}.provider` and resolve it per call instead"
            )
