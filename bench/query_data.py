"""Synthetic corpus for bench/query.py: teams, projects, documents and chunks loaded with COPY.

Vectors are clustered like real embeddings (each chunk = a topic centroid + noise, cosine ~0.8
to its centroid); every project draws from its own subset of the shared topics, so a search
without the project filter would find other projects' chunks. Texts are random words from a
small vocabulary, so the full-text arm has work to do. The HNSW and GIN indexes are dropped
before loading and rebuilt afterwards with the migration's own definitions.

Two shapes: `even` (one small project, one big one, the rest even; each project's chunks
written together) and `zipf` (project k holds a share proportional to 1/k, so a few tenants
hold most chunks; documents of ~50 chunks written in random order across projects, as
independent uploads land; bigger projects cover more topics). `save`/`restore` keep a loaded
corpus's description next to its data folder so a long load is paid once.
"""

from __future__ import annotations

import io
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

from common.platform.models import DocumentChunk
from common.query import auth

CENTROIDS = 2000
TOPICS_PER_PROJECT = 40
DOCUMENTS_PER_PROJECT = 10
CHUNKS_PER_DOCUMENT = 50  # zipf shape
CHUNKS_PER_TOPIC = 100  # zipf shape: a project covers max(40, size / 100) topics
COPY_BATCH = 20_000
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


