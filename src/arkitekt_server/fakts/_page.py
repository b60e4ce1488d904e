"""The approval page: the app's identifier, version and scopes with Approve / Deny."""

from __future__ import annotations

from html import escape

from arkitekt_server.fakts._models import DeviceCode

__all__ = ["approval_page", "message_page", "signin_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem; }
h1 { font-size: 1.4rem; } code { background: #eee; padding: 0 .3rem; }
button { font-size: 1rem; padding: .5rem 1.5rem; margin-right: 1rem; }
input[type=password] { font-size: 1rem; padding: .4rem; width: 100%; margin: .5rem 0 1rem; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def message_page(title: str, message: str) -> str:
    """A page with a heading and one message."""
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")


def approval_page(row: DeviceCode, code: str, nonce: str, deployment: str) -> str:
    """The form that approves or denies ``code``; ``nonce`` guards it against cross-site posts."""
    scopes = "".join(f"<li><code>{escape(s)}</code></li>" for s in row.scopes) or "<li>none</li>"
    body = (
        f"<h1>Allow an app to use {escape(deployment)}?</h1>"
        f"<p>App <strong>{escape(row.identifier)}</strong> version "
        f"<strong>{escape(row.version)}</strong> asks for access.</p>"
        f"<p>Scopes:</p><ul>{scopes}</ul>"
        f"<p>Code: <code>{escape(code)}</code></p>"
        "<form method='post' action='./'>"
        f"<input type='hidden' name='device_code' value='{escape(code, quote=True)}'>"
        f"<input type='hidden' name='nonce' value='{escape(nonce, quote=True)}'>"
        "<button name='action' value='approve' type='submit'>Approve</button>"
        "<button name='action' value='deny' type='submit'>Deny</button>"
        "</form>"
    )
    return _page("Approve app", body)


def signin_page(code: str, deployment: str, error: str = "") -> str:
    """The operator's sign-in form, shown instead of the decision until the operator signed in."""
    problem = f"<p><strong>{escape(error)}</strong></p>" if error else ""
    body = (
        f"<h1>Sign in to decide for {escape(deployment)}</h1>{problem}"
        "<p>An app asks for access. Only the operator of this server may decide: enter the "
        "operator secret that <code>arkitekt server</code> printed to its terminal when it "
        "started (it is in the file <code>operator-secret</code> in the server's data "
        "directory), or decide "
        f"with <code>arkitekt approve {escape(code)}</code> on the server's machine.</p>"
        "<form method='post' action='../signin/'>"
        f"<input type='hidden' name='device_code' value='{escape(code, quote=True)}'>"
        "<label>Operator secret<input type='password' name='secret' autocomplete='off' "
        "required autofocus></label>"
        "<button type='submit'>Sign in</button>"
        "</form>"
    )
    return _page("Sign in", body)
