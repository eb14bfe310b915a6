"""All settings, read once from `AI_INFRA_*` environment variables and validated at start-up.

Nothing else in the code base reads `os.environ`: a wrong value fails here, naming the variable,
instead of deep inside a request. Local-first defaults: with no variables set, everything runs
offline against the embedded Postgres and the emulators.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AI_INFRA_"

# Known embedding models and their native/default output dimension.
MODEL_DIMENSIONS: dict[str, int] = {
    "all-MiniLM-L6-v2": 384,
    "gemini-embedding-001": 1536,
    "text-embedding-005": 768,
    "text-multilingual-embedding-002": 768,
}


class Mode(StrEnum):
    LOCAL = "local"
    CLOUD = "cloud"


class EmbeddingProvider(StrEnum):
    LOCAL = "local"
    VERTEX = "vertex"


class GenerationProvider(StrEnum):
    EXTRACTIVE = "extractive"
    GEMINI = "gemini"
    OPENAI = "openai"


class RerankProvider(StrEnum):
    NONE = "none"
    VERTEX = "vertex"


class ParserProvider(StrEnum):
    """Who reads page images (scans, photos, image-only PDF pages)."""

    LOCAL = "local"  # PP-OCR models through onnxruntime, offline (rapidocr)
    GEMINI = "gemini"  # Gemini on Vertex AI through google-genai
    NONE = "none"  # no OCR: a document without a text layer fails


class DbIpType(StrEnum):
    PRIVATE = "private"
    PUBLIC = "public"
    PSC = "psc"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the environment variable."""


PositiveInt = Annotated[int, Field(gt=0)]


