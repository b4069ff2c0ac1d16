"""The headers every answer carries: no caching of personal data, no sniffing, no framing, no scripts but kodex's.

- `Cache-Control: no-store` (RFC 9111, 5.2.2.5): answers name readers, so neither a browser nor a proxy may keep
  them; only the documentation's packaged scripts and styles (/docs-assets) may be cached.
- `X-Content-Type-Options: nosniff`: a JSON Lines export is never run as a script or shown as a page.
- `Content-Security-Policy` with `frame-ancestors 'none'`, and `X-Frame-Options: DENY` for older browsers: no page
  of kodex is framed. The API's answers are data, so they may load nothing (`default-src 'none'`); /docs and
  /redoc may run the scripts and styles kodex serves itself (api/docs.py), fetch the OpenAPI schema, and start
  Redoc's search worker — nothing from elsewhere.
- `Referrer-Policy: no-referrer`: a path holding a reader id is not passed on to another site.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_POLICY", "DOCS_POLICY", "SecurityHeaders"]

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)  # Swagger UI and Redoc set styles on their elements: inline styles, never inline scripts
DOCS_PAGES = ("/docs", "/redoc")
ASSETS = "/docs-assets/"

_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP answer, errors included (it stands outside the rest)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        policy = DOCS_POLICY if path in DOCS_PAGES or path.startswith(("/docs/", ASSETS)) else API_POLICY
        added = [*_ALWAYS, (b"content-security-policy", policy.encode())]
        if not path.startswith(ASSETS):
            added.append((b"cache-control", b"no-store"))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in added}
                kept = [(name, value) for name, value in message.get("headers", []) if name.lower() not in names]
                message = {**message, "headers": kept + added}
            await send(message)

        await self.app(scope, receive, sending)
