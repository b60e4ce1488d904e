"""Who the app is connected as: the server's ``userinfo`` for the app's bearer token."""

from __future__ import annotations

from arkitekt._http import read_model
from arkitekt._inject import Provide, inject
from arkitekt._twins import loopsafe, syncify
from arkitekt.errors import BadResponseError
from arkitekt.fakts import Fakts
from arkitekt.protocol.fakts import UserInfo
from arkitekt.transport._client import Transport

__all__ = ["awhoami", "whoami"]


@loopsafe
@inject
async def awhoami(*, fakts: Fakts = Provide("fakts")) -> UserInfo:
    """Ask the server who the active app's token belongs to.

    The first call in a scope discovers the server and gets the app approved.

    Args:
        fakts: the app's fakts service (default: the active app's); pass ``fakts=app.fakts``
            to ask for another open app, from any thread.

    Example:
        >>> from arkitekt import whoami
        >>> with app:
        ...     whoami().identifier
        'doc-app'

    Raises:
        NoActiveAppError: no app is open here.
        GrantError: the server did not accept the app.
        BadResponseError: the server's answer is not a ``userinfo`` (an error status other
            than 401/403, or another shape).

    """
    transport: Transport = await fakts.app_slot.container.transport()
    lok = await transport.agroup("lok")
    url = lok.get("userinfo_url") or str(lok.get("base_url", "")).rstrip("/") + "/userinfo/"
    response = await transport.client.get(url)
    return read_model(response, UserInfo, "userinfo", off_protocol=BadResponseError)


whoami = syncify(awhoami)
