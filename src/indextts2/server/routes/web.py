"""The web page: static HTML, CSS and JavaScript shipped in the package (``server/webui``)."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from litestar import Response, get
from litestar.static_files import create_static_files_router

__all__ = ["HANDLERS", "WEBUI"]

WEBUI = resources.files("indextts2.server") / "webui"


@functools.cache
def _page() -> bytes:
    return (WEBUI / "index.html").read_bytes()


@get("/", opt={"web_page": True}, include_in_schema=False, cache=False)
async def index_page() -> Response[bytes]:
    return Response(
        content=_page(), media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


HANDLERS: list[Any] = [
    index_page,
    create_static_files_router(
        path="/ui", directories=[str(WEBUI)], opt={"public": True}, include_in_schema=False, name="webui"
    ),
]
