"""The two pages and their static files, each answered with strict security headers.

The Content-Security-Policy allows scripts, styles and requests from this origin only, no
inline script or style, no plugins and no framing; Trusted Types with no policy at all turn
any assignment of a string to an HTML sink (``innerHTML`` and the like) into an error, so a
model's answer or a document's text can only ever reach the page as text nodes.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from shared.http import json_error

STATIC = Path(__file__).parent / "static"
STATIC_PREFIX = "/web/"

CSP = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
))

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    # Revalidate every time: a new release must not run against an old script.
    "Cache-Control": "no-cache",
}

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# The files that may be served, fixed when the module loads: a request names one of these or
# gets a 404, so no path from a URL ever reaches the file system.
FILES = {p.name: p for p in sorted(STATIC.iterdir())
         if p.is_file() and p.suffix in MEDIA_TYPES}
ASSETS = tuple(STATIC_PREFIX + name for name in FILES if not name.endswith(".html"))


def _file(name: str) -> Response:
    path = FILES.get(name)
    if path is None:
        return json_error(404, "not found", "invalid_request_error")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


async def chat_page(request: Request) -> Response:
    return _file("chat.html")


async def admin_page(request: Request) -> Response:
    return _file("admin.html")


async def asset(request: Request) -> Response:
    name = str(request.path_params["name"])
    if name.endswith(".html"):
        return json_error(404, "not found", "invalid_request_error")
    return _file(name)
