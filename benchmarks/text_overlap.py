"""What a text input's test split shares with its training split: baselines for masked-token accuracy.

    python benchmarks/text_overlap.py runs/pretrain_clipart_mlm

For a finished run with a text input (its fitted tokenizer, its split), prints per text input:
the share of test tokens that are the most frequent training token (the accuracy of always predicting it,
a floor for masked-token accuracy) and the share of test rows whose whole token sequence also occurs in
training (text a model can recall rather than infer).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from polymodal import api
from polymodal.data.dataset import build_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run with a text input (any kind but lm)")
    run = parser.parse_args().run
    recipe = api.load_recipe(run / "recipe.yaml")
    states = json.loads((run / "transforms.json").read_text(encoding="utf-8"))  # the run's fitted vocabularies
    data = build_data(getattr(recipe, "data_recipe", lambda: recipe)(), transform_states=states)
    for spec in recipe.inputs:
        if spec.modality != "text":
            continue
        pad = data.transforms[spec.name].context()["pad_id"]
        rows = {
            split: [tuple(t for t in ds[i][0][spec.name].tolist() if t != pad) for i in range(len(ds))]
            for split, ds in data.splits.items()
        }
        counts = Counter(t for row in rows["train"] for t in row)
        top, _ = counts.most_common(1)[0]
        test_tokens = [t for row in rows["test"] for t in row]
        seen = set(rows["train"])
        print(
            f"{spec.name}: {len(test_tokens):,} test tokens; most frequent training token "
            f"{data.transforms[spec.name].token_strings(torch.tensor([top]))[0]!r} is "
            f"{test_tokens.count(top) / len(test_tokens):.3f} of them; "
            f"{sum(r in seen for r in rows['test']) / len(rows['test']):.3f} of {len(rows['test']):,} test rows "
            "occur verbatim in training"
        )


if __name__ == "__main__":
    main()
