# The job sweep, run by Cloud Scheduler: jobs whose worker died are re-queued (or failed once out
# of attempts), jobs whose message was lost are published again, and the jobs still unfinished
# after var.overdue_job_minutes are counted for the alert in monitoring.tf. The sweep takes row
# locks, so an overlapping or repeated run changes nothing twice.

resource "google_cloud_scheduler_job" "sweep" {
  name        = "${var.name_prefix}-job-sweep"
  region      = var.region
  description = "Runs the ai-infra job sweep (functions/sweep)"
  schedule    = var.sweep_schedule
  time_zone   = "Etc/UTC"

  # The function's timeout bounds one sweep; the next tick is the retry.
  attempt_deadline = "${local.sweep_timeout_seconds}s"
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.fn["sweep"].service_config[0].uri
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode(jsonencode({ overdue_minutes = var.overdue_job_minutes }))

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.fn["sweep"].service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.apis,
    google_cloud_run_v2_service_iam_member.scheduler_invokes_sweep,
  ]
}
