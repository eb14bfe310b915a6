# Names, the per-function table and the settings every function reads. The functions themselves
# are in functions.tf; everything a function needs at run time is an AI_INFRA_* variable from here.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  source_archive   = coalesce(var.source_archive, "${path.module}/../build/source.zip")
  bucket_name      = coalesce(var.bucket_name, "${var.project_id}-${var.name_prefix}-documents")
  db_instance_name = coalesce(var.db_instance_name, "${var.name_prefix}-pg")
  vertex_location  = coalesce(var.vertex_location, var.region)

  # The sweep's function timeout and the scheduler's attempt deadline: one sweep never outlives
  # the scheduler's wait for it. Long enough for one project HNSW build (a 134,000-chunk
  # project: 28 s on 2 cores; a few million chunks: minutes); the job sweep itself takes
  # seconds, and a build holds one of the two concurrent slots while the next minutes' sweeps
  # use the other (advisory locks keep them from building the same index).
  sweep_timeout_seconds = 900

  # Google-managed service agents of this project.
  pubsub_service_agent = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Runtime identities, one per function entry point (the two ingest functions run the same code).
  runtime_accounts = {
    ingest      = "Runs ingest-finalized and ingest-deleted: records documents and queues jobs"
    chunk_embed = "Runs chunk-embed: extracts, chunks and embeds one document per job"
    query       = "Runs query: the HTTPS API"
    dead_letter = "Runs dead-letter: fails the job of a message Pub/Sub gave up on"
    sweep       = "Runs sweep: re-queues stuck jobs and counts overdue ones, for Cloud Scheduler"
  }

  # Cloud SQL IAM database user of each runtime account: Postgres user names drop the
  # ".gserviceaccount.com" suffix of the service account email.
  db_users = {
    for key, account in google_service_account.runtime :
    key => trimsuffix(account.email, ".gserviceaccount.com")
  }

  # Settings shared by every function (see common/platform/config.py for their meaning).
  common_env = {
    AI_INFRA_MODE                        = "cloud"
    AI_INFRA_LOG_LEVEL                   = var.log_level
    AI_INFRA_DB_INSTANCE_CONNECTION_NAME = google_sql_database_instance.main.connection_name
    AI_INFRA_DB_NAME                     = google_sql_database.app.name
    AI_INFRA_DB_IP_TYPE                  = "private"
    AI_INFRA_GCP_PROJECT                 = var.project_id
    AI_INFRA_GCP_LOCATION                = local.vertex_location
    AI_INFRA_BUCKET                      = google_storage_bucket.documents.name
    AI_INFRA_JOBS_TOPIC                  = google_pubsub_topic.jobs.name
    AI_INFRA_DEAD_LETTER_TOPIC           = google_pubsub_topic.dead_letter.name
    AI_INFRA_EMBEDDING_PROVIDER          = "vertex"
    AI_INFRA_EMBEDDING_MODEL             = var.embedding_model
    AI_INFRA_EMBEDDING_DIM               = var.embedding_dim
    AI_INFRA_MAX_DELIVERY_ATTEMPTS       = var.max_delivery_attempts
    AI_INFRA_JOB_TIMEOUT_SECONDS         = var.chunk_embed_timeout_seconds
    AI_INFRA_MAX_FILE_BYTES              = var.max_file_bytes
    AI_INFRA_MAX_PDF_PAGES               = var.max_pdf_pages
    # Fair ingestion: jobs at once over all teams = chunk-embed's job instances (one job each),
    # so admission (chunk-embed) and release (chunk-embed, sweep) agree on the slots there are;
    # its spare instances only take deliveries to defer.
    AI_INFRA_INGEST_CAPACITY = var.chunk_embed_max_instances
  }

  # One entry per deployed function. `trigger` is "gcs" (Eventarc on the bucket), "push" (one of
  # our own Pub/Sub push subscriptions, see pubsub.tf), "scheduler" (Cloud Scheduler with its own
  # identity, see scheduler.tf) or "http" (public HTTPS).
  functions = {
    ingest-finalized = {
      entry_point   = "ingest_trigger"
      account       = "ingest"
      trigger       = "gcs"
      event_type    = "google.cloud.storage.object.v1.finalized"
      memory        = var.ingest_memory
      cpu           = "1"
      timeout       = var.ingest_timeout_seconds
      concurrency   = var.ingest_concurrency
      min_instances = 0
      max_instances = var.ingest_max_instances
      ingress       = "ALLOW_INTERNAL_ONLY"
      env = {
        AI_INFRA_DB_IAM_USER     = local.db_users["ingest"]
        AI_INFRA_DB_POOL_SIZE    = 2
        AI_INFRA_DB_MAX_OVERFLOW = 2
      }
    }
    ingest-deleted = {
      entry_point   = "ingest_trigger"
      account       = "ingest"
      trigger       = "gcs"
      event_type    = "google.cloud.storage.object.v1.deleted"
      memory        = var.ingest_memory
      cpu           = "1"
      timeout       = var.ingest_timeout_seconds
      concurrency   = var.ingest_concurrency
      min_instances = 0
      max_instances = var.ingest_max_instances
      ingress       = "ALLOW_INTERNAL_ONLY"
      env = {
        AI_INFRA_DB_IAM_USER     = local.db_users["ingest"]
        AI_INFRA_DB_POOL_SIZE    = 2
        AI_INFRA_DB_MAX_OVERFLOW = 2
      }
    }
    chunk-embed = {
      entry_point   = "chunk_embed"
      account       = "chunk_embed"
      trigger       = "push"
      event_type    = null
      memory        = var.chunk_embed_memory
      cpu           = "1"
      timeout       = var.chunk_embed_timeout_seconds
      concurrency   = 1
      min_instances = 0
      # Spare instances only take deliveries that fair scheduling defers (a few ms each): with
      # none, a team's backlog holds every instance and other teams' messages wait in Pub/Sub.
      max_instances = var.chunk_embed_max_instances + var.chunk_embed_spare_instances
      ingress       = "ALLOW_INTERNAL_ONLY"
      env = {
        AI_INFRA_DB_IAM_USER     = local.db_users["chunk_embed"]
        AI_INFRA_DB_POOL_SIZE    = 1
        AI_INFRA_DB_MAX_OVERFLOW = 1
        AI_INFRA_PARSER          = var.parser
        AI_INFRA_PARSER_MODEL    = var.parser_model
      }
    }
    dead-letter = {
      entry_point   = "dead_letter"
      account       = "dead_letter"
      trigger       = "push"
      event_type    = null
      memory        = "512Mi"
      cpu           = "1"
      timeout       = 60
      concurrency   = 4
      min_instances = 0
      max_instances = 2
      ingress       = "ALLOW_INTERNAL_ONLY"
      env = {
        AI_INFRA_DB_IAM_USER     = local.db_users["dead_letter"]
        AI_INFRA_DB_POOL_SIZE    = 1
        AI_INFRA_DB_MAX_OVERFLOW = 1
      }
    }
    sweep = {
      entry_point   = "sweep"
      account       = "sweep"
      trigger       = "scheduler"
      event_type    = null
      memory        = "512Mi"
      cpu           = "1"
      timeout       = local.sweep_timeout_seconds
      concurrency   = 2
      min_instances = 0
      max_instances = 1
      ingress       = "ALLOW_INTERNAL_ONLY" # Cloud Scheduler in the same project counts as internal
      env = {
        AI_INFRA_DB_IAM_USER     = local.db_users["sweep"]
        AI_INFRA_DB_POOL_SIZE    = 1
        AI_INFRA_DB_MAX_OVERFLOW = 1
      }
    }
    query = {
      entry_point   = "query"
      account       = "query"
      trigger       = "http"
      event_type    = null
      memory        = var.query_memory
      cpu           = "1"
      timeout       = var.query_timeout_seconds
      concurrency   = var.query_concurrency
      min_instances = var.query_min_instances
      max_instances = var.query_max_instances
      ingress       = "ALLOW_ALL"
      env = {
        AI_INFRA_DB_IAM_USER          = local.db_users["query"]
        AI_INFRA_DB_POOL_SIZE         = 4
        AI_INFRA_DB_MAX_OVERFLOW      = 4
        AI_INFRA_GENERATION_PROVIDER  = var.generation_provider
        AI_INFRA_GENERATION_MODEL     = var.generation_model
        AI_INFRA_OPENAI_BASE_URL      = var.openai_base_url
        AI_INFRA_MAX_REQUEST_BYTES    = var.max_request_bytes
        AI_INFRA_CONTEXT_TOKEN_BUDGET = var.context_token_budget
        AI_INFRA_MAX_OUTPUT_TOKENS    = var.max_output_tokens
        AI_INFRA_RERANK_PROVIDER      = var.rerank_provider
        AI_INFRA_RERANK_MODEL         = var.rerank_model
      }
    }
  }

  # Worst case of open database connections: every instance of every function with a full pool.
  worst_case_db_connections = sum([
    for fn in local.functions :
    fn.max_instances * (fn.env.AI_INFRA_DB_POOL_SIZE + fn.env.AI_INFRA_DB_MAX_OVERFLOW)
  ])
}
