"""checks: screen project parcels against a blueprint version and explain the verdict."""
