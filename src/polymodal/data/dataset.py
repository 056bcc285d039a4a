"""From a recipe's data section to torch datasets of ``(inputs: dict[str, Tensor], label)`` examples."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from polymodal.config import InputSpec, Recipe
from polymodal.data.cache import FeatureCache, default_cache_dir
from polymodal.data.examples import ExampleDataset, is_missing
from polymodal.data.leak import warn_if_leaky
from polymodal.data.loading import loading_of
from polymodal.data.prepare import default_workers
from polymodal.data.screening import empty_split_hint, log_progress, screen, warn_missing_classes
from polymodal.data.shard_prepare import prefill_sharded
from polymodal.data.store import open_store
from polymodal.data.table import Table, assign_splits, column_values, label_subset, read_table
from polymodal.data.targets import encode_known, encode_targets, split_labels
from polymodal.errors import ConfigError, DataError
from polymodal.registry import DATASETS, HEADS, MODALITIES

log = logging.getLogger(__name__)
R = TypeVar("R")  # a recipe dataclass with a ``data`` section (Recipe, PretrainRecipe)


def build_transforms(inputs: list[InputSpec]) -> dict[str, Any]:
    """One transform per input, built from its modality's registered class and preprocessing config."""
    return {s.name: MODALITIES.build(s.modality, s.preprocessing) for s in inputs}


def load_table(recipe: Recipe) -> Table:
    """The recipe's examples: a built-in dataset or a manifest file (paths relative to the manifest)."""
    data = recipe.data
    if data.dataset is not None:
        entry = DATASETS.get(data.dataset)
        table = entry.factory(**dataclasses.asdict(data.options)).load()
        if data.label is not None:
            table.label = data.label
    else:
        path = Path(data.table)
        label = data.label or "label"
        table = Table(read_table(path), label=label, base_dir=path.parent, split=data.split_column)
        table.require([data.split_column] if data.split_column else [], f"table {path}")
    if data.group_column is not None:
        table.require([data.group_column], f"dataset '{data.dataset or data.table}' (data.group_column)")
        table.group = data.group_column
    if table.frame.empty:
        raise DataError(f"{table.source or data.table or data.dataset} has no rows; add examples (a few per class)")
    kind = HEADS.get(recipe.head.name).factory.TARGET
    needed = [c for s in recipe.inputs for c in (s.columns or [s.column])]
    # A multi-task head names its own target columns; an empty multi-label cell is an empty label set.
    table.require(needed + ([] if kind == "multitask" else [table.label]), f"dataset '{data.dataset or data.table}'")
    if kind == "class" and table.frame[table.label].isna().any():
        bad = int(np.flatnonzero(table.frame[table.label].isna().to_numpy())[0])
        raise DataError(f"label column '{table.label}' is empty in row {bad}; fill or drop unlabelled rows")
    return table


def first_examples(ds: ExampleDataset, split: str) -> dict[str, torch.Tensor]:
    """Per input, its tensor in the first row where it is present (gives placeholder shape and dtype)."""
    found = {}
    for k in ds.columns:
        for i in range(len(ds)):
            x = ds.preprocess(i)[k]
            if x is not None:
                found[k] = x
                break
        else:
            raise DataError(f"input '{k}' is missing in every {split} row; give it values or drop the input")
    return found


def check_shapes(found: dict[str, tuple], expected: dict[str, Any], where: str, trained_on: str) -> None:
    """Fail with one line when the data gives an input another shape than the model was trained on."""
    for name, shape in found.items():
        want = tuple(expected.get(name, shape))
        if tuple(shape) != want:
            raise DataError(
                f"input '{name}' from {where} has shape {tuple(shape)} but this run was trained on {want} "
                f"(data: {trained_on}); give the same kind of data, or edit the data section of the run's "
                "recipe.yaml to load what it was trained on"
            )


def input_cells(frame: Any, spec: InputSpec, rows: np.ndarray, base_dir: Path | None) -> list[Any]:
    """The cells of one input for ``rows``: values (file paths made absolute), or per-row
    ``{column: value}`` mappings when the input spans several columns. Only a modality whose cells name files
    (``Transform.files``) has its string cells resolved: text and tabular strings are values, not paths."""
    if not MODALITIES.get(spec.modality).factory.files:
        base_dir = None
    if spec.columns:
        values = {c: column_values(frame[c]) for c in spec.columns}
        return [{c: resolve_cell(v[i], base_dir) for c, v in values.items()} for i in rows]
    values = column_values(frame[spec.column])
    return [resolve_cell(values[i], base_dir) for i in rows]


