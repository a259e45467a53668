"""/docs (Swagger UI) and /redoc (ReDoc) from vendored files, and /question: nothing from a CDN.

FastAPI's own pages load Swagger UI, ReDoc, a favicon and Google fonts from CDNs, which a classroom
without internet cannot reach; create_app() turns them off (docs_url=None, redoc_url=None). These pages
load only static/vendor/swagger-ui and static/vendor/redoc (copied from the npm packages swagger-ui-dist
and redoc, with their licences) and start them from a script file, so the site's Content-Security-Policy
(scripts from this origin only, no inline script) needs no exception.
"""
from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from app.assets import QUESTION

router = APIRouter(include_in_schema=False)

SWAGGER = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} - Swagger UI</title>
  <link rel="icon" type="image/png" href="{root}/vendor/swagger-ui/favicon-32x32.png">
  <link rel="stylesheet" href="{root}/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi}"></div>
  <script src="{root}/vendor/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="{root}/vendor/swagger-ui/playground-init.js"></script>
</body>
</html>
"""

REDOC = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - ReDoc</title>
  <link rel="icon" href="data:,">
</head>
<body>
  <redoc spec-url="{openapi}" disable-search="true"></redoc>
  <script src="{root}/vendor/redoc/redoc.standalone.js"></script>
</body>
</html>
"""


def _page(template: str, request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    app = request.app
    return HTMLResponse(template.format(title=escape(app.title), root=escape(root),
                                        openapi=escape(root + (app.openapi_url or "/openapi.json"))))


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    return _page(SWAGGER, request)


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return _page(REDOC, request)


@router.get("/question", response_class=FileResponse)
def question() -> FileResponse:
    """docs/question.md, the question the project started from, as plain text (it reads as such)."""
    return FileResponse(QUESTION, media_type="text/plain; charset=utf-8")
