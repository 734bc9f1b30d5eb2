"""The HTTP edge: OpenAI-compatible schemas (pydantic lives only here) and the FastAPI app."""
