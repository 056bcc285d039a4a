"""REST serving: ``create_app(run_dir)`` builds the FastAPI app; ``build_server`` runs it under uvicorn."""

from polymodal.serve.app import create_app

__all__ = ["create_app"]
