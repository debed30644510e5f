"""The approvers' web dashboard: one HTML page, one script and one stylesheet, served by the
gateway app at ``GET /dashboard`` (``/`` redirects there).

The page is static and holds no data: its script calls the gateway's own REST API under
``/api/v1`` with the API key the user pastes (kept in the tab's ``sessionStorage``), so the
dashboard adds no backend logic and no way around key scopes. The files are package data
of the layer, so uvicorn locally and Mangum in Lambda serve the same bytes with no CDN.

Every response carries a strict Content-Security-Policy: scripts, styles and fetches from
this origin only, no inline code, no frames, and Trusted Types required so a browser
refuses any HTML string sink (``innerHTML`` and the like) outright. This module must never
serve a file that is not in ``ASSETS`` (no path from the request reaches the filesystem).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

DASHBOARD_PATH = "/dashboard"

# URL path → (file in this package, content type). Fixed, so a request never names a file.
ASSETS: dict[str, tuple[str, str]] = {
    DASHBOARD_PATH: ("index.html", "text/html; charset=utf-8"),
    f"{DASHBOARD_PATH}/app.js": ("app.js", "text/javascript; charset=utf-8"),
    f"{DASHBOARD_PATH}/app.css": ("app.css", "text/css; charset=utf-8"),
}

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Small files that change with every deployment: revalidate rather than serve stale code.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@cache
def _read(filename: str) -> bytes:
    return resources.files(__package__).joinpath(filename).read_bytes()


def _asset_route(path: str, filename: str, content_type: str) -> None:
    async def serve() -> Response:
        return Response(_read(filename), media_type=content_type, headers=SECURITY_HEADERS)

    router.add_api_route(path, serve, methods=["GET", "HEAD"], name=f"dashboard:{filename}")


for _path, (_filename, _content_type) in ASSETS.items():
    _asset_route(_path, _filename, _content_type)


@router.get("/")
async def root() -> RedirectResponse:
    # template.yaml routes GET / to the gateway function, so the bare API URL opens the dashboard.
    return RedirectResponse(DASHBOARD_PATH, status_code=307)
