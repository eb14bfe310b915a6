"""A team's projects as `GET /v1/projects` shows them: what a key holder may pick from.

Scoped by team like every read of this flow: another team's projects are never listed. One
statement counts each project's documents by status, so the listing costs one round trip.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.orm import Session

from common.platform.models import DocumentStatus

# A team's projects are few (they are made by an operator); past this the listing is cut.
MAX_PROJECTS = 1000


class DocumentCounts(BaseModel):
    total: int
    uploaded: int
    processing: int
    ready: int
    failed: int


class ProjectView(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    documents: DocumentCounts


class ProjectList(BaseModel):
    projects: list[ProjectView] = Field(description=f"By name; at most {MAX_PROJECTS}.")


_STATUSES = tuple(status.value for status in DocumentStatus)
_LIST = text(
    f"""
    SELECT p.id, p.name, p.created_at,
           count(d.id) AS total,
           {", ".join(f"count(d.id) FILTER (WHERE d.status = '{s}') AS {s}" for s in _STATUSES)}
    FROM projects p
    LEFT JOIN documents d ON d.project_id = p.id AND d.team_id = p.team_id
    WHERE p.team_id = :team_id
    GROUP BY p.id, p.name, p.created_at
    ORDER BY p.name, p.id
    LIMIT :limit
    """
)


def team_projects(session: Session, team_id: uuid.UUID) -> ProjectList:
    rows = session.execute(_LIST, {"team_id": team_id, "limit": MAX_PROJECTS}).all()
    return ProjectList(
        projects=[
            ProjectView(
                id=row.id,
                name=row.name,
                created_at=row.created_at,
                documents=DocumentCounts(
                    total=row.total, **{status: getattr(row, status) for status in _STATUSES}
                ),
            )
            for row in rows
        ]
    )