def _topic_count(size: int, skew: str) -> int:
    if skew == "even":
        return TOPICS_PER_PROJECT
    return min(CENTROIDS, max(TOPICS_PER_PROJECT, size // CHUNKS_PER_TOPIC))


def zipf_sizes(chunks: int, projects: int) -> list[int]:
    """Project k (1-based) holds chunks x (1/k) / H(projects): the largest ~13% of a thousand."""
    weights = 1.0 / np.arange(1, projects + 1)
    sizes = np.maximum(1, np.floor(chunks * weights / weights.sum())).astype(int).tolist()
    sizes[0] += chunks - sum(sizes)
    return [int(size) for size in sizes]


def _insert_tenants(
    engine: Engine, sizes: list[int], rng: np.random.Generator, skew: str = "even"
) -> list[Project]:
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
            topics = rng.choice(CENTROIDS, size=_topic_count(size, skew), replace=False)
            projects.append(Project(project_id, team_id, keys[team_id], size, topics))
    return projects


def load(
    engine: Engine,
    *,
    chunks: int,
    projects: int,
    small_size: int,
    big_size: int,
    model: str,
    skew: str = "even",
) -> Corpus:
    """Fill an empty, migrated database; returns what the queries need.

    `even`: one small project, one big one, the rest even. `zipf`: see the module docstring
    (the smallest and the largest project then stand for `small` and `big`).
    """
    started = time.perf_counter()
    rng = np.random.default_rng(42)
    words = vocabulary(random.Random(42))
    dim = int(DocumentChunk.__table__.c.embedding.type.dim)  # type: ignore[attr-defined]
    centroids = unit(rng.normal(size=(CENTROIDS, dim)))
    if skew == "zipf":
        sizes = zipf_sizes(chunks, projects)
    else:
        regular = (chunks - small_size - big_size) // (projects - 2)
        sizes = [small_size, big_size] + [regular] * (projects - 2)
        sizes[-1] += chunks - sum(sizes)
    tenants = _insert_tenants(engine, sizes, rng, skew)
    with engine.begin() as connection:
        for name in REBUILT_INDEXES:
            connection.execute(text(f"DROP INDEX IF EXISTS {name}"))
    if skew == "zipf":
        _load_documents_shuffled(engine, tenants, centroids, words, rng, model)
        small, big = min(tenants, key=lambda p: p.size), max(tenants, key=lambda p: p.size)
    else:
        _load_projects_in_turn(engine, tenants, centroids, words, rng, model)
        small, big = tenants[0], tenants[1]
    corpus = Corpus(tenants, small, big, centroids, words)
    corpus.load_seconds = time.perf_counter() - started
    _rebuild_indexes(engine, corpus)
    return corpus


_DOCUMENTS_COPY = (
    "COPY documents (id, team_id, project_id, title, gcs_uri, status, embedding_model, "
    "chunk_count) FROM STDIN"
)
_CHUNKS_COPY = (
    "COPY document_chunks (document_id, project_id, chunk_index, content, embedding, "
    "page_start, page_end, char_start, char_end, token_count) FROM STDIN"
)


def _chunk_line(
    document: uuid.UUID, project: Project, index: int, vector: np.ndarray, content: str
) -> str:
    return (
        f"{document}\t{project.id}\t{index}\t{content}\t{_literal(vector)}\t1\t1\t0\t"
        f"{len(content)}\t{WORDS_PER_CHUNK * 2}\n"
    )


def _document_line(
    document: uuid.UUID, project: Project, number: int, model: str, chunks: int
) -> str:
    return (
        f"{document}\t{project.team_id}\t{project.id}\tdoc {number}\t"
        f"gs://bench/{project.id}/{number}.txt\tready\t{model}\t{chunks}\n"
    )


def _load_projects_in_turn(
    engine: Engine,
    tenants: list[Project],
    centroids: np.ndarray,
    words: list[str],
    rng: np.random.Generator,
    model: str,
) -> None:
    word_rng = random.Random(7)
    for project in tenants:
        documents = [uuid.uuid4() for _ in range(DOCUMENTS_PER_PROJECT)]
        counts = [
            len(range(i, project.size, DOCUMENTS_PER_PROJECT)) for i in range(DOCUMENTS_PER_PROJECT)
        ]
        doc_rows = "".join(
            _document_line(d, project, i, model, counts[i]) for i, d in enumerate(documents)
        )
        _copy(engine, _DOCUMENTS_COPY, doc_rows)
        vectors = sample_vectors(rng, centroids, project.topics, project.size)
        lines = []
        for index, vector in enumerate(vectors):
            content = " ".join(word_rng.choices(words, k=WORDS_PER_CHUNK))
            document = documents[index % DOCUMENTS_PER_PROJECT]
            lines.append(_chunk_line(document, project, index, vector, content))
        _copy(engine, _CHUNKS_COPY, "".join(lines))


def _load_documents_shuffled(
    engine: Engine,
    tenants: list[Project],
    centroids: np.ndarray,
    words: list[str],
    rng: np.random.Generator,
    model: str,
) -> None:
    """Documents of CHUNKS_PER_DOCUMENT chunks, all projects interleaved at random."""
    documents: list[tuple[Project, int, int]] = []  # project, number, chunks
    for project in tenants:
        for number, first in enumerate(range(0, project.size, CHUNKS_PER_DOCUMENT)):
            documents.append((project, number, min(CHUNKS_PER_DOCUMENT, project.size - first)))
    random.Random(11).shuffle(documents)
    word_rng = random.Random(7)
    doc_rows: list[str] = []
    lines: list[str] = []
    for project, number, count in documents:
        document = uuid.uuid4()
        doc_rows.append(_document_line(document, project, number, model, count))
        vectors = sample_vectors(rng, centroids, project.topics, count)
        for index, vector in enumerate(vectors):
            content = " ".join(word_rng.choices(words, k=WORDS_PER_CHUNK))
            lines.append(_chunk_line(document, project, index, vector, content))
        if len(lines) >= COPY_BATCH:
            _copy(engine, _DOCUMENTS_COPY, "".join(doc_rows))
            _copy(engine, _CHUNKS_COPY, "".join(lines))
            doc_rows, lines = [], []
    if lines:
        _copy(engine, _DOCUMENTS_COPY, "".join(doc_rows))
        _copy(engine, _CHUNKS_COPY, "".join(lines))


def save(corpus: Corpus, folder: Path) -> None:
    """What `restore` needs to query a loaded database again (keys included: bench data)."""
    np.save(folder / "centroids.npy", corpus.centroids)
    projects = [
        {**asdict(p), "id": str(p.id), "team_id": str(p.team_id), "topics": p.topics.tolist()}
        for p in corpus.projects
    ]
    description = {
        "projects": projects,
        "small": str(corpus.small.id),
        "big": str(corpus.big.id),
        "load_seconds": corpus.load_seconds,
        "index_seconds": corpus.index_seconds,
    }
    (folder / "corpus.json").write_text(json.dumps(description))


def restore(folder: Path) -> Corpus | None:
    if not (folder / "corpus.json").exists():
        return None
    description = json.loads((folder / "corpus.json").read_text())
    projects = [
        Project(
            id=uuid.UUID(p["id"]),
            team_id=uuid.UUID(p["team_id"]),
            api_key=p["api_key"],
            size=p["size"],
            topics=np.asarray(p["topics"]),
        )
        for p in description["projects"]
    ]
    by_id = {str(p.id): p for p in projects}
    corpus = Corpus(
        projects,
        by_id[description["small"]],
        by_id[description["big"]],
        np.load(folder / "centroids.npy"),
        vocabulary(random.Random(42)),
    )
    corpus.load_seconds = description["load_seconds"]
    corpus.index_seconds = description["index_seconds"]
    return corpus


def _rebuild_indexes(engine: Engine, corpus: Corpus) -> None:
    """The migration's own index definitions, built once over the loaded table."""
    with engine.connect() as connection:
        # The HNSW graph is built in memory when it fits (~2.5 GB at a million 384-d rows).
        connection.execute(text("SET maintenance_work_mem = '4GB'"))
        connection.execute(text("SET max_parallel_maintenance_workers = 1"))
        for index in DocumentChunk.__table__.indexes:  # type: ignore[attr-defined]
            if index.name in REBUILT_INDEXES:
                started = time.perf_counter()
                index.create(bind=connection)
                connection.commit()
                corpus.index_seconds[str(index.name)] = time.perf_counter() - started
        connection.execute(text("ANALYZE"))
        connection.commit()
