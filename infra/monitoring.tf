# Alerts that tell operators something is wrong, each with what to do (infra/README.md, Operating).
# Every policy notifies var.notification_channels; with none set the incidents still open in Cloud
# Monitoring. Log-based metrics read the functions' JSON log lines (jsonPayload.message plus the
# extra fields), matched per Cloud Run service so another workload's logs never count.

locals {
  service_names = { for name, fn in google_cloudfunctions2_function.fn : name => fn.name }

  # Log lines that leave a job failed (common/ingestion/jobs.py, sweeper.py, functions/sweep).
  failed_job_lines = "^(ingestion failed|ingestion gave up|embedding request refused|dead-lettered job marked failed|job sweep finished)"
}

# --- log-based metrics --------------------------------------------------------------------------

resource "google_logging_metric" "failed_jobs" {
  name        = "${var.name_prefix}/ingestion-jobs-failed"
  description = "Log lines of ingestion jobs ending failed: bad files, gave up after every attempt, dead-lettered, or failed by the sweep"
  filter      = <<-EOT
    resource.type="cloud_run_revision"
    (
      (resource.labels.service_name="${local.service_names["chunk-embed"]}" AND jsonPayload.message=~"^(ingestion failed|ingestion gave up|embedding request refused): ")
      OR (resource.labels.service_name="${local.service_names["dead-letter"]}" AND jsonPayload.message=~"^dead-lettered job marked failed")
      OR (resource.labels.service_name="${local.service_names["sweep"]}" AND jsonPayload.message=~"^job sweep finished" AND jsonPayload.failed>0)
    )
  EOT

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name_prefix} failed ingestion jobs"
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Which log line: ingestion failed / gave up / embedding request refused / dead-lettered / job sweep"
    }
  }
  label_extractors = {
    reason = "REGEXP_EXTRACT(jsonPayload.message, \"${local.failed_job_lines}\")"
  }
}

# One sample per sweep that found overdue jobs: how many (the sweep's `overdue_jobs` field).
resource "google_logging_metric" "overdue_jobs" {
  name            = "${var.name_prefix}/ingestion-jobs-overdue"
  description     = "Jobs still queued or running after the sweep's overdue window, per sweep that found any"
  filter          = <<-EOT
    resource.type="cloud_run_revision"
    resource.labels.service_name="${local.service_names["sweep"]}"
    jsonPayload.message=~"^job sweep finished"
    jsonPayload.overdue_jobs>0
  EOT
  value_extractor = "EXTRACT(jsonPayload.overdue_jobs)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "${var.name_prefix} overdue ingestion jobs"
  }
  bucket_options {
    explicit_buckets {
      bounds = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    }
  }
}

# Per team with overdue jobs, one sample per sweep: how many, labelled with the team, so the
# alert below opens one incident per team whose documents are stuck (fair scheduling makes a
# bulk upload wait its turn; a team whose jobs stay overdue is a capacity or quota problem).
resource "google_logging_metric" "overdue_jobs_by_team" {
  name            = "${var.name_prefix}/ingestion-jobs-overdue-by-team"
  description     = "A team's jobs still queued or running after the sweep's overdue window"
  filter          = <<-EOT
    resource.type="cloud_run_revision"
    resource.labels.service_name="${local.service_names["sweep"]}"
    jsonPayload.message=~"^team has overdue ingestion jobs"
    jsonPayload.overdue_jobs>0
  EOT
  value_extractor = "EXTRACT(jsonPayload.overdue_jobs)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "${var.name_prefix} overdue ingestion jobs per team"
    labels {
      key         = "team"
      value_type  = "STRING"
      description = "The team's name"
    }
  }
  label_extractors = {
    team = "EXTRACT(jsonPayload.team)"
  }
  bucket_options {
    explicit_buckets {
      bounds = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    }
  }
}

# Every finished sweep: its absence means nothing moves stuck jobs on.
resource "google_logging_metric" "sweeps" {
  name        = "${var.name_prefix}/job-sweeps"
  description = "Finished runs of the job sweep"
  filter      = <<-EOT
    resource.type="cloud_run_revision"
    resource.labels.service_name="${local.service_names["sweep"]}"
    jsonPayload.message=~"^job sweep finished"
  EOT

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name_prefix} job sweeps"
  }
}

# Queries served in the fused order because the reranker timed out, was rate limited or failed
# (common/query/service.py): a degraded answer, not an error, so it is metered, not alerted on.
resource "google_logging_metric" "rerank_fallbacks" {
  name        = "${var.name_prefix}/rerank-fallbacks"
  description = "Queries served in the fused order because the reranker did not answer in time or failed"
  filter      = <<-EOT
    resource.type="cloud_run_revision"
    resource.labels.service_name="${local.service_names["query"]}"
    jsonPayload.message=~"^rerank fell back"
  EOT

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name_prefix} rerank fallbacks"
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "timeout, rate_limited, unavailable, refused or backing_off"
    }
  }
  label_extractors = {
    reason = "EXTRACT(jsonPayload.rerank_status)"
  }
}

