output "bucket_name" {
  description = "Upload bucket: gs://<bucket>/<project_id>/<path> becomes a document of that project."
  value       = google_storage_bucket.documents.name
}

output "query_url" {
  description = "Base URL of the query API (send Authorization: Bearer <api key>)."
  value       = google_cloudfunctions2_function.fn["query"].service_config[0].uri
}

output "instance_connection_name" {
  description = "Cloud SQL instance connection name (project:region:instance)."
  value       = google_sql_database_instance.main.connection_name
}

output "database_name" {
  description = "Application database."
  value       = google_sql_database.app.name
}

output "dead_letter_subscription" {
  description = "Pull subscription holding job messages that exhausted their delivery attempts."
  value       = google_pubsub_subscription.dead_letter.name
}

output "sweep_scheduler_job" {
  description = "Cloud Scheduler job that runs the job sweep; run it now with: gcloud scheduler jobs run <name> --location <region>."
  value       = google_cloud_scheduler_job.sweep.name
}

output "function_service_accounts" {
  description = "Runtime service account of each function entry point (also its IAM database user)."
  value       = { for key, account in google_service_account.runtime : key => account.email }
}

output "operator_env" {
  description = "Settings for running the ai-infra command against this deployment: eval \"$(terraform -chdir=infra output -raw operator_env)\"."
  value       = <<-EOT
    export AI_INFRA_MODE=cloud
    export AI_INFRA_DB_INSTANCE_CONNECTION_NAME=${google_sql_database_instance.main.connection_name}
    export AI_INFRA_DB_NAME=${google_sql_database.app.name}
    export AI_INFRA_DB_IP_TYPE=${var.db_public_ip ? "public" : "private"}
    export AI_INFRA_DB_IAM_USER="$(gcloud config get-value account)"
    export AI_INFRA_GCP_PROJECT=${var.project_id}
    export AI_INFRA_GCP_LOCATION=${local.vertex_location}
    export AI_INFRA_BUCKET=${google_storage_bucket.documents.name}
    export AI_INFRA_JOBS_TOPIC=${google_pubsub_topic.jobs.name}
    export AI_INFRA_DEAD_LETTER_TOPIC=${google_pubsub_topic.dead_letter.name}
    export AI_INFRA_EMBEDDING_PROVIDER=vertex
    export AI_INFRA_EMBEDDING_MODEL=${var.embedding_model}
    export AI_INFRA_EMBEDDING_DIM=${var.embedding_dim}
    export AI_INFRA_GENERATION_PROVIDER=${var.generation_provider}
    export AI_INFRA_GENERATION_MODEL=${var.generation_model}
    export AI_INFRA_MAX_DELIVERY_ATTEMPTS=${var.max_delivery_attempts}
  EOT
}

output "db_grants_sql" {
  description = "The grants migration 0003 applies through cloudsqliamserviceaccount, per user, for re-applying by hand."
  value = join("\n", concat(
    [for user in values(local.db_users) : "GRANT USAGE ON SCHEMA public TO \"${user}\";"],
    [for user in values(local.db_users) : "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"${user}\";"],
    [for user in values(local.db_users) : "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO \"${user}\";"],
    [for user in values(local.db_users) : "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO \"${user}\";"],
  ))
}

output "first_run_commands" {
  description = "What to run once after the first apply, in order (see infra/README.md)."
  value       = <<-EOT
    gcloud auth application-default login
    eval "$(terraform -chdir=infra output -raw operator_env)"
    uv run ai-infra migrate
    # (migration 0003 grants the functions' IAM users access to the tables)
    uv run ai-infra teams create my-team
    uv run ai-infra projects create docs --team my-team
    uv run ai-infra keys create --team my-team --name first-key
    uv run ai-infra upload --project docs ./my-documents --wait
    uv run ai-infra ask --project docs "What do these documents say about X?"
    curl -sS -X POST -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d '{"question": "What do these documents say about X?"}' ${google_cloudfunctions2_function.fn["query"].service_config[0].uri}/v1/projects/$PROJECT_ID/query
  EOT
}
