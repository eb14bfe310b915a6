"""Synthetic corpus for bench/query.py: teams, projects, documents and chunks loaded with COPY.

Vectors are clustered like real embeddings (each chunk = a topic centroid + noise, cosine ~0.8
to its centroid); every project draws from its own subset of the shared topics, so a search
without the project filter would find other projects' chunks. Texts are random words from a
small vocabulary, so the full-text arm has work to do. The HNSW and GIN indexes are dropped
before loading and rebuilt afterwards with the migration's own definitions.
"""

from __future__ import annotations

import io
import random
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine, text

from common.platform.models import DocumentChunk
from common.query import auth

CENTROIDS = 2000
TOPICS_PER_PROJECT = 40
DOCUMENTS_PER_PROJECT = 10
WORDS_PER_CHUNK = 40
REBUILT_INDEXES = ("ix_document_chunks_embedding_hnsw", "ix_document_chunks_content_tsv")


@dataclass
class Project:
    id: uuid.UUID
    team_id: uuid.UUID
    api_key: str
    size: int
    topics: np.ndarray  # indexes into the centroid table


@dataclass
class Corpus:
    projects: list[Project]
    small: Project
    big: Project
    centroids: np.ndarray
    vocabulary: list[str]
    load_seconds: float = 0.0
    index_seconds: dict[str, float] = field(default_factory=dict)


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        length = rng.randint(2, 4)
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(length)))
    return sorted(words)


def unit(rows: np.ndarray) -> np.ndarray:
    result: np.ndarray = (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)
    return result


def sample_vectors(
    rng: np.random.Generator, centroids: np.ndarray, topics: np.ndarray, count: int
) -> np.ndarray:
    dim = centroids.shape[1]
    chosen = centroids[rng.choice(topics, size=count)]
    noise = rng.normal(0.0, 0.75 / np.sqrt(dim), size=(count, dim))
    return unit(chosen + noise)


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{v:.6g}" for v in vector.tolist()) + "]"


def _copy(engine: Engine, sql: str, payload: str) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(sql, stream=io.BytesIO(payload.encode()))  # type: ignore[call-arg]
        raw.commit()
    finally:
        raw.close()


def _insert_tenants(engine: Engine, sizes: list[int], rng: np.random.Generator) -> list[Project]:
    projects = []
    teams = 10
    with engine.begin() as connection:
        team_ids = []
        for number in range(teams):
            team_id = uuid.uuid4()
            team_ids.append(team_id)
            connection.execute(
                text("INSERT INTO teams (id, name) VALUES (:id, :name)"),
                {"id": team_id, "name": f"bench-team-{number}"},
            )
        keys = {}
        for team_id in team_ids:
            raw_key = auth.generate_api_key()
            keys[team_id] = raw_key
            connection.execute(
                text("INSERT INTO api_keys (team_id, key_hash) VALUES (:team, :hash)"),
                {"team": team_id, "hash": auth.hash_api_key(raw_key)},
            )
        for number, size in enumerate(sizes):
            team_id = team_ids[number % teams]
            project_id = uuid.uuid4()
            connection.execute(
                text("INSERT INTO projects (id, team_id, name) VALUES (:id, :team, :name)"),
                {"id": project_id, "team": team_id, "name": f"bench-project-{number}"},
            )
            topics = rng.choice(CENTROIDS, size=TOPICS_PER_PROJECT, replace=False)
            projects.append(Project(project_id, team_id, keys[team_id], size, topics))
    return projects


def load(
    engine: Engine, *, chunks: int, projects: int, small_size: int, big_size: int, model: str
) -> Corpus:
    """Fill an empty, migrated database; returns what the queries need.

    Project sizes are skewed as in real life: one small project, one big one, the rest even.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(42)
    words = vocabulary(random.Random(42))
    dim = int(DocumentChunk.__table__.c.embedding.type.dim)  # type: ignore[attr-defined]
    centroids = unit(rng.normal(size=(CENTROIDS, dim)))
    regular = (chunks - small_size - big_size) // (projects - 2)
    sizes = [small_size, big_size] + [regular] * (projects - 2)
    sizes[-1] += chunks - sum(sizes)
    tenants = _insert_tenants(engine, sizes, rng)
    with engine.begin() as connection:
        for name in REBUILT_INDEXES:
            connection.execute(text(f"DROP INDEX IF EXISTS {name}"))
    word_rng = random.Random(7)
    for project in tenants:
        documents = [uuid.uuid4() for _ in range(DOCUMENTS_PER_PROJECT)]
        doc_rows = "".join(
            f"{d}\t{project.team_id}\t{project.id}\tdoc {i}\tgs://bench/{project.id}/{i}.txt\t"
            f"ready\t{model}\n"
            for i, d in enumerate(documents)
        )
        _copy(
            engine,
            "COPY documents (id, team_id, project_id, title, gcs_uri, status, embedding_model) "
            "FROM STDIN",
            doc_rows,
        )
        vectors = sample_vectors(rng, centroids, project.topics, project.size)
        lines = []
        for index, vector in enumerate(vectors):
            content = " ".join(word_rng.choices(words, k=WORDS_PER_CHUNK))
            document = documents[index % DOCUMENTS_PER_PROJECT]
            lines.append(
                f"{document}\t{project.id}\t{index}\t{content}\t{_literal(vector)}\t1\t1\t0\t"
                f"{len(content)}\t{WORDS_PER_CHUNK * 2}\n"
            )
        _copy(
            engine,
            "COPY document_chunks (document_id, project_id, chunk_index, content, embedding, "
            "page_start, page_end, char_start, char_end, token_count) FROM STDIN",
            "".join(lines),
        )
    corpus = Corpus(tenants, tenants[0], tenants[1], centroids, words)
    corpus.load_seconds = time.perf_counter() - started
    _rebuild_indexes(engine, corpus)
    return corpus


def _rebuild_indexes(engine: Engine, corpus: Corpus) -> None:
    """The migration's own index definitions, built once over the loaded table."""
    with engine.connect() as connection:
        connection.execute(text("SET maintenance_work_mem = '1GB'"))
        connection.execute(text("SET max_parallel_maintenance_workers = 1"))
        for index in DocumentChunk.__table__.indexes:  # type: ignore[attr-defined]
            if index.name in REBUILT_INDEXES:
                started = time.perf_counter()
                index.create(bind=connection)
                connection.commit()
                corpus.index_seconds[str(index.name)] = time.perf_counter() - started
        connection.execute(text("ANALYZE"))
        connection.commit()
