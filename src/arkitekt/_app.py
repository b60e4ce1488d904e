"""``App`` and ``easy()``: declare an app, open its scope, reach its services.

Example:
    >>> from arkitekt import easy
    >>> app = easy("my-app", version="0.1.0", url="http://127.0.0.1:8000")
    >>> with app:          # a scope opens; nothing is contacted until the first call
    ...     app.fakts      # doctest: +ELLIPSIS
    <Fakts of app 'my-app'>

"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from contextvars import Token, copy_context
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.from_thread
from anyio.abc import TaskGroup, TaskStatus
from dependency_injector import providers
from pydantic import ValidationError

from arkitekt._bridge import Bridge
from arkitekt._container import ArkitektContainer, check_scopes
from arkitekt._scope import AppSlot, Scope, ScopeKind, activate, deactivate
from arkitekt._settings import Settings, load_settings
from arkitekt.errors import ArkitektError, ConfigError, ScopeError, ScopeLockedError
from arkitekt.fakts import Fakts
from arkitekt.mikro import Mikro
from arkitekt.protocol.fakts import Manifest
from arkitekt.protocol.redact import install_redaction
from arkitekt.rekuest import Rekuest

__all__ = ["App", "easy"]

P = ParamSpec("P")
R = TypeVar("R")


class _SyncHost:
    """The background event loop of a sync ``with app:`` and the task that owns the scope.

    The scope's task group must be entered and left by one task, so a host task on the loop
    holds it for the whole ``with`` block and closes the scope when told to stop.
    """

    def __init__(self, app: App) -> None:
        self._app = app
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._done: concurrent.futures.Future[None] | None = None
        self._stop: anyio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> Scope:
        self._portal_cm = anyio.from_thread.start_blocking_portal(
            "asyncio", name=f"arkitekt:{self._app.manifest.identifier}"
        )
        self._portal = self._portal_cm.__enter__()
        try:
            self._done, scope = self._portal.start_task(self._host)
            assert isinstance(scope, Scope)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        return scope

    async def _host(self, *, task_status: TaskStatus[Scope]) -> None:
        self._stop = anyio.Event()
        async with _AppScopeOwner(self._app, Bridge.here()) as owner:
            activate(owner.scope)  # tasks this host spawns see the app
            task_status.started(owner.scope)
            await self._stop.wait()
            owner.error = self._error

    def stop(self, error: BaseException | None) -> None:
        assert self._portal is not None
        assert self._done is not None
        assert self._portal_cm is not None
        try:
            self._error = error
            self._portal.call(self._signal)
            self._done.result()
        finally:
            self._portal_cm.__exit__(None, None, None)

    def _signal(self) -> None:
        assert self._stop is not None
        self._stop.set()


class _AppScopeOwner:
    """Opens an APP scope with a task group, and closes it.

    Closing stops background tasks first, then the resources in reverse order, each seeing
    ``error`` (the exception that ended the body).
    """

    def __init__(self, app: App, bridge: Bridge) -> None:
        self._app = app
        self._bridge = bridge
        self._task_group: TaskGroup | None = None
        self.scope: Scope
        self.error: BaseException | None = None

    async def __aenter__(self) -> _AppScopeOwner:
        app_slot = self._app.app_slot
        if app_slot.is_open:
            raise ScopeError(
                f"app {app_slot.name!r} is already open; an app can be entered once at a time "
                "(create a second app with easy(...) to run two side by side)"
            )
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self.scope = Scope(
            ScopeKind.APP, app_slot=app_slot, bridge=self._bridge, task_group=task_group
        )
        app_slot.attach(self.scope)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task_group is not None
        error = self.error if exc is None else exc
        try:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
        finally:
            self._app.app_slot.detach()
            await self.scope.aclose(error)


class App:
    """An arkitekt app: a manifest, settings, and a container of services.

    Build one with :func:`easy`. Use it as a context manager to open its APP scope: ``with
    app:`` runs the app's event loop in a background thread (works in scripts and notebooks);
    ``async with app:`` runs it on the caller's loop. Inside, API functions such as
    ``arkitekt.mikro.from_xarray`` find the app's services; outside, they raise
    :class:`~arkitekt.errors.NoActiveAppError`.

    Args:
        manifest: who the app is (identifier, version, scopes).
        settings: how it connects; default: :func:`~arkitekt._settings.load_settings`.
        container: a container class (a subclass of :class:`ArkitektContainer` to add providers).

    """

    def __init__(
        self,
        manifest: Manifest,
        settings: Settings | None = None,
        *,
        container: type[ArkitektContainer] = ArkitektContainer,
    ) -> None:
        install_redaction()  # no credential of this app may reach any log of this process
        app_slot = AppSlot(manifest.identifier)
        built = container(
            app_slot=providers.Object(app_slot),
            manifest=providers.Object(manifest),
            settings=providers.Object(settings if settings is not None else load_settings()),
        )
        app_slot.container = built
        check_scopes(built)
        object.__setattr__(self, "app_slot", app_slot)
        object.__setattr__(self, "container", built)
        object.__setattr__(self, "_sync_host", None)
        object.__setattr__(self, "_async_owner", None)
        object.__setattr__(self, "_token", None)

    app_slot: AppSlot
    container: ArkitektContainer
    _sync_host: _SyncHost | None
    _async_owner: _AppScopeOwner | None
    _token: Token[Scope | None] | None

    def __setattr__(self, name: str, value: Any) -> None:
        if self.app_slot.is_open:
            raise ScopeLockedError(
                f"cannot set App.{name} while app {self.app_slot.name!r} is open; "
                "configure the app before `with app:`"
            )
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        state = "open" if self.app_slot.is_open else "closed"
        return f"<App {self.manifest.identifier}@{self.manifest.version} ({state})>"

    @property
    def manifest(self) -> Manifest:
        """Who the app is."""
        return self.container.manifest()

    @property
    def settings(self) -> Settings:
        """How the app connects."""
        return self.container.settings()

    @property
    def fakts(self) -> Fakts:
        """Discovery and grants (configure before entering: ``app.fakts.grant = ...``)."""
        return self.container.fakts()

    @property
    def mikro(self) -> Mikro:
        """The image service."""
        return self.container.mikro()

    @property
    def rekuest(self) -> Rekuest:
        """The function service."""
        return self.container.rekuest()

    @property
    def is_open(self) -> bool:
        """Whether the app's scope is open right now."""
        return self.app_slot.is_open

    # -- scope -----------------------------------------------------------------------------
    def __enter__(self) -> App:
        if self.app_slot.is_open:
            raise ScopeError(f"app {self.app_slot.name!r} is already open")
        host = _SyncHost(self)
        scope = host.start()
        object.__setattr__(self, "_sync_host", host)
        object.__setattr__(self, "_token", activate(scope))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        host, token = self._sync_host, self._token
        if host is None or token is None:
            raise ScopeError("App.__exit__ without a matching `with app:`")
        object.__setattr__(self, "_sync_host", None)
        object.__setattr__(self, "_token", None)
        misplaced = self._unbind(token)
        host.stop(exc)  # also when misplaced: an app must never be stranded open
        if misplaced is not None:
            raise misplaced

    async def __aenter__(self) -> App:
        owner = _AppScopeOwner(self, Bridge.here())
        await owner.__aenter__()
        object.__setattr__(self, "_async_owner", owner)
        object.__setattr__(self, "_token", activate(owner.scope))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        owner, token = self._async_owner, self._token
        if owner is None or token is None:
            raise ScopeError("App.__aexit__ without a matching `async with app:`")
        object.__setattr__(self, "_async_owner", None)
        object.__setattr__(self, "_token", None)
        misplaced = self._unbind(token)
        await owner.__aexit__(exc_type, exc, tb)
        if misplaced is not None:
            raise misplaced

    def _unbind(self, token: Token[Scope | None]) -> ScopeError | None:
        """Restore the binding ``token`` replaced; the error to raise once the app is closed."""
        try:
            deactivate(token)
        except ValueError:  # the token belongs to another context
            return ScopeError(
                f"app {self.app_slot.name!r} was left in another thread or task than it was "
                "entered in; it is closed now, but enter and leave it in one place"
            )
        return None

    # -- helpers ---------------------------------------------------------------------------
    def run(self) -> None:
        """Serve the app's registered functions until Ctrl+C (``app.rekuest.run()``).

        Example:
            >>> with app:  # doctest: +SKIP
            ...     app.run()

        """
        self.rekuest.run()

    async def arun(self) -> None:
        """Serve the app's registered functions until cancelled (``app.rekuest.arun()``)."""
        await self.rekuest.arun()

    def run_in_thread(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[R]:
        """Run ``fn`` in a new thread that sees this app, and return its future.

        Plain ``threading.Thread`` targets do not inherit context variables, so they do not see
        the active app; this does. The app must be open.

        Example:
            >>> with app:  # doctest: +SKIP
            ...     future = app.run_in_thread(from_xarray, array, name="in a thread")
            ...     image = future.result()

        """
        scope = self.app_slot.scope
        context = copy_context()
        context.run(activate, scope)
        future: concurrent.futures.Future[R] = concurrent.futures.Future()

        def target() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(context.run(fn, *args, **kwargs))
            except BaseException as error:  # handed to the caller through the future
                future.set_exception(error)

        threading.Thread(
            target=target, name=f"arkitekt:{self.app_slot.name}:worker", daemon=True
        ).start()
        return future

    @contextmanager
    def override(self, **replacements: Any) -> Iterator[App]:
        """Replace providers of this app (only) until the block ends.

        Values that are not providers are wrapped in ``providers.Object``.

        Example:
            >>> with app.override(mikro=FakeMikro()):  # doctest: +SKIP
            ...     with app:
            ...         assert app.mikro is fake

        Raises:
            ArkitektError: a name is not a provider of the app's container.
            ScopeLockedError: the app is open (override before entering it).

        """
        if self.app_slot.is_open:
            raise ScopeLockedError(
                f"cannot override providers while app {self.app_slot.name!r} is open; "
                "override before `with app:`"
            )
        known = self.container.providers
        with ExitStack() as stack:
            for name, value in replacements.items():
                if name not in known:
                    raise ArkitektError(
                        f"cannot override {name!r}: the app's container has no such provider "
                        f"(it has: {', '.join(sorted(known))})"
                    )
                replacement = (
                    value if isinstance(value, providers.Provider) else providers.Object(value)
                )
                stack.enter_context(known[name].override(replacement))
            yield self


def easy(
    identifier: str,
    version: str = "0.1.0",
    *,
    url: str | None = None,
    token: str | None = None,
    headless: bool | None = None,
    config: str | os.PathLike[str] | None = None,
    scopes: list[str] | None = None,
    logo: str | None = None,
    **settings: Any,
) -> App:
    """Declare an app. Builds nothing remote and contacts nothing.

    Args:
        identifier: the app's unique name, e.g. ``"my-lab.segmenter"``.
        version: the app's version; approvals are per identifier and version.
        url: where to discover the backend (default: settings, then ``http://127.0.0.1:8000``).
        token: a static token for headless machines and CI (``arkitekt token create``).
        headless: never open a browser; print the approval link instead.
        config: a YAML settings file (default: ``$ARKITEKT_CONFIG`` or ``./arkitekt.yaml``).
        scopes: the permissions the app asks for.
        logo: a URL of the app's logo, shown on the approval page.
        **settings: any other :class:`~arkitekt._settings.Settings` field.

    Raises:
        ConfigError: a setting is invalid (the message names the key and where it came from).

    """
    loaded = load_settings(config, url=url, token=token, headless=headless, **settings)
    try:
        manifest = Manifest(identifier=identifier, version=version, scopes=scopes or [], logo=logo)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigError(f"invalid app manifest ({problems})") from None
    return App(manifest, loaded)
