"""`ai-infra ask`: a question from the terminal, answered in-process as the query API does."""

import json
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from common.cli.context import CliError, connect, state_of
from common.cli.output import emit
from common.cli.resolve import find_project
from common.platform.db import transaction
from common.platform.errors import ApiError


def pages(citation: Mapping[str, Any]) -> str:
    if citation.get("location"):
        return str(citation["location"])
    start, end = citation.get("page_start"), citation.get("page_end")
    if start is None:
        return ""
    if end is None or end == start:
        return f"p. {start}"
    return f"pp. {start}-{end}"


def render_answer(out: Console, payload: Mapping[str, Any]) -> None:
    answer = payload.get("answer")
    citations = payload.get("citations") or []
    if answer:
        out.print(answer, markup=False)
        out.print()
    elif answer is None and not citations:
        out.print("no matching passages")
    for index, citation in enumerate(citations, start=1):
        number = citation.get("source") or citation.get("rank") or index
        where = ", ".join(part for part in (citation.get("title") or "?", pages(citation)) if part)
        out.print(f"[{number}] {where}", markup=False)
        if answer is None and citation.get("snippet"):
            out.print(f"    {' '.join(str(citation['snippet']).split())}", markup=False)


def ask_command(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question, quoted.")],
    *,
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    top_k: Annotated[
        int | None, typer.Option("--top-k", "-k", min=1, help="How many passages to retrieve.")
    ] = None,
    retrieve: Annotated[
        bool, typer.Option("--retrieve", help="Only retrieve passages; generate no answer.")
    ] = False,
    document_filter: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="Only documents whose attributes match, as JSON: "
            '\'{"equals": {"key": "department", "value": "legal"}}\'',
        ),
    ] = None,
) -> None:
    """Ask a question over a project's documents; prints the answer and numbered citations."""
    try:
        from common.query.auth import Principal
        from common.query.service import QueryRequest, run_query
    except ImportError:
        raise CliError("asking is not available in this version (common.query.service)") from None
    fields: dict[str, Any] = {"question": question, "mode": "retrieve" if retrieve else "answer"}
    if top_k is not None:
        fields["top_k"] = top_k
    if document_filter is not None:
        from common.query.filters import parse_filter_text

        try:
            fields["filter"] = parse_filter_text(document_filter, path="--filter")
        except ApiError as error:
            raise CliError(error.message) from None
    try:
        request = QueryRequest(**fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'request'}: {item['msg']}"
            for item in error.errors()
        )
        raise CliError(f"invalid question: {problems}") from None
    connect(ctx)
    with transaction() as session:
        owner = find_project(session, project)
        principal = Principal(team_id=owner.team_id, api_key_id=None)
        project_id = owner.id
    try:
        result = run_query(principal, project_id, request, f"cli-{uuid.uuid4().hex}")
    except ApiError as error:
        if error.status >= 500:
            raise
        raise CliError(error.message) from None
    payload = result.to_json()
    if isinstance(payload, str | bytes):
        payload = json.loads(payload)
    emit(state_of(ctx), payload, lambda out: render_answer(out, payload))
