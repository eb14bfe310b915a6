# Identities and least-privilege grants. Every role is bound on the narrowest resource that works
# (a topic, a bucket, a service); the project-level grants are those Google offers no narrower
# scope for (Cloud SQL, Vertex AI, Eventarc, build logs).

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

resource "google_service_account" "runtime" {
  for_each = local.runtime_accounts

  account_id   = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  display_name = "${var.name_prefix} ${each.key}"
  description  = each.value

  depends_on = [google_project_service.apis]
}

# Calls the functions on behalf of Eventarc (storage events) and of the push subscriptions.
resource "google_service_account" "invoker" {
  account_id   = "${var.name_prefix}-invoker"
  display_name = "${var.name_prefix} invoker"
  description  = "Identity of the Eventarc triggers and the Pub/Sub push subscriptions"

  depends_on = [google_project_service.apis]
}

# Calls the sweep function on Cloud Scheduler's behalf (OIDC); may invoke nothing else.
resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "${var.name_prefix} scheduler"
  description  = "Identity of the Cloud Scheduler job that runs the job sweep"

  depends_on = [google_project_service.apis]
}

# Builds the function images (Cloud Build), instead of the default compute account.
resource "google_service_account" "builder" {
  account_id   = "${var.name_prefix}-builder"
  display_name = "${var.name_prefix} builder"
  description  = "Cloud Build identity for the function builds"

  depends_on = [google_project_service.apis]
}

# --- runtime accounts ---------------------------------------------------------------------------

locals {
  # Project-level roles per runtime account: Cloud SQL connects per instance through the Admin API
  # and Vertex AI has no per-model IAM, so these have no narrower scope.
  runtime_project_roles = {
    ingest      = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    chunk_embed = ["roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/aiplatform.user"]
    query       = ["roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/aiplatform.user"]
    dead_letter = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    sweep       = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
  }
  runtime_project_grants = {
    for pair in flatten([
      for account, roles in local.runtime_project_roles : [
        for role in roles : { account = account, role = role }
      ]
    ]) : "${pair.account}/${pair.role}" => pair
  }
}

resource "google_project_iam_member" "runtime" {
  for_each = local.runtime_project_grants

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.runtime[each.value.account].member
}

# ingest-* checks that an event's generation is still the live object; chunk-embed downloads
# the exact object generation of a job.
resource "google_storage_bucket_iam_member" "readers" {
  for_each = toset(["ingest", "chunk_embed"])

  bucket = google_storage_bucket.documents.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.runtime[each.key].member
}

# The query API's DELETE /v1/documents/{id} removes the object too.
resource "google_storage_bucket_iam_member" "query_admin" {
  bucket = google_storage_bucket.documents.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.runtime["query"].member
}

# POST /v1/projects/{id}/uploads signs V4 URLs through IAM Credentials signBlob as the query
# function's own account (no key file): token creator on that one account, nothing wider.
resource "google_service_account_iam_member" "query_signs_as_itself" {
  service_account_id = google_service_account.runtime["query"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.runtime["query"].member
}

# Reranking (rerank_provider = vertex) calls the Vertex AI ranking API, which needs
# discoveryengine.rankingConfigs.rank on the project. The narrowest predefined role holding it,
# roles/discoveryengine.viewer, would also let the query account search, converse with and read
# the documents of every Vertex AI Search app and data store in the project, so the account gets
# a custom role with that one permission instead (rank is stateless: no resource to scope it to).
resource "google_project_iam_custom_role" "ranker" {
  count = var.rerank_provider == "vertex" ? 1 : 0

  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_ranker"
  title       = "${var.name_prefix} ranker"
  description = "Rerank search results with the Vertex AI ranking API, nothing else"
  permissions = ["discoveryengine.rankingConfigs.rank"]
}

resource "google_project_iam_member" "query_ranker" {
  count = var.rerank_provider == "vertex" ? 1 : 0

  project = var.project_id
  role    = google_project_iam_custom_role.ranker[0].name
  member  = google_service_account.runtime["query"].member
}

# Only the trigger queues jobs.
resource "google_pubsub_topic_iam_member" "ingest_publisher" {
  topic  = google_pubsub_topic.jobs.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.runtime["ingest"].member
}

# The sweep publishes a re-queued job, or one whose message was lost, to the jobs topic again.
resource "google_pubsub_topic_iam_member" "sweep_jobs_publisher" {
  topic  = google_pubsub_topic.jobs.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.runtime["sweep"].member
}

# chunk-embed dead-letters a job itself when it gives up on the last attempt (with the reason).
resource "google_pubsub_topic_iam_member" "chunk_embed_dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.runtime["chunk_embed"].member
}

# --- invoker ------------------------------------------------------------------------------------

resource "google_project_iam_member" "invoker_event_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.invoker.member
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = { for name, fn in local.functions : name => fn if contains(["gcs", "push"], fn.trigger) }

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.invoker.member
}

# --- scheduler ----------------------------------------------------------------------------------

# The scheduler's account may invoke the sweep function's service and nothing else. Cloud
# Scheduler's own service agent mints its OIDC tokens (its predefined role covers that).
resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_sweep" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.fn["sweep"].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# --- builder ------------------------------------------------------------------------------------

resource "google_project_iam_member" "builder_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.builder.member
}

resource "google_artifact_registry_repository_iam_member" "builder_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.builder.member
}

# The build reads the source from our bucket and from the copy Cloud Functions stages in its own
# gcf-v2-sources-* bucket, which does not exist before the first deployment, hence a condition
# instead of a bucket binding.
resource "google_project_iam_member" "builder_source_reader" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.builder.member

  condition {
    title       = "function-sources-only"
    description = "Function source archives only, never the documents"
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-\") || resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.source.name}\")"
  }
}

# --- Google service agents ----------------------------------------------------------------------

# Eventarc storage triggers publish through Pub/Sub topics it creates itself, as the Cloud
# Storage service agent, so the grant cannot be narrowed to a topic that does not exist yet.
resource "google_project_iam_member" "gcs_agent_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# Pub/Sub mints the push subscription's OIDC tokens as the invoker account.
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_service_agent}"

  depends_on = [google_project_service.apis]
}

# Dead lettering: Pub/Sub forwards from the push subscription to the dead-letter topic.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${local.pubsub_service_agent}"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  subscription = google_pubsub_subscription.chunk_embed.id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${local.pubsub_service_agent}"
}

# --- operators ----------------------------------------------------------------------------------

locals {
  operator_grants = {
    for pair in setproduct(var.db_operators, ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]) :
    "${pair[0]}/${pair[1]}" => { email = pair[0], role = pair[1] }
  }
}

resource "google_project_iam_member" "operators" {
  for_each = local.operator_grants

  project = var.project_id
  role    = each.value.role
  member  = "user:${each.value.email}"
}
