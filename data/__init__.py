"""data: the demo-city generator (data/generate.py) and its outputs (data/demo, data/scaled)."""
