"""The `ai-infra` operator command: one module per command group, assembled in `main`."""
