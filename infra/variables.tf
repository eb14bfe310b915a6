# --- project ------------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project to deploy into (an empty project is fine: the APIs are enabled here)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the functions, the bucket, the database and the Eventarc triggers."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name, so several deployments can share a project."
  type        = string
  default     = "ai-infra"

  validation {
    # Service account ids are at most 30 characters and the longest suffix is "-chunk-embed".
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-17 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Extra labels on every resource that supports them."
  type        = map(string)
  default     = {}
}

# --- source -------------------------------------------------------------------------------------

variable "source_archive" {
  description = "Path of the zip built by `ai-infra package` (default: build/source.zip at the repository root)."
  type        = string
  default     = null
}

# --- upload bucket ------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the upload bucket (default: <project_id>-<name_prefix>-documents)."
  type        = string
  default     = null
}

variable "bucket_versioning" {
  description = "Keep noncurrent object versions. Off by default: the database records each generation, and a deleted document should really be gone."
  type        = bool
  default     = false
}

variable "document_retention_days" {
  description = "Delete uploaded objects this many days after upload (their chunks go with them through the delete event); 0 keeps them."
  type        = number
  default     = 0

  validation {
    condition     = var.document_retention_days >= 0
    error_message = "document_retention_days must be 0 (keep) or a positive number of days."
  }
}

variable "console_origins" {
  description = "More origins the console may upload from (a custom domain in front of the query function); the query function's own URLs are always allowed by the bucket's CORS rule."
  type        = list(string)
  default     = []
}

variable "bucket_force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds documents."
  type        = bool
  default     = false
}

# --- network ------------------------------------------------------------------------------------

variable "functions_subnet_cidr" {
  description = "Range of the subnet the functions egress through (Direct VPC egress uses about two addresses per instance)."
  type        = string
  default     = "10.8.0.0/24"
}

variable "private_services_prefix_length" {
  description = "Size of the range reserved for private services access (Cloud SQL private IP)."
  type        = number
  default     = 20
}

# --- database -----------------------------------------------------------------------------------

variable "db_instance_name" {
  description = "Cloud SQL instance name (default: <name_prefix>-pg). A deleted instance's name stays taken for about a week."
  type        = string
  default     = null
}

variable "db_version" {
  description = "PostgreSQL major version; 18 matches the local embedded Postgres."
  type        = string
  default     = "POSTGRES_18"

  validation {
    condition     = contains(["POSTGRES_15", "POSTGRES_16", "POSTGRES_17", "POSTGRES_18"], var.db_version)
    error_message = "db_version must be POSTGRES_15 .. POSTGRES_18 (pgvector with HNSW needs a recent major)."
  }
}

variable "db_edition" {
  description = "Cloud SQL edition. ENTERPRISE allows the small custom tiers; ENTERPRISE_PLUS needs db-perf-optimized-N-* tiers."
  type        = string
  default     = "ENTERPRISE"

  validation {
    condition     = contains(["ENTERPRISE", "ENTERPRISE_PLUS"], var.db_edition)
    error_message = "db_edition must be ENTERPRISE or ENTERPRISE_PLUS."
  }
}

variable "db_tier" {
  description = "Machine tier of the database (1 vCPU, 3.75 GB by default)."
  type        = string
  default     = "db-custom-1-3840"
}

variable "db_availability_type" {
  description = "ZONAL, or REGIONAL for a standby in a second zone (doubles the instance cost)."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.db_availability_type)
    error_message = "db_availability_type must be ZONAL or REGIONAL."
  }
}

variable "db_disk_size_gb" {
  description = "Initial SSD size in GB; it grows automatically."
  type        = number
  default     = 10
}

variable "db_max_connections" {
  description = "Postgres max_connections; must cover every function instance's pool (checked at plan time)."
  type        = number
  default     = 200
}

variable "db_deletion_protection" {
  description = "Protect the database against deletion (Terraform and the Cloud SQL API). Turn off only to tear down."
  type        = bool
  default     = true
}

variable "db_backup_start_time" {
  description = "Start of the daily backup window, HH:MM UTC."
  type        = string
  default     = "03:00"
}

variable "db_backup_retained_count" {
  description = "Number of daily backups kept."
  type        = number
  default     = 7
}

variable "db_pitr_log_retention_days" {
  description = "Days of write-ahead log kept for point-in-time recovery (1-7 on ENTERPRISE)."
  type        = number
  default     = 7
}

variable "db_public_ip" {
  description = "Give the database a public IP with no authorised networks, reachable only through the Cloud SQL connectors with IAM (so an operator outside the VPC can run `ai-infra migrate`). Off by default."
  type        = bool
  default     = false
}

variable "db_operators" {
  description = "Google accounts (emails) that get an IAM database user and the right to connect: they run migrations and the ai-infra command."
  type        = list(string)
  default     = []
}

# --- models -------------------------------------------------------------------------------------

variable "vertex_location" {
  description = "Vertex AI location for embeddings and Gemini (default: the region)."
  type        = string
  default     = null
}

