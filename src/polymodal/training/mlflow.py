"""Optional MLflow logging (``trainer.mlflow: true``): the trainer settings as parameters and every epoch's
numbers as metrics, in one MLflow run per polymodal run (a resumed run continues it).

The store is ``$MLFLOW_TRACKING_URI`` when set, else a local ``mlruns/`` folder in the working directory (what
``mlflow ui`` shows by default). MLflow 3 keeps that folder store in maintenance mode and refuses it unless
``MLFLOW_ALLOW_FILE_STORE=true``; polymodal sets that for the folder store it chooses itself, never for one the
user configured. Needs the ``mlflow`` extra (``pip install 'polymodal[mlflow]'``, the small mlflow-skinny).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polymodal.errors import ConfigError
from polymodal.runs import RunDir

EXPERIMENT = "polymodal"
RUN_ID = "mlflow_run_id.txt"  # in the run directory: which MLflow run a resumed run continues


class MLflowLog:
    """A trainer callback that logs to MLflow and passes every event on to ``then``.

    Args:
        run: The polymodal run directory (its name is the MLflow run's name).
        then: The callback to pass events on to.
        params: Settings to record as parameters (flat ``{name: value}``).
    """

    def __init__(self, run: RunDir, then: Callable[..., None], params: dict[str, Any]) -> None:
        self.check()
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"file:{Path.cwd() / 'mlruns'}"
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client, self.then, self.uri = MlflowClient(uri), then, uri
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        exp_id = experiment.experiment_id if experiment else self.client.create_experiment(EXPERIMENT)
        saved = run / RUN_ID
        if saved.is_file():
            self.run_id = saved.read_text(encoding="utf-8").strip()
        else:
            self.run_id = self.client.create_run(exp_id, run_name=run.path.name).info.run_id
            saved.write_text(self.run_id + "\n", encoding="utf-8")
            for key, value in params.items():
                self.client.log_param(self.run_id, key, value)

    @staticmethod
    def check() -> None:
        """Raise a clear error when MLflow is not installed."""
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise ConfigError(
                "trainer.mlflow is on but MLflow is missing; pip install 'polymodal[mlflow]' "
                "(or set trainer.mlflow: false)"
            ) from None

    def __call__(self, event: str, **info: Any) -> None:
        if event == "epoch_end":
            row = info["metrics"]
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("epoch", "step"):
                    self.client.log_metric(self.run_id, key, float(value), step=int(row["epoch"]))
        elif event == "fit_start":
            self.client.set_tag(self.run_id, "device", info["device"])
            self.client.set_tag(self.run_id, "parameters", str(info["parameters"]))
        self.then(event, **info)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
