terraform {
  # check blocks and optional object attributes need 1.5; write-only arguments 1.11.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.26 is the first release with Direct VPC egress on google_cloudfunctions2_function and
      # its validation fix; the 8.x major may rename arguments, so it is opted into explicitly.
      version = ">= 7.26, < 8.0"
    }
  }
}

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = merge({ app = var.name_prefix, managed-by = "terraform" }, var.labels)
}
