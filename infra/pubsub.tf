# The jobs topic, its dead-letter topic, and how chunk-embed receives jobs.
#
# chunk-embed is fed by a push subscription we own rather than by a function event trigger: the
# subscription Eventarc creates for a Pub/Sub trigger cannot be given a dead-letter policy from
# Terraform. Our subscription pushes the standard Pub/Sub envelope with an OIDC token to the
# function's Cloud Run URL; functions-framework turns that envelope into the same messagePublished
# CloudEvent (the local stack runs the identical path through the emulator). A non-2xx answer is
# redelivered with exponential backoff, and after max_delivery_attempts the message moves to the
# dead-letter topic. There the dead-letter function fails the job (a worker killed or timed out on
# every attempt could not), and a pull subscription keeps a copy for inspection.

resource "google_pubsub_topic" "jobs" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; customer-managed keys would add a KMS key ring to run and pay for without changing who can read job messages (ids only, no document text).
  name                       = "${var.name_prefix}-ingest-jobs"
  message_retention_duration = "86400s"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption, as for the jobs topic.
  name = "${var.name_prefix}-ingest-jobs-dead-letter"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "chunk_embed" {
  name  = "${var.name_prefix}-chunk-embed-push"
  topic = google_pubsub_topic.jobs.id

  # For push, the ack deadline is the request timeout: at least the function's own timeout.
  ack_deadline_seconds       = var.chunk_embed_timeout_seconds
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = google_cloudfunctions2_function.fn["chunk-embed"].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.invoker.email
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.invoker,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}

# Feeds the dead-letter function, which fails the job of each message (a worker that was killed
# or timed out on every attempt never got to record why). Retried until it succeeds.
resource "google_pubsub_subscription" "dead_letter_push" {
  name                       = "${var.name_prefix}-dead-letter-push"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = google_cloudfunctions2_function.fn["dead-letter"].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.invoker.email
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_cloud_run_v2_service_iam_member.invoker]
}

# Keeps every dead letter for a week, for people to inspect (`gcloud pubsub subscriptions pull`).
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${var.name_prefix}-ingest-jobs-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}