variable "embedding_model" {
  description = "Vertex AI embedding model."
  type        = string
  default     = "gemini-embedding-001"
}

variable "embedding_dim" {
  description = "Embedding dimension; the migrations create vector(N) with this N, so changing it needs a re-migration."
  type        = number
  default     = 1536
}

variable "generation_provider" {
  description = "gemini (Vertex AI), openai (any OpenAI-compatible server, key in Secret Manager) or extractive (no model)."
  type        = string
  default     = "gemini"

  validation {
    condition     = contains(["gemini", "openai", "extractive"], var.generation_provider)
    error_message = "generation_provider must be gemini, openai or extractive."
  }
}

variable "generation_model" {
  description = "Model that writes the answers."
  type        = string
  default     = "gemini-2.5-flash"
}

variable "openai_base_url" {
  description = "Base URL of the OpenAI-compatible server when generation_provider = openai (empty otherwise)."
  type        = string
  default     = ""

  validation {
    condition     = var.openai_base_url == "" || can(regex("^https://", var.openai_base_url))
    error_message = "openai_base_url must be empty or an https:// URL."
  }
}

variable "rerank_provider" {
  description = "none, or vertex: the Vertex AI ranking API reorders the query's top fused results (enables the Discovery Engine API and lets the query account call rank, nothing more)."
  type        = string
  default     = "none"

  validation {
    condition     = contains(["none", "vertex"], var.rerank_provider)
    error_message = "rerank_provider must be none or vertex."
  }
}

variable "rerank_model" {
  description = "Ranking model when rerank_provider = vertex: semantic-ranker-default-004 (best) or semantic-ranker-fast-004 (lower latency)."
  type        = string
  default     = "semantic-ranker-default-004"

  validation {
    condition     = can(regex("^semantic-ranker-", var.rerank_model))
    error_message = "rerank_model must be a semantic-ranker-* model."
  }
}

# --- pipeline -----------------------------------------------------------------------------------

variable "max_delivery_attempts" {
  description = "Deliveries of a job message before it goes to the dead-letter topic; the code fails the job on the last one."
  type        = number
  default     = 5

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub allows max_delivery_attempts between 5 and 100."
  }
}

variable "max_file_bytes" {
  description = "Largest file ingested; bigger ones fail with a readable error."
  type        = number
  default     = 52428800
}

variable "max_pdf_pages" {
  description = "Largest PDF (pages) ingested."
  type        = number
  default     = 2000
}

variable "parser" {
  description = "Who reads page images (scans, photos, image-only PDF pages) in chunk-embed: local (PP-OCR through onnxruntime, inside the function), gemini (Vertex AI) or none (documents without a text layer fail)."
  type        = string
  default     = "local"

  validation {
    condition     = contains(["local", "gemini", "none"], var.parser)
    error_message = "parser must be local, gemini or none."
  }
}

variable "parser_model" {
  description = "Gemini model that transcribes page images when parser = gemini."
  type        = string
  default     = "gemini-2.5-flash"
}

variable "settings_overrides" {
  description = "Tuning settings for every function that otherwise keep the code's defaults (see common/platform/config.py), e.g. { AI_INFRA_CHUNK_TOKENS = \"384\" }."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for name in keys(var.settings_overrides) : contains([
        "AI_INFRA_DB_POOL_TIMEOUT_SECONDS",
        "AI_INFRA_EMBEDDING_BATCH_SIZE",
        "AI_INFRA_EMBEDDING_CONCURRENCY",
        "AI_INFRA_MODEL_MAX_RETRIES",
        "AI_INFRA_MODEL_RETRY_BASE_SECONDS",
        "AI_INFRA_MODEL_RETRY_MAX_SECONDS",
        "AI_INFRA_DEFAULT_TEMPERATURE",
        "AI_INFRA_SYSTEM_PROMPT",
        "AI_INFRA_CHUNK_TOKENS",
        "AI_INFRA_JOB_LEASE_SECONDS",
        "AI_INFRA_JOB_REPUBLISH_SECONDS",
        "AI_INFRA_CHUNK_OVERLAP_TOKENS",
        "AI_INFRA_DEFAULT_TOP_K",
        "AI_INFRA_HNSW_EF_SEARCH",
        "AI_INFRA_EXACT_SEARCH_MAX_CHUNKS",
        "AI_INFRA_DEFAULT_REQUESTS_PER_MINUTE",
        "AI_INFRA_UPLOAD_URL_TTL_SECONDS",
        "AI_INFRA_URL_FETCH_TIMEOUT_SECONDS",
        "AI_INFRA_RERANK_CANDIDATES",
        "AI_INFRA_RERANK_TIMEOUT_SECONDS",
        "AI_INFRA_INGEST_TEAM_MAX_RUNNING",
        "AI_INFRA_INGEST_HANDOFF_SECONDS",
        "AI_INFRA_EMBEDDING_QUOTA_PER_MINUTE",
        "AI_INFRA_MAX_SHEET_ROWS",
        "AI_INFRA_MAX_IMAGE_PIXELS",
        "AI_INFRA_OCR_DPI",
      ], name)
    ])
    error_message = "settings_overrides takes only the tuning settings listed in variables.tf; the others have their own variables or are set by Terraform."
  }
}

