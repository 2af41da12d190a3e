"""The HTTP API (FastAPI): thin routes over the command gateway and the read models."""