def resolve_cell(value: Any, base_dir: Path | None) -> Any:
    if isinstance(value, str) and base_dir is not None and not Path(value).is_absolute():
        return str(base_dir / value)
    return value


@dataclass
class DataBundle:
    """Train/val/test datasets plus what a predictor needs to reproduce the preprocessing."""

    splits: dict[str, ExampleDataset]
    classes: list[str]  # class or label names (multi-task: see ``target``)
    target: dict[str, Any]  # target info (see polymodal.data.targets), saved in meta.json
    transforms: dict[str, Any]
    source: str
    skipped: list[dict[str, Any]]
    label: str = "label"  # the label column (multi-task: see ``target``)
    pinned: dict[str, Any] = dataclasses.field(default_factory=dict)  # see Table.pinned
    data_hash: str = ""  # Table.content_hash of the rows the splits came from


def pin_options(recipe: R, data: DataBundle) -> R:
    """``recipe`` with the dataset options its loader resolved (``Table.pinned``) written in, so the saved
    recipe reloads the data the run was trained on, not whatever ``auto`` finds on another machine."""
    if not data.pinned or recipe.data.options is None:  # type: ignore[attr-defined]
        return recipe
    section = recipe.data  # type: ignore[attr-defined]
    options = dataclasses.replace(section.options, **data.pinned)
    return dataclasses.replace(recipe, data=dataclasses.replace(section, options=options))  # type: ignore[type-var]


def check_leak(name: str, cells: list[Any], labels: np.ndarray, target: dict[str, Any], separator: str) -> None:
    """Warn when the training cells of text input ``name`` name their own labels (see polymodal.data.leak)."""
    present = [i for i, c in enumerate(cells) if not is_missing(c)]
    if target["kind"] == "class":
        own = [[str(labels[i])] for i in present]
    else:
        own = [split_labels(labels[i], separator) for i in present]
    warn_if_leaky(name, [str(cells[i]) for i in present], own, target["classes"])


