"""The REST API: a thin FastAPI front over `core`."""
