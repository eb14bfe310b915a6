"""A tiny router: path templates like `/v1/documents/{document_id}`, 404 vs 405, and the
metadata the OpenAPI document is generated from (so the document lists exactly what is served).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from common.platform.errors import ApiError

if TYPE_CHECKING:
    import flask
    from pydantic import BaseModel

    from common.query.api.context import RequestContext

Handler = Callable[["RequestContext", "flask.Request", dict[str, uuid.UUID]], "flask.Response"]

_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    operation_id: str
    summary: str
    authenticated: bool = True
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    # Extra documented statuses besides the success one and those every route can return.
    statuses: tuple[int, ...] = ()
    # 201 for a created resource, 202 for accepted work.
    success_status: int = 200
    query_parameters: tuple[tuple[str, dict[str, object], str], ...] = ()
    streams: bool = False
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(_compile(self.template)))

    @property
    def path_parameters(self) -> list[str]:
        return _PARAM.findall(self.template)


def _compile(template: str) -> str:
    parts = []
    position = 0
    for match in _PARAM.finditer(template):
        parts.append(re.escape(template[position : match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        position = match.end()
    parts.append(re.escape(template[position:]))
    return "^" + "".join(parts) + "$"


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def match(self, method: str, path: str) -> tuple[Route, dict[str, uuid.UUID]]:
        """The route and its (UUID) path parameters; 404 for unknown paths, 405 for methods.

        A path parameter that is not a UUID names nothing that can exist: 404, not 422.
        """
        allowed: list[str] = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            params: dict[str, uuid.UUID] = {}
            for name, value in found.groupdict().items():
                try:
                    params[name] = uuid.UUID(value)
                except ValueError:
                    raise ApiError(
                        404, "not_found", f"no such {name.removesuffix('_id')}"
                    ) from None
            return route, params
        if allowed:
            raise MethodNotAllowedError(sorted(set(allowed)))
        raise ApiError(404, "not_found", f"no route for {path}")


class MethodNotAllowedError(ApiError):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(405, "method_not_allowed", f"allowed methods: {', '.join(allowed)}")
        self.allowed = allowed
