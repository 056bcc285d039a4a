"""An assistant run's data: a QA table (one row per question about one example's inputs) turned into token
sequences with the inputs' tensors.

Training draws new conversations each epoch (``set_epoch``): each example's questions, shuffled, grouped into
conversations of 1..``data.max_turns`` turns; the inputs are attached in the first turn, in a random order, and
in 15 % of conversations only one input is attached, with only the questions it answers. Validation and test
ask one question per row with every input attached, in the recipe's order.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from polymodal.data.dataset import build_transforms
from polymodal.errors import DataError
from polymodal.gpt.tokenizer import build_tokenizer
from polymodal.kinds.assistant.recipe import AssistantRecipe
from polymodal.kinds.assistant.tokens import ChatFormat, Turn
from polymodal.registry import DATASETS
from polymodal.runs import text_hash

REQUIRED = ("question", "answer", "qtype", "example", "split")
SINGLE_INPUT = 0.15  # share of training conversations with one input attached


class Media:
    """Each example's input tensors, computed once (a file shared by several examples is read once)."""

    def __init__(self, frame: pd.DataFrame, columns: dict[str, str], transforms: dict[str, Any]) -> None:
        self.transforms = transforms
        first = frame.drop_duplicates("example")
        self.tensors: dict[int, dict[str, torch.Tensor]] = {}
        memo: dict[tuple[str, str], torch.Tensor] = {}
        for row in first.itertuples(index=False):
            item = {}
            for name, column in columns.items():
                cell = getattr(row, column)
                key = (name, cell) if isinstance(cell, str) else None
                if key is not None and key in memo:
                    item[name] = memo[key]
                    continue
                item[name] = transforms[name](cell)
                if key is not None:
                    memo[key] = item[name]
            self.tensors[int(row.example)] = item
        some = next(iter(self.tensors.values()))
        self.shapes = {k: tuple(v.shape) for k, v in some.items()}


class QADataset(Dataset):
    """Items ``(example id, [(question, answer, attached inputs)...])`` as ``({"tokens": x, input: tensor},
    {input: present}, y)``; ``removed`` inputs are marked missing (their embeddings are zeroed)."""

    def __init__(self, items: list[tuple[int, list[Turn]]], media: Media, fmt: ChatFormat, block: int) -> None:
        self.items, self.media, self.fmt, self.block = items, media, fmt, block
        self.removed: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], dict[str, bool], torch.Tensor]:
        example, turns = self.items[i]
        x, y = self.fmt.example(turns, self.block)
        tensors = self.media.tensors[example]
        attached = {a for t in turns for a in t.attached}
        present = {k: k in attached and k not in self.removed for k in tensors}
        return {"tokens": x, **tensors}, present, y

    def view(self, removed: frozenset[str]) -> QADataset:
        out = copy.copy(self)
        out.removed = frozenset(removed)
        return out


class TrainConversations(QADataset):
    """Training rows regrouped into new multi-turn conversations every epoch (seeded by seed and epoch)."""

    def __init__(self, rows: pd.DataFrame, media: Media, fmt: ChatFormat, block: int, turns: int, seed: int) -> None:
        super().__init__([], media, fmt, block)
        self.rows, self.turns, self.seed = rows, turns, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch, 29])
        names = self.fmt.inputs
        items: list[tuple[int, list[Turn]]] = []
        for example, group in self.rows.groupby("example", sort=True):
            qa = list(zip(group["question"], group["answer"], group["needs"], strict=True))
            order = rng.permutation(len(qa))
            attach = [names[j] for j in rng.permutation(len(names))]
            if len(names) > 1 and rng.random() < SINGLE_INPUT:
                attach = attach[:1]
                order = [j for j in order if qa[j][2] == attach[0]]
            while len(order):
                n = int(rng.integers(1, self.turns + 1))
                chunk, order = order[:n], order[n:]
                turns = [Turn(qa[j][0], (), qa[j][1]) for j in chunk]
                turns[0].attached = tuple(attach)
                items.append((int(example), turns))
        self.items = items


@dataclass
class QAData:
    train: TrainConversations
    val: QADataset
    test: QADataset
    test_rows: pd.DataFrame
    fmt: ChatFormat
    transforms: dict[str, Any]
    source: str
    data_hash: str


def qa_table(recipe: AssistantRecipe) -> Any:
    entry = DATASETS.get(recipe.data.dataset)
    table = entry.factory(**dataclasses.asdict(recipe.data.options)).load()
    columns = [s.column for s in recipe.inputs]
    table.require([*REQUIRED, *columns], f"dataset '{recipe.data.dataset}'")
    frame = table.frame
    if "needs" not in frame:
        frame["needs"] = "all"
    for split in ("train", "val", "test"):
        if not (frame["split"] == split).any():
            raise DataError(f"dataset '{recipe.data.dataset}' has no {split} rows; it needs train, val and test")
    return table


def build_qa_data(
    recipe: AssistantRecipe, base_tokenizer: Any = None, transform_states: dict[str, Any] | None = None
) -> QAData:
    """The QA table of ``recipe.data.dataset`` as token sequences and input tensors, the tokenizer fitted on
    the training questions and answers unless ``base_tokenizer`` (a pretrained LM's) is given, and each input's
    transform fitted on the training examples unless ``transform_states`` has it."""
    table = qa_table(recipe)
    frame = table.frame
    train_rows = frame[frame["split"] == "train"]
    text = "\n".join(f"{q} {a}" for q, a in zip(train_rows["question"], train_rows["answer"], strict=True)) + "\n"
    if base_tokenizer is None:
        base_tokenizer = build_tokenizer(recipe.data.tokenizer, recipe.data.vocab_size).fit(text)
    fmt = ChatFormat(base_tokenizer, [s.name for s in recipe.inputs], recipe.model.tokens_per_input)
    transforms = build_transforms(recipe.inputs)
    columns = {s.name: s.column for s in recipe.inputs}
    firsts = train_rows.drop_duplicates("example")
    for s in recipe.inputs:
        if transform_states and s.name in transform_states:  # fitted by the run the encoder comes from
            transforms[s.name].load_state_dict(transform_states[s.name])
        else:
            transforms[s.name].fit(firsts[s.column].tolist())
    media = Media(frame, columns, transforms)
    block, names = recipe.model.block_size, tuple(fmt.inputs)

    def single(rows: pd.DataFrame) -> list[tuple[int, list[Turn]]]:
        qa = zip(rows["example"], rows["question"], rows["answer"], strict=True)
        return [(int(e), [Turn(q, names, a)]) for e, q, a in qa]

    val_rows = frame[frame["split"] == "val"]
    test_rows = frame[frame["split"] == "test"].reset_index(drop=True)
    train = TrainConversations(train_rows, media, fmt, block, recipe.data.max_turns, recipe.seed)
    digest = text_hash(pd.util.hash_pandas_object(frame[list(REQUIRED)], index=False).to_numpy().tobytes().hex())
    return QAData(
        train,
        QADataset(single(val_rows), media, fmt, block),
        QADataset(single(test_rows), media, fmt, block),
        test_rows,
        fmt,
        transforms,
        table.source,
        digest,
    )
