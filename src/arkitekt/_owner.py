"""The one rule for "which app owns this call".

Every API function, ``@inject``, the sync and async twins and the scoped resources ask
:func:`owner_scope`, so they all agree:

1. an explicit service among the arguments (``mikro=app_b.mikro``, or passed positionally) names
   its app: the call runs in that app's scope, even inside ``with app_a:`` (the twins run it on
   that app's loop with its scope active, so calls nested in it resolve there too; ``@inject``
   resolves its parameters there); when the active scope belongs to that same app, the active
   one is used (it may be a TASK scope nested in the app's);
2. otherwise the scope active in this thread or task;
3. otherwise :class:`~arkitekt.errors.NoActiveAppError`.
"""

from __future__ import annotations

from collections.abc import Iterable

from arkitekt._scope import AppSlot, Scope, _active
from arkitekt._service import Service
from arkitekt.errors import NoActiveAppError

__all__ = ["NOT_OWNERS", "owner_scope"]

_OWNERS = (Service, AppSlot)

# Types seen to name no app (neither a Service nor an AppSlot). ``@inject``'s generated code
# skips the call to owner_scope when every argument's type is here: a scan costs as much as the
# rest of an injection.
NOT_OWNERS: set[type] = set()


def owner_scope(values: Iterable[object], what: str) -> Scope:
    """Return the scope a call runs in, given its arguments.

    Args:
        values: the call's arguments; a :class:`~arkitekt.extension.Service` (or an
            :class:`~arkitekt.extension.AppSlot`) among them names the app that owns the call.
        what: the call, for the error message (e.g. ``"from_xarray()"``).

    Raises:
        NoActiveAppError: no explicit service and no active scope.
        AppClosedError: the explicit service's app is not open.

    """
    active = _active.get()
    for value in values:
        cls = type(value)
        if cls in NOT_OWNERS:
            continue
        if not isinstance(value, _OWNERS):
            NOT_OWNERS.add(cls)
            continue
        slot = value.app_slot if isinstance(value, Service) else value
        if active is not None and active.app_slot is slot:
            return active
        return slot.scope
    if active is None:
        raise NoActiveAppError(what)
    return active
