# The Cloud Run functions (gen2, Python 3.13): five entry points, six deployments (ingest_trigger
# runs twice, once per storage event), all built from the one source archive. Its main.py
# re-exports every entry point, so only entry_point differs between them.

resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Images hold only our open code and public packages; Google-managed encryption suffices and a KMS key would add cost and a failure mode to every build.
  repository_id = "${var.name_prefix}-functions"
  location      = var.region
  format        = "DOCKER"
  description   = "Images built from the function source archive"

  # Every deployment pushes a new image; keep the last few for rollbacks and drop the rest.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124:Only the query function allows all ingress (a public HTTPS API authenticated by API keys); the event-driven ones and the scheduled sweep are ALLOW_INTERNAL_ONLY, which tests/test_infra.py asserts.
  for_each = local.functions

  name        = "${var.name_prefix}-${each.key}"
  location    = var.region
  description = "ai-infra ${each.value.entry_point}"

  build_config {
    runtime           = "python313"
    entry_point       = each.value.entry_point
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket_object.source.bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout
    max_instance_request_concurrency = each.value.concurrency
    min_instance_count               = each.value.min_instances
    max_instance_count               = each.value.max_instances
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.runtime[each.value.account].email
    environment_variables            = merge(local.common_env, each.value.env, var.settings_overrides)

    # Private ranges (the database) go through the VPC; Google APIs are reached directly.
    direct_vpc_network_interface {
      network    = google_compute_network.main.name
      subnetwork = google_compute_subnetwork.functions.name
    }
    direct_vpc_egress = "VPC_EGRESS_PRIVATE_RANGES_ONLY"

    dynamic "secret_environment_variables" {
      for_each = each.value.account == "query" && var.generation_provider == "openai" ? [google_secret_manager_secret.openai_api_key[0]] : []
      content {
        key        = "AI_INFRA_OPENAI_API_KEY"
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret_id
        version    = "latest"
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.value.trigger == "gcs" ? [each.value.event_type] : []
    content {
      trigger_region        = var.region
      event_type            = event_trigger.value
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.invoker.email

      event_filters {
        attribute = "bucket"
        value     = google_storage_bucket.documents.name
      }
    }
  }

  depends_on = [
    google_project_iam_member.runtime,
    google_project_iam_member.query_ranker,
    google_project_iam_member.builder_logs,
    google_project_iam_member.builder_source_reader,
    google_artifact_registry_repository_iam_member.builder_writer,
    google_project_iam_member.gcs_agent_publisher,
    google_project_iam_member.invoker_event_receiver,
    google_secret_manager_secret_iam_member.query_openai_key,
    google_sql_user.runtime,
  ]
}

# The query API is public at the network and IAM level on purpose: callers authenticate with
# ai-infra API keys (Authorization: Bearer), checked by the application against hashed keys.
resource "google_cloud_run_v2_service_iam_member" "query_public" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.fn["query"].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
