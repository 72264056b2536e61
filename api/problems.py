"""RFC 7807 problem responses: every error names what was wrong and, where it applies, the
parameter at fault."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM = "application/problem+json"


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str, param: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.param, self.extra = status, title, detail, \
            param, extra
        self.headers = headers


def problem_response(status: int, title: str, detail: str, instance: str,
                     param: str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status,
                            "detail": detail, "instance": instance}
    if param is not None:
        body["param"] = param
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, request.url.path, exc.param,
                                exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path")]
        param = ".".join(loc) or None
        detail = f"{param}: {first.get('msg', 'invalid')}" if param else first.get("msg", "")
        return problem_response(422, "Invalid request", detail, request.url.path, param)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """Anything unforeseen (a store that cannot write, a full disk) is still problem JSON:
        503 for an I/O or database error the client may retry, 500 otherwise."""
        import sqlite3

        retry = isinstance(exc, OSError | sqlite3.OperationalError)
        return problem_response(503 if retry else 500,
                                "Service unavailable" if retry else "Internal error",
                                f"{type(exc).__name__}: {exc}"[:500], request.url.path,
                                headers={"Retry-After": "5"} if retry else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, _title(exc.status_code), str(exc.detail),
                                request.url.path)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
