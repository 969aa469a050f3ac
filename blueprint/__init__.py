"""blueprint: merge plan layers into one versioned, topologically clean blueprint."""
