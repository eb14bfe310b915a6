"""The query function's HTTP API: routing, validation, errors, OpenAPI (Flask request in)."""

from common.query.api.app import ROUTES, framework_error, handle

__all__ = ["ROUTES", "framework_error", "handle"]
