"""runtime: the shared non-web wiring of the service and the CLI (settings, database, stores, services)."""