def build_data(
    recipe: Recipe,
    transform_states: dict[str, Any] | None = None,
    target_info: dict[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> DataBundle:
    """Load the table, split it deterministically, fit the transforms on the training rows and wrap each
    split as an :class:`ExampleDataset`; rows are screened up front (``data.on_error``) when cached.

    Args:
        recipe: The validated recipe (a relative ``data.table`` was resolved when it was read).
        transform_states: Fitted transform states (a finished run's, or a pretrained encoder's) for the inputs
            they name; those inputs skip fitting, the others are fitted on the training rows.
        target_info: A finished run's target info, checked against the data's.
        progress: ``progress(files done, files, seconds)`` as the first pass over the files goes (default: log
            lines with files/s and the time left).
    """
    table = load_table(recipe)
    frame = table.frame
    split_seed = recipe.seed if recipe.data.split_seed is None else recipe.data.split_seed
    kind = HEADS.get(recipe.head.name).factory.TARGET
    split = assign_splits(
        table, recipe.data.val_fraction, recipe.data.test_fraction, split_seed, stratify=kind in ("class", "multitask")
    )
    transforms = build_transforms(recipe.inputs)
    rows = {name: np.flatnonzero(split == name) for name in ("train", "val", "test")}
    if recipe.data.label_fraction < 1.0:
        train_labels = frame[table.label].to_numpy()[rows["train"]]
        rows["train"] = rows["train"][label_subset(train_labels, recipe.data.label_fraction, recipe.seed)]
    for name, r in rows.items():
        if len(r) == 0:
            raise DataError(f"the {name} split of {len(frame)} rows is empty; {empty_split_hint(name, table)}")
    targets, target = encode_targets(
        frame,
        table.label,
        kind,
        rows["train"],
        recipe.data.label_separator,
        recipe.data.min_label_count,
        getattr(recipe.head.params, "tasks", None),
    )
    if target_info is not None and target_info != target:
        raise DataError("the data's labels differ from the ones this run was trained on; evaluate on the same data")
    if target["kind"] == "class":
        warn_missing_classes(targets, rows, target["classes"], table)
    columns = {
        name: {s.name: input_cells(frame, s, r, table.base_dir) for s in recipe.inputs} for name, r in rows.items()
    }
    # Class names are known before fitting: a text input may remove their words (polymodal.data.leak).
    classes = target["classes"] if target["kind"] in ("class", "multilabel") else None
    for s in recipe.inputs:
        if classes is not None:
            transforms[s.name].see_labels(classes)
        if transform_states is not None and s.name in transform_states:
            transforms[s.name].load_state_dict(transform_states[s.name])
        else:
            transforms[s.name].fit([c for c in columns["train"][s.name] if not is_missing(c)])
            # Only inputs that can remove the words are checked, so that the warning's advice applies.
            if classes is not None and getattr(transforms[s.name], "drop_label_words", True) is False:
                train_labels = frame[table.label].to_numpy()[rows["train"]]
                check_leak(s.name, columns["train"][s.name], train_labels, target, recipe.data.label_separator)
    disk_cache = FeatureCache(recipe.data.disk_cache_dir or default_cache_dir()) if recipe.data.disk_cache else None
    stored = recipe.data.store
    if stored and disk_cache is None:
        raise ConfigError(
            "data.store lives next to the feature cache: set data.disk_cache: true (or data.store: false)"
        )
    screened = recipe.data.cache or recipe.data.on_error == "skip" or stored
    cached = recipe.data.cache and not stored  # the store replaces the in-memory cache
    if screened:  # every row is read now: read the files in parallel
        every = {s.name: [c for split in columns.values() for c in split[s.name]] for s in recipe.inputs}
        workers = recipe.data.prepare_workers if recipe.data.prepare_workers is not None else default_workers()
        # Rows kept in memory anyway: file cells' features come back from the pool (this rank's share).
        prefill_sharded(every, transforms, disk_cache, workers, progress or log_progress, send_files=cached)
    splits, skipped = {}, []
    for name, r in rows.items():
        ds = ExampleDataset(columns[name], targets[r], transforms, cached, name == "train", disk_cache)
        ds.table_rows = r
        if name == "train":
            ds.loading = loading_of(recipe.data, transforms)
        if screened:
            ds, bad = screen(ds, name, recipe.data.on_error)
            skipped += bad
        if stored:
            assert disk_cache is not None
            ds.store = open_store(ds, disk_cache.root / "store")
        splits[name] = ds
    first = first_examples(splits["train"], "train")
    for ds in splits.values():
        ds.shapes = {k: tuple(x.shape) for k, x in first.items()}
        ds.dtypes = {k: x.dtype for k, x in first.items()}
    if disk_cache is not None:
        disk_cache.release()  # the first pass is over: what the datasets keep, they keep themselves
    source = table.source or recipe.data.dataset or str(recipe.data.table)
    log.info("data %s: %s", source, {k: len(v) for k, v in splits.items()})
    classes = target.get("classes") or [f"{t['column']}" for t in target.get("tasks", [])]
    return DataBundle(
        splits, classes, target, transforms, source, skipped, table.label, table.pinned, table.content_hash()
    )


def build_table_data(
    recipe: Recipe,
    path: str | Path,
    transform_states: dict[str, Any],
    target_info: dict[str, Any],
    label_column: str = "label",
) -> tuple[ExampleDataset, list[dict[str, Any]]]:
    """Every row of a manifest the run never saw, as one dataset in the run's encoding.

    The manifest needs the run's input columns and its label column(s); file paths in it are relative to the
    manifest; the label column is ``data.label``, else ``label_column`` (the one the run was trained on).
    Preprocessing uses the run's fitted transforms (no augmentation) and labels are encoded with
    the run's classes (see :func:`encode_known`). Unreadable rows fail or are skipped per ``data.on_error``.

    Returns:
        ``(dataset, skipped rows)``.
    """
    path = Path(path)
    label = recipe.data.label or label_column
    table = Table(read_table(path), label=label, base_dir=path.parent)
    table.require([c for s in recipe.inputs for c in (s.columns or [s.column])], f"table {path}")
    if len(table.frame) == 0:
        raise DataError(f"table {path} has no rows")
    targets = encode_known(table.frame, label, target_info, recipe.data.label_separator)
    rows = np.arange(len(table.frame))
    columns = {s.name: input_cells(table.frame, s, rows, table.base_dir) for s in recipe.inputs}
    transforms = build_transforms(recipe.inputs)
    for name, t in transforms.items():
        t.load_state_dict(transform_states.get(name, {}))
    ds = ExampleDataset(columns, targets, transforms, recipe.data.cache, augment=False)
    ds, skipped = screen(ds, path.name, recipe.data.on_error)
    if len(ds) == 0:
        raise DataError(f"every row of {path} was unreadable; see skipped rows or set data.on_error: raise")
    first = first_examples(ds, path.name)
    ds.shapes = {k: tuple(x.shape) for k, x in first.items()}
    ds.dtypes = {k: x.dtype for k, x in first.items()}
    return ds, skipped