class Settings(BaseSettings):
    """The one settings object; see README "Configuration" for every variable."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore", frozen=True
    )

    mode: Mode = Mode.LOCAL
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")

    # --- database -------------------------------------------------------------------------
    # A plain SQLAlchemy URL (local, tests, or a proxy); when unset in cloud mode the Cloud SQL
    # Python Connector is used with IAM database authentication.
    database_url: str | None = None
    db_instance_connection_name: str | None = Field(
        default=None, pattern=r"^[a-z0-9\-.:]+:[a-z0-9\-]+:[a-z0-9\-]+$"
    )
    db_iam_user: str | None = None
    db_name: str = "ai_infra"
    db_ip_type: DbIpType = DbIpType.PRIVATE
    db_pool_size: PositiveInt = 2
    db_max_overflow: Annotated[int, Field(ge=0)] = 2
    db_pool_timeout_seconds: PositiveInt = 30
    # Local stack: where the embedded Postgres keeps its data between runs.
    local_data_dir: Path = Path(".ai-infra")

    # --- Google Cloud / emulators ---------------------------------------------------------
    gcp_project: str = "local-project"
    gcp_location: str = "us-central1"
    bucket: str = "ai-infra-local"
    jobs_topic: str = "ingest-jobs"
    dead_letter_topic: str = "ingest-jobs-dead-letter"
    storage_emulator_host: str | None = None
    pubsub_emulator_host: str | None = None
    # Local stack only: where uploads made by `ai-infra` send the storage CloudEvent that
    # Eventarc sends in the cloud (the ingest_trigger function's URL).
    event_sink_url: str | None = None
    # Local stack without the Google Cloud SDK: the Pub/Sub REST endpoint of the built-in push
    # broker (`common/localstack/push_broker.py`); publishing then goes over REST to it.
    pubsub_rest_url: str | None = None
    # Local stack only: the base URL signed upload URLs point at (the local upload gateway,
    # `common/localstack/upload_gateway.py`); the cloud signs for https://storage.googleapis.com.
    signed_url_endpoint: str | None = None

    # --- embeddings -----------------------------------------------------------------------
    embedding_provider: EmbeddingProvider = EmbeddingProvider.LOCAL
    embedding_model: str | None = None
    embedding_dim: PositiveInt | None = None
    # Texts per embedding request: by provider unless set (local 32, Vertex AI 250, the API's cap).
    embedding_batch_size: Annotated[int, Field(gt=0, le=250)] | None = None
    # Embedding requests of one document in flight at once (Vertex AI; the local model uses its
    # own thread pool). They share one backoff: a 429 pauses them all.
    embedding_concurrency: Annotated[int, Field(ge=1, le=64)] = 8
    # The Vertex AI embedding quota (requests per minute) that `ai-infra embeddings switch`
    # plans with; the quota itself is the project's (429s are retried either way).
    embedding_quota_per_minute: PositiveInt = 1500
    # Override of the Vertex AI endpoint: a regional endpoint, or a local stand-in in tests.
    vertex_base_url: str | None = None
    # A fixed OAuth access token for Vertex AI instead of Application Default Credentials: for
    # local stand-ins and short-lived manual runs only; leave unset in the cloud.
    vertex_access_token: str | None = None
    model_max_retries: Annotated[int, Field(ge=0, le=20)] = 5
    model_retry_base_seconds: Annotated[float, Field(ge=0)] = 1.0
    model_retry_max_seconds: Annotated[float, Field(gt=0)] = 60.0

    # --- generation -----------------------------------------------------------------------
    generation_provider: GenerationProvider = GenerationProvider.EXTRACTIVE
    generation_model: str | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    context_token_budget: PositiveInt = 6000
    max_output_tokens: Annotated[int, Field(gt=0, le=8192)] = 1024
    default_temperature: Annotated[float, Field(ge=0, le=2)] = 0.2
    system_prompt: str | None = None

    # --- reranking ------------------------------------------------------------------------
    # `vertex`: the Vertex AI ranking API reorders the top `rerank_candidates` fused results;
    # past `rerank_timeout_seconds`, or on a 429/5xx, the fused order is served unchanged.
    rerank_provider: RerankProvider = RerankProvider.NONE
    rerank_model: str = "semantic-ranker-default-004"
    # The ranking API takes at most 200 records a request.
    rerank_candidates: Annotated[int, Field(ge=1, le=200)] = 40
    rerank_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 1.0
    # Override of the ranking API's endpoint (`https://discoveryengine.googleapis.com/v1`): a
    # local stand-in in tests.
    rerank_base_url: str | None = None

    # --- ingestion ------------------------------------------------------------------------
    chunk_tokens: Annotated[int, Field(ge=32, le=8192)] = 256
    chunk_overlap_tokens: Annotated[int, Field(ge=0)] = 32
    max_file_bytes: PositiveInt = 50 * 1024 * 1024
    max_pdf_pages: PositiveInt = 2000
    # Sheet, CSV and JSON rows indexed per document; past it the rest is skipped with a notice.
    max_sheet_rows: PositiveInt = 50_000
    # Pixels one decoded image (or rendered page) may have: decompression bombs fail the file.
    max_image_pixels: PositiveInt = 60_000_000
    # OCR of page images: `local` (offline), `gemini` (Vertex AI), `none`; see README "Formats".
    parser: ParserProvider = ParserProvider.LOCAL
    parser_model: str = "gemini-2.5-flash"
    # Resolution PDF pages without a text layer are rendered at for OCR.
    ocr_dpi: Annotated[int, Field(ge=72, le=600)] = 200
    # Pub/Sub dead-letter policies accept 5..100.
    max_delivery_attempts: Annotated[int, Field(ge=5, le=100)] = 5
    # Fair ingestion (common.ingestion.scheduling): jobs running at once over all teams (the
    # cloud sets chunk_embed's instances), and each team's default cap (None: its fair share).
    ingest_capacity: Annotated[int, Field(ge=1, le=1000)] = 4
    ingest_team_max_running: Annotated[int, Field(ge=1, le=1000)] | None = None
    # A worker whose job finished runs the fairest deferred job itself while its request is
    # younger than this (0: never; always publish it): short against the function timeout, so
    # a job taken over late still has nearly all of it (OCR keeps a quarter of it spare).
    ingest_handoff_seconds: Annotated[float, Field(ge=0, le=300)] = 60.0
    job_timeout_seconds: PositiveInt = 540
    # A live worker renews its lease every third of this; a dead one's job is taken over once
    # the lease runs out (redelivery or sweep), long before the function timeout.
    job_lease_seconds: Annotated[int, Field(ge=15, le=600)] = 30
    # Queued jobs whose last hand-over to Pub/Sub is older than this are published again
    # (a message lost by a restarted emulator or between commit and publish).
    job_republish_seconds: Annotated[int, Field(ge=30, le=3600)] = 90
    # How often `ai-infra dev` sweeps (the cloud's Cloud Scheduler job has its own period).
    sweep_interval_seconds: Annotated[float, Field(ge=1, le=600)] = 15.0

    # --- query ----------------------------------------------------------------------------
    max_request_bytes: PositiveInt = 64 * 1024
    default_top_k: Annotated[int, Field(ge=1, le=50)] = 5
    hnsw_ef_search: Annotated[int, Field(ge=1, le=1000)] = 100
    # Projects up to this many chunks rank vectors exactly, bigger ones through HNSW
    # (common/query/retrieval.py; README "Search at scale").
    exact_search_max_chunks: Annotated[int, Field(ge=0, le=10_000_000)] = 20_000
    # Requests per minute per API key unless its team or the key itself sets a limit.
    default_requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] = 600

    # --- documents over HTTPS -------------------------------------------------------------
    # How long a signed upload URL stays valid.
    upload_url_ttl_seconds: Annotated[int, Field(ge=60, le=3600)] = 900
    # Whole-fetch limit for a URL source (every redirect hop included).
    url_fetch_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 20.0
    # Tests and the dev stack only: URL sources may name loopback addresses. Refused in cloud.
    url_fetch_allow_loopback: bool = False

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"{ENV_PREFIX}CHUNK_OVERLAP_TOKENS must be smaller than {ENV_PREFIX}CHUNK_TOKENS"
            )
        if self.mode is Mode.CLOUD and not self.database_url:
            for name in ("db_instance_connection_name", "db_iam_user"):
                if not getattr(self, name):
                    raise ValueError(
                        f"{ENV_PREFIX}{name.upper()} is required in cloud mode "
                        f"(or set {ENV_PREFIX}DATABASE_URL)"
                    )
        if self.mode is Mode.CLOUD and self.url_fetch_allow_loopback:
            raise ValueError(
                f"{ENV_PREFIX}URL_FETCH_ALLOW_LOOPBACK must be off in cloud mode "
                "(it lets URL sources reach the function's own host)"
            )
        if self.generation_provider is GenerationProvider.OPENAI and not self.openai_base_url:
            raise ValueError(
                f"{ENV_PREFIX}OPENAI_BASE_URL is required when "
                f"{ENV_PREFIX}GENERATION_PROVIDER=openai"
            )
        model = self.resolved_embedding_model
        if self.embedding_dim is None and model not in MODEL_DIMENSIONS:
            raise ValueError(
                f"{ENV_PREFIX}EMBEDDING_DIM is required for unknown model {model!r} "
                f"(set by {ENV_PREFIX}EMBEDDING_MODEL)"
            )
        return self

    @property
    def resolved_embedding_model(self) -> str:
        if self.embedding_model:
            return self.embedding_model
        if self.embedding_provider is EmbeddingProvider.VERTEX:
            return "gemini-embedding-001"
        return "all-MiniLM-L6-v2"

    @property
    def resolved_embedding_batch_size(self) -> int:
        if self.embedding_batch_size:
            return self.embedding_batch_size
        return 250 if self.embedding_provider is EmbeddingProvider.VERTEX else 32

    @property
    def resolved_embedding_dim(self) -> int:
        return self.embedding_dim or MODEL_DIMENSIONS[self.resolved_embedding_model]

    @property
    def resolved_generation_model(self) -> str:
        if self.generation_model:
            return self.generation_model
        return {
            GenerationProvider.EXTRACTIVE: "extractive",
            GenerationProvider.GEMINI: "gemini-2.5-flash",
            GenerationProvider.OPENAI: "llama3.1",
        }[self.generation_provider]


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        name = f"{ENV_PREFIX}{loc[0].upper()}" if loc else "settings"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}" if loc else message)
    return "invalid configuration: " + "; ".join(lines)


def load_settings() -> Settings:
    """Read and validate the environment now; raise ConfigError naming the bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (call `get_settings.cache_clear()` after changes)."""
    return load_settings()
