"""api: the FastAPI service for planners and the approval system."""
