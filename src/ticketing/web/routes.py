"""The static web front end: plain HTML, CSS and ES modules, served from the package."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from ticketing.deps import SettingsDep

STATIC_DIR = Path(__file__).parent / "static"
APP_NAME_MARK = "__APP_NAME__"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index(settings: SettingsDep) -> HTMLResponse:
    # The page carries APP_NAME (escaped); everything else it learns from the JSON API.
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    page = page.replace(APP_NAME_MARK, html.escape(settings.app_name, quote=True))
    # no-cache: a new release's page is picked up at once; assets are revalidated too.
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


class RevalidatedStaticFiles(StaticFiles):
    """Static files that the browser revalidates (ETag) on every use: no stale modules."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_files() -> StaticFiles:
    return RevalidatedStaticFiles(directory=STATIC_DIR)
