# Two buckets: the upload bucket whose events drive ingestion, and a private bucket for the
# functions' source archive (kept apart so a deployment never looks like a document upload).

locals {
  # Cloud Run's deterministic URL of the query function and its cloudfunctions.net alias.
  console_origins = concat([
    "https://${var.name_prefix}-query-${data.google_project.this.number}.${var.region}.run.app",
    "https://${var.region}-${var.project_id}.cloudfunctions.net",
  ], var.console_origins)
}

resource "google_storage_bucket" "documents" {
  #checkov:skip=CKV_GCP_62:Access is audited through Cloud Audit Logs (Data Access); legacy usage-log buckets would add a bucket that itself needs logging.
  #checkov:skip=CKV_GCP_78:Versioning is a variable, off by default: each generation is recorded in the database and a deleted document must not linger as a noncurrent version.
  name                        = local.bucket_name
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.bucket_force_destroy

  versioning {
    enabled = var.bucket_versioning
  }

  # The console (served by the query function at /console) PUTs files to signed URLs from the
  # browser: a cross-origin request with the signed headers. The origins are the function's
  # URLs, computed here because the function itself depends on this bucket.
  cors {
    origin          = local.console_origins
    method          = ["PUT"]
    response_header = ["Content-Type", "x-goog-content-length-range"]
    max_age_seconds = 3600
  }

  dynamic "lifecycle_rule" {
    for_each = var.document_retention_days > 0 ? [var.document_retention_days] : []
    content {
      action {
        type = "Delete"
      }
      condition {
        age = lifecycle_rule.value
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only build archives; access is audited through Cloud Audit Logs.
  name                        = "${var.project_id}-${var.name_prefix}-source"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  # Archives are named by content hash, so versions only pile up if one is overwritten by hand.
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
  }

  depends_on = [google_project_service.apis]
}

# The archive built by `ai-infra package`; its name carries the content hash, so a code change
# makes a new object and the functions redeploy, and an unchanged tree changes nothing.
resource "google_storage_bucket_object" "source" {
  name   = "source-${filemd5(local.source_archive)}.zip"
  bucket = google_storage_bucket.source.name
  source = local.source_archive
}
