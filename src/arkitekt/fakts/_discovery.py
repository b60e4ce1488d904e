"""Discovery: find the fakts root of a server from a URL (``/.well-known/fakts``)."""

from __future__ import annotations

import httpx

from arkitekt._http import NO_AUTH, check_secure, read_model
from arkitekt.errors import BadResponseError, DiscoveryError, GrantError, ServerUnreachableError
from arkitekt.protocol.distribution import pip_hint
from arkitekt.protocol.fakts import WellKnown

__all__ = ["candidates", "discover"]

_HINT = (
    "Is the server running? Start a local one with `arkitekt server` "
    f"({pip_hint('server')}), or point the app elsewhere with FAKTS_URL=... "
    "or easy(..., url=...)."
)


def candidates(url: str) -> list[str]:
    """The URLs to try for ``url``: as given, or https then http when it has no scheme."""
    url = url.strip().rstrip("/")
    if "://" in url:
        return [url]
    return [f"https://{url}", f"http://{url}"]


async def discover(
    client: httpx.AsyncClient, url: str, *, per_url_timeout: float, allow_insecure: bool
) -> WellKnown:
    """Ask ``{url}/.well-known/fakts`` where the server's fakts root is.

    Raises:
        DiscoveryError: no candidate answered; the message lists each URL tried and why.
        InsecureTransportError: ``url`` is plain http to another machine.

    """
    tried: list[str] = []
    for candidate in candidates(url):
        target = httpx.URL(f"{candidate}/.well-known/fakts")
        check_secure(target, allow_insecure)
        try:
            response = await client.get(target, timeout=per_url_timeout, auth=NO_AUTH)
        except (ServerUnreachableError, BadResponseError) as error:  # the transport says why
            # the message ends with one hint for all candidates; the transport's is dropped
            tried.append(f"{target} ({str(error).removesuffix('; is the server running?')})")
            continue
        except httpx.TimeoutException:  # a plain httpx client (a custom grant's)
            tried.append(f"{target} (no answer within {per_url_timeout:g} s)")
            continue
        except httpx.TransportError as error:
            tried.append(f"{target} ({type(error).__name__}: {error or 'unreachable'})")
            continue
        try:
            known = read_model(response, WellKnown, "discovery")
        except GrantError as error:
            tried.append(f"{target} ({error})")
            continue
        check_secure(httpx.URL(known.base_url), allow_insecure)
        return known
    raise DiscoveryError("no fakts server found; tried " + "; ".join(tried) + ". " + _HINT)
