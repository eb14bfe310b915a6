"""The model-switch bench's project: real text, real local-model vectors, loaded directly.

The documents are the running Python's standard library modules (`.py` files, tests included,
in a seeded order): real text with a natural spread of sizes (many small modules, a few of
thousands of lines). Each file is cut exactly as the worker cuts an upload (the same
extraction, chunking, context line and locations, with the local model as tokenizer) and
embedded with the local model (all-MiniLM-L6-v2), the project's inline space. That embedding
is the slow part on a small machine (~10-20 chunks/s on 2 cores), so `--data DIR` keeps the
embedded corpus for the next run.

Loading replays the worker's final write (`lock_for_write` + `write_result`: document ready,
job succeeded, chunks COPYed into the HNSW-indexed table) for one document per transaction,
as the worker commits them; the files themselves are not uploaded, since a re-embedding job
reads only the stored chunks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sys
import sysconfig
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CORPUS_VERSION = 1
EMBED_BATCH = 128  # chunks per progress step


@dataclass
class SourceDocument:
    name: str  # path inside the standard library, e.g. "json/decoder.py"
    size_bytes: int
    content_hash: str
    chunks: list[Any]  # common.ingestion.chunking.Chunk


@dataclass
class Corpus:
    documents: list[SourceDocument]
    vectors: np.ndarray  # (chunks, 384) float32, the documents' chunks in order
    embed_seconds: float

    @property
    def chunks(self) -> int:
        return sum(len(d.chunks) for d in self.documents)


def library_files(seed: int) -> list[Path]:
    """The standard library's Python files (site-packages excluded), in a seeded order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        path
        for path in root.rglob("*.py")
        if "site-packages" not in path.parts and path.is_file() and path.stat().st_size > 0
    )
    random.Random(seed).shuffle(files)
    return files


def cut(chunks_wanted: int, seed: int = 19) -> list[SourceDocument]:
    """Documents until `chunks_wanted` chunks (the last one trimmed to hit it exactly)."""
    from common.inference.embeddings import get_embedder
    from common.ingestion.chunking import chunk_text
    from common.ingestion.extract import extract_text
    from common.ingestion.jobs import extraction_options
    from common.ingestion.locations import with_locations
    from common.ingestion.sections import CONTEXT_TOKENS, document_title, with_context
    from common.platform.config import get_settings
    from common.platform.errors import PermanentIngestionError

    settings = get_settings()
    embedder = get_embedder(settings)
    max_tokens = min(settings.chunk_tokens, embedder.max_input_tokens - CONTEXT_TOKENS)
    root = Path(sysconfig.get_paths()["stdlib"])
    documents: list[SourceDocument] = []
    total = 0
    for path in library_files(seed):
        if total >= chunks_wanted:
            break
        data = path.read_bytes()
        name = path.relative_to(root).as_posix()
        options = extraction_options(settings, embedder, max_tokens, lambda: None)
        try:
            text = extract_text(data, mime_type="text/x-python", filename=name, options=options)
        except PermanentIngestionError:
            continue  # e.g. a file of test data that is not text
        chunks = chunk_text(
            text,
            max_tokens=max_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
            tokenizer=embedder,
        )
        chunks = with_context(
            chunks, title=document_title(name), headings=text.headings, tokenizer=embedder
        )
        chunks = with_locations(chunks, text)[: chunks_wanted - total]
        if not chunks:
            continue
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        documents.append(SourceDocument(name, len(data), digest, chunks))
        total += len(chunks)
    if total < chunks_wanted:
        raise RuntimeError(f"the standard library gave only {total} chunks")
    return documents


def embed(documents: list[SourceDocument]) -> tuple[np.ndarray, float]:
    """The chunks' local-model vectors, as the worker computes them; and the seconds taken."""
    from common.inference.embeddings import get_embedder
    from common.ingestion.sections import embedding_input

    embedder = get_embedder()
    inputs = [embedding_input(chunk) for document in documents for chunk in document.chunks]
    parts, began, last_note = [], time.monotonic(), time.monotonic()
    for start in range(0, len(inputs), EMBED_BATCH):
        parts.append(np.asarray(embedder.embed_documents(inputs[start : start + EMBED_BATCH])))
        if time.monotonic() - last_note > 30:
            last_note = time.monotonic()
            done = start + EMBED_BATCH
            rate = done / (last_note - began)
            print(
                f"  embedding the corpus: {done}/{len(inputs)} chunks, {rate:.1f}/s",
                file=sys.stderr,
            )
    return np.concatenate(parts).astype(np.float32), time.monotonic() - began


