"""REST serving: ``create_app(run_dir)`` builds the FastAPI app; ``build_server`` runs it under uvicorn.

``create_app`` is imported on first use (PEP 562): ``polymodal.serve.limits``, whose defaults the ``polymodal
serve`` command's options show, is read without loading the app, FastAPI and torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polymodal.serve.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from polymodal.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'polymodal.serve' has no attribute {name!r}")