# --- alert policies -----------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "${var.name_prefix}: job messages in the dead-letter subscription"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Undelivered messages in ${google_pubsub_subscription.dead_letter.name} > 0"
    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    subject   = "ai-infra: job messages were dead-lettered"
    mime_type = "text/markdown"
    content   = <<-EOT
      Pub/Sub gave up on job messages: every delivery to chunk-embed failed (the worker crashed,
      timed out or ran out of memory each time). The dead-letter function has already marked
      these jobs failed with their reason.

      1. Look at the messages: `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter.name} --limit 10`
         (the data names the job and document; `ai-infra documents show` gives the reason).
      2. Read chunk-embed's logs for those job ids (`resource.labels.service_name="${local.service_names["chunk-embed"]}"`):
         out of memory means raise `chunk_embed_memory`; a timeout means a file too big for
         `chunk_embed_timeout_seconds`.
      3. Once fixed, `ai-infra documents reprocess` the documents, then acknowledge the messages:
         `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter.name} --auto-ack --limit 100`.
         The incident closes when the subscription is empty.
    EOT
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "failed_jobs" {
  display_name          = "${var.name_prefix}: ingestion jobs failing"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Failed ingestion jobs in 10 minutes > ${var.failed_jobs_alert_threshold}"
    condition_threshold {
      filter                  = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.failed_jobs.name}\""
      comparison              = "COMPARISON_GT"
      threshold_value         = var.failed_jobs_alert_threshold
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.reason"]
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    subject   = "ai-infra: ingestion jobs are failing"
    mime_type = "text/markdown"
    content   = <<-EOT
      Documents failed to ingest (the `reason` label says which log line counted).

      - `ingestion failed`: the file itself is bad (corrupt, encrypted, empty, scanned,
        unsupported, too large). Tell the uploader; `ai-infra documents list` shows the message.
        Many at once after a deploy point at the extractors instead.
      - `ingestion gave up` / `dead-lettered job marked failed` / `job sweep`: every attempt
        failed or was killed. Read chunk-embed's logs for the job ids (database, Vertex AI
        quota, memory); fix, then `ai-infra documents reprocess`.
      - `embedding request refused`: Vertex AI refused the request (credentials, model name,
        quota project). Fix the configuration, then `ai-infra documents reprocess`.

      Logs: `resource.type="cloud_run_revision" jsonPayload.message=~"${local.failed_job_lines}"`.
    EOT
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "query_errors" {
  display_name          = "${var.name_prefix}: query API 5xx ratio"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "5xx share of query requests over 5 minutes > ${var.query_5xx_ratio_threshold}"
    condition_threshold {
      filter             = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["query"]}\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\""
      denominator_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["query"]}\" AND metric.type=\"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.query_5xx_ratio_threshold
      duration           = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  documentation {
    subject   = "ai-infra: the query API answers 5xx"
    mime_type = "text/markdown"
    content   = <<-EOT
      More than ${var.query_5xx_ratio_threshold * 100}% of query requests failed with 5xx.

      1. `GET <query_url>/v1/health`: 503 means the database is unreachable or not migrated
         (Cloud SQL state, connections: `db_max_connections`, a pending `ai-infra migrate`).
      2. Logs: `resource.labels.service_name="${local.service_names["query"]}" severity>=ERROR`;
         each error line carries the request id the caller saw in `X-Request-ID`.
      3. 503 with model errors: Vertex AI quota or an outage (see the Vertex AI status page);
         500s right after a deploy: roll back by redeploying the previous source archive.
    EOT
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "overdue_jobs" {
  display_name          = "${var.name_prefix}: ingestion jobs overdue or the sweep not running"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Jobs unfinished after ${var.overdue_job_minutes} minutes > 0"
    condition_threshold {
      filter                  = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.overdue_jobs.name}\""
      comparison              = "COMPARISON_GT"
      threshold_value         = 0
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MEAN"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }

  conditions {
    display_name = "A team's jobs unfinished after ${var.overdue_job_minutes} minutes"
    condition_threshold {
      filter                  = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.overdue_jobs_by_team.name}\""
      comparison              = "COMPARISON_GT"
      threshold_value         = 0
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MEAN"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["metric.label.team"]
      }
    }
  }

  conditions {
    display_name = "No finished job sweep for 15 minutes"
    condition_absent {
      filter   = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.sweeps.name}\""
      duration = "900s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    subject   = "ai-infra: ingestion jobs are not finishing"
    mime_type = "text/markdown"
    content   = <<-EOT
      Either jobs were still queued or running ${var.overdue_job_minutes} minutes after they were
      created, or the job sweep (Cloud Scheduler job `${google_cloud_scheduler_job.sweep.name}`)
      has not finished a run for 15 minutes.

      - Overdue jobs: the sweep's log line (`jsonPayload.message="job sweep finished"`) has
        `overdue_jobs` and `oldest_overdue_seconds`; `ai-infra documents list` shows which
        documents wait. A long queue means chunk-embed is saturated (raise
        `chunk_embed_max_instances`, check Vertex AI quota) or its push subscription is failing
        (chunk-embed's logs, the subscription's delivery errors).
      - No sweep: `gcloud scheduler jobs describe ${google_cloud_scheduler_job.sweep.name} --location ${var.region}`
        (last attempt status), the sweep function's logs
        (`resource.labels.service_name="${local.service_names["sweep"]}"`); run one by hand with
        `gcloud scheduler jobs run ${google_cloud_scheduler_job.sweep.name} --location ${var.region}`
        or `ai-infra jobs sweep`.
    EOT
  }

  depends_on = [google_project_service.apis]
}
