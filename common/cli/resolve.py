"""Turn what an operator types (a name, an id, a key prefix) into rows, or one clear error."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.cli.context import CliError
from common.platform.models import ApiKey, Document, Project, Team
from common.query import auth

# A shorter prefix would match too many keys to be a deliberate choice.
MIN_KEY_PREFIX = 8


def as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def parse_uuid(value: str, what: str) -> uuid.UUID:
    parsed = as_uuid(value.strip())
    if parsed is None:
        raise CliError(f"{what} must be a UUID, got {value!r}")
    return parsed


def find_team(session: Session, ref: str) -> Team:
    """A team by id or by (unique) name."""
    ident = as_uuid(ref)
    team = (
        session.get(Team, ident)
        if ident
        else session.scalars(select(Team).where(Team.name == ref)).first()
    )
    if team is None:
        raise CliError(f"unknown team {ref!r}")
    return team


def find_project(session: Session, ref: str, team: Team | None = None) -> Project:
    """A project by id, or by name (unique within a team; ambiguous across teams)."""
    ident = as_uuid(ref)
    if ident is not None:
        project = session.get(Project, ident)
        if project is None or (team is not None and project.team_id != team.id):
            raise CliError(f"unknown project {ref!r}")
        return project
    query = select(Project).where(Project.name == ref)
    if team is not None:
        query = query.where(Project.team_id == team.id)
    projects = session.scalars(query).all()
    if not projects:
        raise CliError(f"unknown project {ref!r}")
    if len(projects) > 1:
        ids = ", ".join(str(p.id) for p in projects)
        raise CliError(f"project name {ref!r} exists in several teams; use its id ({ids})")
    return projects[0]


def find_key(session: Session, ref: str) -> ApiKey:
    """A key by id, by the raw key itself, or by its displayed prefix (must be unambiguous)."""
    ident = as_uuid(ref)
    if ident is not None:
        key = session.get(ApiKey, ident)
        if key is None:
            raise CliError(f"unknown key {ref!r}")
        return key
    by_hash = session.scalars(
        select(ApiKey).where(ApiKey.key_hash == auth.hash_api_key(ref))
    ).first()
    if by_hash is not None:
        return by_hash
    if len(ref) < MIN_KEY_PREFIX:
        raise CliError(
            f"key prefix {ref!r} is too short: give at least {MIN_KEY_PREFIX} characters"
        )
    # The stored prefix is short; a longer ref is a key that did not match the hash above.
    keys = session.scalars(
        select(ApiKey).where(ApiKey.key_prefix.startswith(ref, autoescape=True))
    ).all()
    if not keys:
        raise CliError(f"unknown key {ref!r}")
    if len(keys) > 1:
        raise CliError(f"key prefix {ref!r} matches {len(keys)} keys; use the key id")
    return keys[0]


def find_document(session: Session, ref: str) -> Document:
    document = session.get(Document, parse_uuid(ref, "document id"))
    if document is None:
        raise CliError(f"unknown document {ref!r}")
    return document
