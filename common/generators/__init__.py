"""Generator implementations, one module per provider; pick one with `common.generation`."""