def build(chunks: int, data: Path | None) -> Corpus:
    """The corpus of `chunks` chunks: from `data` when it holds it, else cut and embedded (and
    saved there)."""
    if data is not None:
        kept = _restore(data, chunks)
        if kept is not None:
            return kept
    documents = cut(chunks)
    print(
        f"corpus: {len(documents)} standard library modules, {chunks} chunks; embedding them "
        "with the local model (once; --data DIR keeps them)",
        file=sys.stderr,
    )
    vectors, seconds = embed(documents)
    corpus = Corpus(documents, vectors, seconds)
    if data is not None:
        _save(corpus, data)
    return corpus


def _key(chunks: int) -> dict[str, Any]:
    from common.platform.config import get_settings

    settings = get_settings()
    return {
        "version": CORPUS_VERSION,
        "chunks": chunks,
        "python": sys.version.split()[0],
        "chunk_tokens": settings.chunk_tokens,
        "overlap_tokens": settings.chunk_overlap_tokens,
    }


def _paths(data: Path, chunks: int) -> tuple[Path, Path]:
    return data / f"corpus-{chunks}.json", data / f"corpus-{chunks}.npy"


def _save(corpus: Corpus, data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    described, vectors = _paths(data, corpus.chunks)
    np.save(vectors, corpus.vectors)
    payload = {
        "key": _key(corpus.chunks),
        "embed_seconds": corpus.embed_seconds,
        "documents": [
            {**dataclasses.asdict(d), "chunks": [dataclasses.asdict(c) for c in d.chunks]}
            for d in corpus.documents
        ],
    }
    described.write_text(json.dumps(payload))


def _restore(data: Path, chunks: int) -> Corpus | None:
    from common.ingestion.chunking import Chunk

    described, vectors = _paths(data, chunks)
    if not described.exists() or not vectors.exists():
        return None
    payload = json.loads(described.read_text())
    if payload["key"] != _key(chunks):
        return None
    documents = [
        SourceDocument(
            d["name"], d["size_bytes"], d["content_hash"], [Chunk(**c) for c in d["chunks"]]
        )
        for d in payload["documents"]
    ]
    print(f"corpus: {len(documents)} modules, {chunks} chunks, from {data}", file=sys.stderr)
    return Corpus(documents, np.load(vectors), float(payload["embed_seconds"]))


def load(database_url: str, project_id: str, bucket: str, corpus: Corpus) -> float:
    """Write the corpus into the project as the worker would have; the seconds it took."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from common.inference.embedders.local_minilm import MODEL_NAME
    from common.ingestion.job_write import lock_for_write, write_result
    from common.platform.config import get_settings
    from common.platform.spaces import inline_space

    inline = inline_space(get_settings())
    engine = create_engine(database_url)
    began = time.monotonic()
    offset = 0
    try:
        with Session(engine) as session:
            team_id = session.execute(
                text("SELECT team_id FROM projects WHERE id = :p"), {"p": project_id}
            ).scalar_one()
        for document in corpus.documents:
            vectors = corpus.vectors[offset : offset + len(document.chunks)]
            offset += len(document.chunks)
            with Session(engine) as session, session.begin():
                document_id, job_id = _register(session, team_id, project_id, bucket, document)
                locked = lock_for_write(
                    session, job_id=job_id, document_id=document_id, attempt=None
                )
                assert locked is not None
                write_result(
                    session,
                    locked,
                    chunks=document.chunks,
                    embeddings={inline: vectors},
                    model=MODEL_NAME,
                )
        with engine.connect() as connection:
            connection.execute(text("ANALYZE document_chunks"))
            connection.execute(text("ANALYZE documents"))
            connection.commit()
    finally:
        engine.dispose()
    return time.monotonic() - began


def _register(
    session: Any, team_id: uuid.UUID, project_id: str, bucket: str, document: SourceDocument
) -> tuple[uuid.UUID, uuid.UUID]:
    """The document and its running job, as the trigger and a worker's claim leave them."""
    from sqlalchemy import text

    path = f"stdlib/{document.name}"
    document_id = session.execute(
        text(
            "INSERT INTO documents (team_id, project_id, title, gcs_uri, mime_type, status, "
            "generation, size_bytes, content_hash, path) VALUES (:team, :project, :title, "
            ":uri, 'text/x-python', 'processing', 1, :size, :hash, :path) RETURNING id"
        ),
        {
            "team": team_id,
            "project": project_id,
            "title": document.name,
            "uri": f"gs://{bucket}/{project_id}/{path}",
            "size": document.size_bytes,
            "hash": document.content_hash,
            "path": path,
        },
    ).scalar_one()
    job_id = session.execute(
        text(
            "INSERT INTO ingestion_jobs (document_id, generation, status, attempts, started_at) "
            "VALUES (:document, 1, 'running', 1, now()) RETURNING id"
        ),
        {"document": document_id},
    ).scalar_one()
    return document_id, job_id
