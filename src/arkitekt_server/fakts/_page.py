"""The approval page: the deployment, the app (logo, name, version), what it asks for, and
Approve / Deny; the operator's sign-in form before it.

Pages carry :data:`PAGE_CSP`: no script at all, styles inline, images only from ``data:`` (an
app's logo), forms posting to this server only. Names are shown inside ``<bdi>`` (and the
manifest refuses control and text-direction characters), so no name reads as another.
"""

from __future__ import annotations

import re
from html import escape

from arkitekt_server.fakts._models import DeviceCode

__all__ = ["PAGE_CSP", "approval_page", "logo_source", "message_page", "signin_page"]

PAGE_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The Content-Security-Policy of the approval and sign-in pages."""

_IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=]+")

_STYLE = """
:root { color-scheme: light; --ink: #1d2433; --muted: #5b6475; --line: #e3e6ec;
  --accent: #2456d6; --danger: #b42318; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
  background: #f4f6fa; margin: 0; padding: 3rem 1rem; }
main { max-width: 32rem; margin: 0 auto; background: #fff; border: 1px solid var(--line);
  border-radius: 12px; box-shadow: 0 6px 24px rgba(20, 30, 60, .08); overflow: hidden; }
.deployment { background: var(--ink); color: #fff; padding: .8rem 1.5rem; font-weight: 600;
  letter-spacing: .02em; }
.content { padding: 1.5rem; }
.app { display: flex; gap: 1rem; align-items: center; margin-bottom: 1.2rem; }
.logo { width: 56px; height: 56px; border-radius: 12px; object-fit: contain; flex: none;
  background: #eef1f7; display: flex; align-items: center; justify-content: center;
  font-size: 1.6rem; font-weight: 700; color: var(--accent); }
h1 { font-size: 1.25rem; margin: 0 0 .2rem; } h2 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.version { color: var(--muted); }
ul.scopes { margin: 0; padding-left: 1.2rem; } ul.scopes li { margin: .2rem 0; }
code { background: #eef1f7; padding: .05rem .35rem; border-radius: 4px; }
.code { color: var(--muted); margin-top: 1.2rem; }
.actions { display: flex; gap: .8rem; margin-top: 1.5rem; }
button { font: inherit; font-weight: 600; padding: .65rem 1.6rem; border-radius: 8px;
  cursor: pointer; border: 1px solid var(--line); background: #fff; color: var(--ink); }
button.approve { background: var(--accent); border-color: var(--accent); color: #fff; }
button.deny { color: var(--danger); }
label { display: block; font-weight: 600; margin-top: 1rem; }
input[type=password] { font: inherit; padding: .5rem; width: 100%; margin: .4rem 0 1rem;
  border: 1px solid var(--line); border-radius: 6px; }
"""


def _page(title: str, body: str, deployment: str = "arkitekt") -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)} · {escape(deployment)}</title><style>{_STYLE}</style></head>"
        f"<body><main><div class='deployment'>{escape(deployment)}</div>"
        f"<div class='content'>{body}</div></main></body></html>"
    )


def logo_source(logo: str | None) -> str | None:
    """The ``src`` an app's logo is shown with, or ``None`` when it is not shown.

    Only base64 ``data:image/...`` URLs: the logo travels in the app's request. A logo at an
    address would make the operator's browser contact a host the app chose when the page
    opens (telling it who looks, and when), or send a request to an address on the
    operator's network.

    Example:
        >>> logo_source("data:image/png;base64,iVBORw0KGgo=")
        'data:image/png;base64,iVBORw0KGgo='
        >>> logo_source("https://tracker.example/pixel.png") is None
        True

    """
    if logo is not None and _IMAGE_DATA.fullmatch(logo):
        return logo
    return None


def message_page(title: str, message: str) -> str:
    """A page with a heading and one message."""
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")


def _logo(row: DeviceCode) -> str:
    source = logo_source(row.logo)
    if source is None:  # the app's initial instead
        return f"<div class='logo' aria-hidden='true'>{escape(row.identifier[:1].upper())}</div>"
    return (
        f"<img class='logo' src='{escape(source, quote=True)}' alt='logo of "
        f"{escape(row.identifier, quote=True)}'>"
    )


def approval_page(row: DeviceCode, code: str, nonce: str, deployment: str) -> str:
    """The form that approves or denies ``code``; ``nonce`` guards it against cross-site posts."""
    scopes = "".join(f"<li><code><bdi>{escape(s)}</bdi></code></li>" for s in row.scopes)
    asks = (
        f"<ul class='scopes'>{scopes}</ul>"
        if scopes
        else "<p>No particular permissions: what any approved app of this server may do.</p>"
    )
    body = (
        f"<div class='app'>{_logo(row)}<div>"
        f"<h1>Allow an app to use <bdi>{escape(deployment)}</bdi>?</h1>"
        f"<div><strong class='identifier'><bdi>{escape(row.identifier)}</bdi></strong> "
        f"<span class='version'>version <bdi>{escape(row.version)}</bdi></span> asks for "
        "access.</div>"
        "</div></div>"
        f"<h2>It asks for</h2>{asks}"
        f"<p class='code'>The app shows the code <code>{escape(code)}</code>; approve only if "
        "it is the one you see there.</p>"
        "<form method='post' action='./'>"
        f"<input type='hidden' name='device_code' value='{escape(code, quote=True)}'>"
        f"<input type='hidden' name='nonce' value='{escape(nonce, quote=True)}'>"
        "<div class='actions'>"
        "<button class='approve' name='action' value='approve' type='submit'>Approve</button>"
        "<button class='deny' name='action' value='deny' type='submit'>Deny</button>"
        "</div></form>"
    )
    return _page("Approve app", body, deployment)


def signin_page(code: str, deployment: str, error: str = "") -> str:
    """The operator's sign-in form.

    With a device ``code``: shown instead of the decision until the operator signed in; back
    to the approval page after. Without one: the sign-in to browse the image gallery.
    """
    problem = f"<p><strong>{escape(error)}</strong></p>" if error else ""
    where = (
        "enter the operator secret that <code>arkitekt server</code> printed to its terminal "
        "when it started (it is in the file <code>operator-secret</code> in the server's data "
        "directory)"
    )
    if code:
        intro = (
            f"<h1>Sign in to decide for {escape(deployment)}</h1>{problem}"
            "<p>An app asks for access. Only the operator of this server may decide: "
            f"{where}, or decide with <code>arkitekt approve {escape(code)}</code> on the "
            "server's machine.</p>"
        )
    else:
        intro = (
            f"<h1>Sign in to {escape(deployment)}</h1>{problem}"
            f"<p>To browse the images that are not private: {where}.</p>"
        )
    body = (
        f"{intro}<form method='post' action='{'../signin/' if code else './'}'>"
        f"<input type='hidden' name='device_code' value='{escape(code, quote=True)}'>"
        "<label>Operator secret<input type='password' name='secret' autocomplete='off' "
        "required autofocus></label>"
        "<button class='approve' type='submit'>Sign in</button>"
        "</form>"
    )
    return _page("Sign in", body, deployment)
