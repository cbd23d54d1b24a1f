"""The web routes, and the paths that need no token (the pages and their static files)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from functions.web import admin, pages

ROUTES: list[BaseRoute] = [
    Route("/", pages.chat_page, methods=["GET"]),
    Route("/admin", pages.admin_page, methods=["GET"]),
    Route(pages.STATIC_PREFIX + "{name}", pages.asset, methods=["GET"]),
    Route("/v1/admin/health", admin.health, methods=["GET"]),
    Route("/v1/admin/usage", admin.usage_series, methods=["GET"]),
    Route("/v1/admin/jobs/failed", admin.failed_jobs, methods=["GET"]),
    Route("/v1/admin/jobs/{job_id}/retry", admin.retry_job, methods=["POST"]),
    Route("/v1/admin/collections", admin.collections, methods=["GET"]),
    Route("/v1/admin/users/{platform}/{user}", admin.user_export, methods=["GET"]),
    Route("/v1/admin/users/{platform}/{user}", admin.user_forget, methods=["DELETE"]),
]

# The pages hold no data: whatever they show, they fetch with the signed-in person's token.
PUBLIC_PATHS: tuple[str, ...] = ("/", "/admin", *pages.ASSETS)
