"""``App``: an app's scope and services (declared with :func:`~arkitekt.easy`).

The facade only: where the event loop runs is :mod:`arkitekt._host`; the container (and with it
dependency-injector and the services) is imported when the first app is built.

Example:
    >>> from arkitekt import easy
    >>> app = easy("my-app", version="0.1.0", url="http://127.0.0.1:8000")
    >>> with app:          # a scope opens; nothing is contacted until the first call
    ...     app.fakts
    <Fakts of app 'my-app'>

"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import Token, copy_context
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from arkitekt.errors import ScopeError, ScopeLockedError, UnknownProviderError

if TYPE_CHECKING:
    import concurrent.futures

    from arkitekt._container import ArkitektContainer
    from arkitekt._host import AppScopeOwner, SyncHost
    from arkitekt._scope import AppSlot, Scope
    from arkitekt._settings import Settings
    from arkitekt.fakts import Fakts
    from arkitekt.mikro import Mikro
    from arkitekt.protocol.fakts import Manifest
    from arkitekt.rekuest import Rekuest

__all__ = ["App"]

P = ParamSpec("P")
R = TypeVar("R")


class _AppState:
    """Everything an app holds, set once in ``App.__init__``.

    The app's bookkeeping changes attributes of this object, so the app's own lock (no public
    assignment while open) never gets in its way.
    """

    __slots__ = ("app_slot", "async_owner", "container", "sync_host", "token")

    def __init__(self, app_slot: AppSlot, container: ArkitektContainer) -> None:
        self.app_slot = app_slot
        self.container = container
        self.sync_host: SyncHost | None = None
        self.async_owner: AppScopeOwner | None = None
        self.token: Token[Scope | None] | None = None


class App:
    """An arkitekt app: a manifest, settings, and a container of services.

    Build one with :func:`easy`. Use it as a context manager to open its APP scope: ``with
    app:`` runs the app's event loop in a background thread (works in scripts and notebooks);
    ``async with app:`` runs it on the caller's loop. Inside, API functions such as
    ``arkitekt.mikro.from_xarray`` find the app's services; outside, they raise
    :class:`~arkitekt.errors.NoActiveAppError`.

    Args:
        manifest: who the app is (identifier, version, scopes).
        settings: how it connects; default: :func:`~arkitekt.load_settings`.
        container: a container class (a subclass of
            :class:`~arkitekt.extension.ArkitektContainer` to add providers).

    Raises:
        ScopeError: a provider of ``container`` captures a shorter-lived one.

    """

    _state: _AppState

    def __init__(
        self,
        manifest: Manifest,
        settings: Settings | None = None,
        *,
        container: type[ArkitektContainer] | None = None,
    ) -> None:
        from dependency_injector import providers

        from arkitekt._container import ArkitektContainer, check_scopes
        from arkitekt._scope import AppSlot
        from arkitekt._settings import load_settings
        from arkitekt.protocol.redact import install_redaction

        install_redaction()  # no credential of this app may reach any log of this process
        app_slot = AppSlot(manifest.identifier)
        built = (container or ArkitektContainer)(
            app_slot=providers.Object(app_slot),
            manifest=providers.Object(manifest),
            settings=providers.Object(settings if settings is not None else load_settings()),
        )
        app_slot.container = built
        check_scopes(built)
        object.__setattr__(self, "_state", _AppState(app_slot, built))

    def __setattr__(self, name: str, value: Any) -> None:
        if self._state.app_slot.is_open:
            raise ScopeLockedError(
                f"cannot set App.{name} while app {self._state.app_slot.name!r} is open; "
                "configure the app before `with app:`"
            )
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<App {self.manifest.identifier}@{self.manifest.version} ({state})>"

    @property
    def app_slot(self) -> AppSlot:
        """The app's handle on its open APP scope (for service authors)."""
        return self._state.app_slot

    @property
    def container(self) -> ArkitektContainer:
        """The app's dependency-injection container."""
        return self._state.container

    @property
    def manifest(self) -> Manifest:
        """Who the app is."""
        manifest: Manifest = self.container.manifest()
        return manifest

    @property
    def settings(self) -> Settings:
        """How the app connects."""
        settings: Settings = self.container.settings()
        return settings

    @property
    def fakts(self) -> Fakts:
        """Discovery and grants (configure before entering: ``app.fakts.grant = ...``)."""
        fakts: Fakts = self.container.fakts()
        return fakts

    @property
    def mikro(self) -> Mikro:
        """The image service."""
        mikro: Mikro = self.container.mikro()
        return mikro

    @property
    def rekuest(self) -> Rekuest:
        """The function service."""
        rekuest: Rekuest = self.container.rekuest()
        return rekuest

    @property
    def is_open(self) -> bool:
        """Whether the app's scope is open right now."""
        return self._state.app_slot.is_open

    # -- scope -----------------------------------------------------------------------------
    def __enter__(self) -> App:
        from arkitekt._host import SyncHost
        from arkitekt._scope import activate

        state = self._state
        host = SyncHost(state.app_slot)
        scope = host.start()  # raises ScopeError if the app is open already
        state.sync_host, state.token = host, activate(scope)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._state
        host, token = state.sync_host, state.token
        if host is None or token is None:
            raise ScopeError("App.__exit__ without a matching `with app:`")
        state.sync_host = state.token = None
        misplaced = self._deactivate(token)
        host.stop(exc)  # also when misplaced: an app must never be stranded open
        if misplaced is not None:
            raise misplaced

    async def __aenter__(self) -> App:
        from arkitekt._bridge import Bridge
        from arkitekt._host import AppScopeOwner
        from arkitekt._scope import activate

        state = self._state
        owner = AppScopeOwner(state.app_slot, Bridge.here())
        await owner.__aenter__()  # raises ScopeError if the app is open already
        state.async_owner, state.token = owner, activate(owner.scope)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._state
        owner, token = state.async_owner, state.token
        if owner is None or token is None:
            raise ScopeError("App.__aexit__ without a matching `async with app:`")
        state.async_owner = state.token = None
        misplaced = self._deactivate(token)
        await owner.__aexit__(exc_type, exc, tb)
        if misplaced is not None:
            raise misplaced

    def _deactivate(self, token: Token[Scope | None]) -> ScopeError | None:
        """Restore the binding ``token`` replaced; the error to raise once the app is closed."""
        from arkitekt._scope import deactivate

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
            A script that serves until Ctrl+C::

                with app:
                    app.run()

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
            >>> from arkitekt.mikro import from_xarray
            >>> array = xr.DataArray(np.zeros((4, 4)), dims=["y", "x"])
            >>> with app:
            ...     future = app.run_in_thread(from_xarray, array, name="in a thread")
            ...     future.result().name
            'in a thread'

        """
        import concurrent.futures

        from arkitekt._scope import activate

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
            >>> class FakeMikro:
            ...     '''Stands in for the image service in a test.'''
            >>> fake = FakeMikro()
            >>> with app.override(mikro=fake):
            ...     with app:
            ...         app.mikro is fake
            True

        Raises:
            UnknownProviderError: a name is not a provider of the app's container.
            ScopeLockedError: the app is open (override before entering it).

        """
        from dependency_injector import providers

        if self.app_slot.is_open:
            raise ScopeLockedError(
                f"cannot override providers while app {self.app_slot.name!r} is open; "
                "override before `with app:`"
            )
        known = self.container.providers
        with ExitStack() as stack:
            for name, value in replacements.items():
                if name not in known:
                    raise UnknownProviderError(name, known, f"app {self.app_slot.name!r}")
                replacement = (
                    value if isinstance(value, providers.Provider) else providers.Object(value)
                )
                stack.enter_context(known[name].override(replacement))
            yield self
