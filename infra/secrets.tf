# The OpenAI-compatible server's API key, only when generation_provider = openai. Terraform
# creates the secret but never its value (which would then sit in state and tfvars): add the
# first version yourself before the query function is deployed, see README.md.

resource "google_secret_manager_secret" "openai_api_key" {
  count = var.generation_provider == "openai" ? 1 : 0

  secret_id = "${var.name_prefix}-openai-api-key"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "query_openai_key" {
  count = var.generation_provider == "openai" ? 1 : 0

  secret_id = google_secret_manager_secret.openai_api_key[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime["query"].member
}
