"""``xmc serve``: a trained model behind HTTP (FastAPI + uvicorn), on the same code path as the CLI
and the Python API (:mod:`xmc.api`)."""
