"""The approval page: the app's identifier, version and scopes with Approve / Deny."""

from __future__ import annotations

from html import escape

from arkitekt_server.fakts.models import DeviceCode

__all__ = ["approval_page", "message_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem; }
h1 { font-size: 1.4rem; } code { background: #eee; padding: 0 .3rem; }
button { font-size: 1rem; padding: .5rem 1.5rem; margin-right: 1rem; }
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
