"""layers: read, normalise and validate the plan layers that departments hand over."""
