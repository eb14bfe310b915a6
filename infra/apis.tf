# Every API the deployment touches, enabled here so an empty project works. They stay enabled on
# destroy: other workloads in the project may use them too. The Discovery Engine API (the Vertex AI
# ranking API) only when the query function reranks.
resource "google_project_service" "apis" {
  for_each = toset(concat([
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ], var.rerank_provider == "vertex" ? ["discoveryengine.googleapis.com"] : []))

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
