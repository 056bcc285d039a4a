"""A finished supervised run ready to predict from raw inputs: ``RunPredictor(run_dir).predict(image="x.png")``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from polymodal.config import Recipe
from polymodal.data.dataset import DataBundle, build_data, build_table_data, build_transforms, check_shapes
from polymodal.data.examples import ExampleDataset, collate, is_missing
from polymodal.errors import CheckpointError, DataError
from polymodal.kinds.base import read_recipe
from polymodal.model import MultimodalModel, build_model
from polymodal.runs import RunDir
from polymodal.storage import load_weights
from polymodal.training.distributed import resolve_device
from polymodal.training.evaluator import pinned, to_device

# What a supervised run's meta.json must hold for its model to be rebuilt.
META: dict[str, type | tuple[type, ...]] = {"classes": list, "in_shapes": dict}


class RunPredictor:
    """A trained run, ready to predict from raw inputs (file paths, arrays, values).

    Args:
        run_dir: A finished run folder (recipe.yaml, meta.json, weights.safetensors).
        recipe: The run's recipe, when the caller has already read it.
        device: Where the model runs: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; default the run's own
            ``trainer.device`` (``auto`` unless the recipe named one), resolved on this machine. Preprocessing
            stays on the CPU; each batch is moved once.
    """

    def __init__(self, run_dir: str | Path | RunDir, recipe: Recipe | None = None, device: str | None = None) -> None:
        self.rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.run_dir = self.rundir.path
        self.rundir.require("recipe.yaml", "meta.json", "transforms.json", "weights.safetensors")
        self.meta = self.rundir.fields(META)
        self.recipe: Recipe = (
            recipe if recipe is not None else read_recipe(self.rundir.recipe_file, kind=self.rundir.kind)
        )
        self.classes: list[str] = self.meta["classes"]
        self.target: dict[str, Any] = self.meta.get("target") or {"kind": "class", "classes": self.classes}
        self.transform_states = self.rundir.read_json("transforms.json")
        if not isinstance(self.transform_states, dict):
            raise CheckpointError(f"{self.rundir / 'transforms.json'} is not a JSON object; restore it or retrain")
        self.transforms = build_transforms(self.recipe.inputs)
        for name, t in self.transforms.items():
            t.load_state_dict(self.transform_states.get(name, {}))
        self.model: MultimodalModel = build_model(
            self.recipe, self.meta["in_shapes"], self.target, self.meta.get("contexts")
        )
        load_weights(self.model, self.rundir.weights)
        self.device = torch.device(resolve_device(device or self.recipe.trainer.device))
        self.model.to(self.device).eval()

    def data(self) -> DataBundle:
        """The run's own data, split and preprocessed as in training (its fitted transforms and classes)."""
        data = build_data(self.recipe, transform_states=self.transform_states, target_info=self.target)
        check_shapes(data.splits["train"].shapes, self.meta["in_shapes"], data.source, self.trained_on)
        return data

    def table_data(self, table: str | Path) -> tuple[ExampleDataset, list[dict[str, Any]]]:
        """Every row of another manifest in the run's preprocessing and label encoding, and the skipped rows;
        see :func:`polymodal.data.dataset.build_table_data`."""
        label = self.meta.get("label_column", "label")
        ds, skipped = build_table_data(self.recipe, table, self.transform_states, self.target, label)
        check_shapes(ds.shapes, self.meta["in_shapes"], str(table), self.trained_on)
        return ds, skipped

    @property
    def trained_on(self) -> str:
        return str(self.meta.get("data_source", "?"))

    @property
    def inputs(self) -> dict[str, str]:
        """``{input name: modality}`` that :meth:`predict` expects."""
        return {s.name: s.modality for s in self.recipe.inputs}

    def prepare(self, **values: Any) -> tuple[dict[str, torch.Tensor], dict[str, bool], list[str]]:
        """Check and preprocess one example's raw inputs (no model work); at least one must be given."""
        return self.prepare_values(values)

    def prepare_values(
        self, values: dict[str, Any], empty_ok: bool = False
    ) -> tuple[dict[str, torch.Tensor], dict[str, bool], list[str]]:
        """:meth:`prepare` for a mapping of raw inputs. ``empty_ok``: a row whose inputs are all missing is
        prepared too (every input a placeholder, as such a row of a table is evaluated in training) instead of
        refused; tables use it, a single request does not.

        Returns:
            ``(example, present, missing)``: one tensor per input (a zero placeholder of the trained shape and
            dtype for a missing input), ``{input: given?}``, and the missing input names.
        """
        unknown = sorted(set(values) - set(self.inputs))
        if unknown:
            raise DataError(f"unknown input {unknown}; this model takes {', '.join(self.inputs)}")
        missing = [k for k in self.inputs if is_missing(values.get(k))]
        if len(missing) == len(self.inputs) and not empty_ok:
            raise DataError(f"no input given; this model takes {', '.join(self.inputs)} (at least one)")
        example = {}
        for name in self.inputs:
            expected = tuple(self.meta["in_shapes"][name])
            if name in missing:
                dtype = getattr(torch, self.meta.get("in_dtypes", {}).get(name, "float32"))
                example[name] = torch.zeros(expected, dtype=dtype)
                continue
            x = self.transforms[name](values[name])
            if tuple(x.shape) != expected:
                raise DataError(
                    f"input '{name}' became a tensor of shape {tuple(x.shape)} but this model was trained on "
                    f"{expected}; give the same kind of {self.inputs[name]} input it was trained on "
                    f"(data: {self.meta.get('data_source', '?')})"
                )
            example[name] = x
        return example, {k: k not in missing for k in self.inputs}, missing

    @torch.inference_mode()
    def run(
        self,
        prepared: list[tuple[dict[str, torch.Tensor], dict[str, bool], list[str]]],
        forward: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor] | None], torch.Tensor] | None = None,
    ) -> list[dict[str, Any]]:
        """One batched forward over examples from :meth:`prepare`; one result per example, in order.

        ``forward(inputs, present) -> logits`` replaces the PyTorch model's, e.g. an onnxruntime session
        (:class:`polymodal.export.runtime.OnnxForward`)."""
        inputs, flags, _ = collate([(x, p, torch.tensor(0)) for x, p, _ in prepared])
        if forward is not None:
            logits = forward(inputs, flags)  # (B, K)
        else:
            if pinned(self.device):  # page-locked, so the copy to the GPU does not wait for the host
                inputs = {k: v.pin_memory() for k, v in inputs.items()}
            inputs, flags, _ = to_device((inputs, flags, torch.zeros(0)), self.device)
            logits = self.model(inputs, flags).logits.cpu()  # (B, K): one copy back per batch
        return [{**self.model.head.describe(lg), "missing": m} for lg, (_, _, m) in zip(logits, prepared, strict=True)]

    def predict(self, **values: Any) -> dict[str, Any]:
        """Predict one example: ``predict(image="x.png", audio="y.wav")``.

        An input given as None or "" (or left out) is missing: the model predicts from the others, as it
        was trained to with ``modality_dropout``. At least one input must be given.

        Returns:
            The head's description (classification: ``{"label", "probabilities"}`` with classes in the run's
            order) plus ``"missing": [input names]``.
        """
        return self.run([self.prepare(**values)])[0]

    def predict_batch(self, rows: list[dict[str, Any]], empty_ok: bool = False) -> list[dict[str, Any]]:
        """:meth:`predict` for several examples with one forward pass (``empty_ok``: see :meth:`prepare_values`)."""
        if not rows:
            return []
        return self.run([self.prepare_values(row, empty_ok) for row in rows])