variable "log_level" {
  description = "Log level of the functions."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

# --- function sizes -----------------------------------------------------------------------------

variable "ingest_memory" {
  description = "Memory of each ingest-trigger instance."
  type        = string
  default     = "512Mi"
}

variable "ingest_max_instances" {
  description = "Upper bound on ingest-trigger instances (each of the two: finalized, deleted)."
  type        = number
  default     = 5
}

variable "ingest_concurrency" {
  description = "Events one ingest-trigger instance handles at once."
  type        = number
  default     = 4
}

variable "ingest_timeout_seconds" {
  description = "Ingest-trigger timeout."
  type        = number
  default     = 60
}

variable "chunk_embed_memory" {
  description = "Memory of each chunk-embed instance: OCR of scans and PDF extraction of large files (bench/formats.py peaked at 2 GiB on scanned PDFs with the local models; one vCPU takes up to 4Gi)."
  type        = string
  default     = "4Gi"
}

variable "chunk_embed_max_instances" {
  description = "Upper bound on chunk-embed instances: caps parallel embedding calls (Vertex AI quota) and database load."
  type        = number
  default     = 10
}

variable "chunk_embed_spare_instances" {
  description = "Chunk-embed instances above chunk_embed_max_instances (the jobs that run at once): they receive the deliveries fair scheduling defers, so a team's backlog never keeps other teams' messages waiting in Pub/Sub."
  type        = number
  default     = 10
}

variable "chunk_embed_timeout_seconds" {
  description = "Chunk-embed timeout; also the push subscription's ack deadline (Pub/Sub allows at most 600 s)."
  type        = number
  default     = 540

  validation {
    condition     = var.chunk_embed_timeout_seconds >= 60 && var.chunk_embed_timeout_seconds <= 600
    error_message = "chunk_embed_timeout_seconds must be 60-600 (the push ack deadline bounds it)."
  }
}

variable "query_memory" {
  description = "Memory of each query instance."
  type        = string
  default     = "1Gi"
}

variable "query_min_instances" {
  description = "Warm query instances (0 scales to zero; 1 removes cold starts for about the cost of one idle instance)."
  type        = number
  default     = 0
}

variable "query_max_instances" {
  description = "Upper bound on query instances."
  type        = number
  default     = 10
}

variable "query_concurrency" {
  description = "Requests one query instance handles at once (mostly waiting on the models)."
  type        = number
  default     = 8
}

variable "query_timeout_seconds" {
  description = "Query timeout (covers a long streamed answer)."
  type        = number
  default     = 120
}

variable "max_request_bytes" {
  description = "Largest request body the query API accepts."
  type        = number
  default     = 65536
}

variable "context_token_budget" {
  description = "Tokens of retrieved context put in front of the model."
  type        = number
  default     = 6000
}

variable "max_output_tokens" {
  description = "Longest answer, in tokens."
  type        = number
  default     = 1024
}

# --- job sweep and alerts -----------------------------------------------------------------------

variable "sweep_schedule" {
  description = "Cron schedule (UTC) of the Cloud Scheduler job that runs the job sweep. Every minute keeps the promise that a dead worker's job resumes within about two minutes."
  type        = string
  default     = "* * * * *"
}

variable "overdue_job_minutes" {
  description = "A job still queued or running this many minutes after it was created counts as overdue and raises the overdue-jobs alert (5-1440)."
  type        = number
  default     = 30

  validation {
    condition     = var.overdue_job_minutes >= 5 && var.overdue_job_minutes <= 1440 && floor(var.overdue_job_minutes) == var.overdue_job_minutes
    error_message = "overdue_job_minutes must be a whole number of minutes between 5 and 1440 (the sweep function's bounds)."
  }
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/<project>/notificationChannels/<id>) every alert policy notifies; empty opens incidents in the console only."
  type        = list(string)
  default     = []
}

variable "failed_jobs_alert_threshold" {
  description = "Failed-job log lines tolerated in 10 minutes before the failed-jobs alert fires (0: any failure, bad files included)."
  type        = number
  default     = 0

  validation {
    condition     = var.failed_jobs_alert_threshold >= 0
    error_message = "failed_jobs_alert_threshold must be 0 or more."
  }
}

variable "query_5xx_ratio_threshold" {
  description = "Share of query requests answered 5xx over 5 minutes above which the query-errors alert fires."
  type        = number
  default     = 0.05

  validation {
    condition     = var.query_5xx_ratio_threshold > 0 && var.query_5xx_ratio_threshold < 1
    error_message = "query_5xx_ratio_threshold must be a fraction between 0 and 1."
  }
}
