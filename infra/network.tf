# A private network for the database: Cloud SQL gets a private IP through private services access,
# and the functions reach it with Direct VPC egress (no connector VMs to pay for). Only private
# ranges go through the VPC; Google APIs and the models are reached directly.

resource "google_compute_network" "main" {
  name                    = "${var.name_prefix}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.apis]
}

resource "google_compute_subnetwork" "functions" {
  name                     = "${var.name_prefix}-functions"
  region                   = var.region
  network                  = google_compute_network.main.id
  ip_cidr_range            = var.functions_subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.1
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_global_address" "private_services" {
  name          = "${var.name_prefix}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.private_services_prefix_length
  network       = google_compute_network.main.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.main.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]

  # Cloud SQL keeps its addresses for days after an instance is deleted (so it can be restored),
  # and the connection cannot be deleted meanwhile: destroy drops it from state instead, and the
  # peering it leaves is removed by hand before the network (README.md, "Teardown").
  deletion_policy = "ABANDON"
}

# Nothing in this network accepts connections: the functions only egress through it. The explicit
# rule (instead of the implied one) logs any attempt.
resource "google_compute_firewall" "deny_all_ingress" {
  name      = "${var.name_prefix}-deny-all-ingress"
  network   = google_compute_network.main.id
  direction = "INGRESS"
  priority  = 65534

  deny {
    protocol = "all"
  }
  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "EXCLUDE_ALL_METADATA"
  }
}
