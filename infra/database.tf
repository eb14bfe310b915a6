# Cloud SQL for PostgreSQL with pgvector (the migrations run CREATE EXTENSION vector). Private IP
# only by default, IAM database authentication for every login, connections only through the
# Cloud SQL connectors (mTLS with IAM-checked ephemeral certificates), backups with
# point-in-time recovery, deletion protection on.

resource "google_sql_database_instance" "main" {
  #checkov:skip=CKV2_GCP_13:log_duration would log a line for every statement (thousands per ingested document); Query Insights records statement latencies instead.
  name                = local.db_instance_name
  region              = var.region
  database_version    = var.db_version
  deletion_protection = var.db_deletion_protection

  settings {
    edition                     = var.db_edition
    tier                        = var.db_tier
    availability_type           = var.db_availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.db_disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = var.db_deletion_protection
    connector_enforcement       = "REQUIRED"
    user_labels                 = merge({ app = var.name_prefix }, var.labels)

    ip_configuration {
      ipv4_enabled                                  = var.db_public_ip
      private_network                               = google_compute_network.main.id
      ssl_mode                                      = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
      enable_private_path_for_google_cloud_services = false
    }

    backup_configuration {
      enabled                        = true
      start_time                     = var.db_backup_start_time
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = var.db_pitr_log_retention_days

      backup_retention_settings {
        retained_backups = var.db_backup_retained_count
        retention_unit   = "COUNT"
      }
    }

    insights_config {
      query_insights_enabled  = true
      query_string_length     = 1024
      record_application_tags = false
      record_client_address   = false
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "max_connections"
      value = var.db_max_connections
    }
    # Connection and lock logging for incident review; statement text is never logged (questions
    # are not stored, but document chunks are written by INSERT/COPY).
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }

  lifecycle {
    precondition {
      condition     = local.worst_case_db_connections <= var.db_max_connections - 20
      error_message = "The functions' connection pools (max instances x (pool + overflow) = ${local.worst_case_db_connections}) exceed db_max_connections minus 20 reserved for operators and maintenance; lower max instances or raise db_max_connections."
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "app" {
  name     = "ai_infra"
  instance = google_sql_database_instance.main.name
}

# One IAM database user per runtime service account; the functions log in as these.
resource "google_sql_user" "runtime" {
  for_each = google_service_account.runtime

  name     = local.db_users[each.key]
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# Operators run migrations (CREATE EXTENSION needs cloudsqlsuperuser) and the ai-infra command.
resource "google_sql_user" "operators" {
  for_each = toset(var.db_operators)

  name           = each.value
  instance       = google_sql_database_instance.main.name
  type           = "CLOUD_IAM_USER"
  database_roles = ["cloudsqlsuperuser"]
}
