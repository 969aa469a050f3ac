"""bench: benchmarks and the synthetic scaled city they share (not part of the service)."""
