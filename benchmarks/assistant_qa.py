"""Exact match of a trained assistant run's answers on its test questions, by greedy decoding with the KV cache
(what chat answers), per question type, on held-out paraphrases and combinations, and with each input removed.

    python benchmarks/assistant_qa.py RUN [--threads 1] [--json out.json]

RUN is a finished ``kind: assistant`` run (e.g. ``polymodal train recipes/avdigits_qa.yaml --run-dir RUN``).
The test questions are rebuilt from the run's recipe (the builders are seeded, so they are the ones it was
scored on). "chance" is the best exact match possible knowing only the true labels of the inputs left in:
for a question that needs both, what remains when one is removed. The table is markdown, with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict

import numpy as np
import torch

from polymodal.kinds.assistant.data import build_qa_data
from polymodal.kinds.assistant.run import AssistantRun
from polymodal.kinds.assistant.scores import chance, flag


def decode_all(run: AssistantRun, data, removed: frozenset[str], batch: int = 256) -> np.ndarray:
    """Per test question: does greedy decoding (KV cache) give exactly the answer and then ``<end>``?"""
    groups: dict[int, list[int]] = defaultdict(list)
    items = []
    test = data.test.view(removed)
    for i in range(len(test)):
        x, present, y = test[i]
        start = int((y != -1).nonzero()[0])  # y[t] is the token after x[t]: the prompt is x[: start + 1]
        answer = y[y != -1].tolist()
        items.append((x, present, start + 1, answer))
        groups[start + 1].append(i)
    ok = np.zeros(len(items), dtype=bool)
    for length, rows in groups.items():
        for b in range(0, len(rows), batch):
            part = rows[b : b + batch]
            tokens = torch.stack([items[i][0]["tokens"][:length] for i in part])
            names = [n for n in items[part[0]][0] if n != "tokens"]
            media = {n: torch.stack([items[i][0][n] for i in part]) for n in names}
            present = {n: torch.tensor([bool(items[i][1][n]) for i in part]) for n in names}
            longest = max(len(items[i][3]) for i in part)
            steps = torch.stack(list(run.model.stream(tokens, media, present, longest)), 1)  # (B, L)
            for j, i in enumerate(part):
                want = items[i][3]
                ok[i] = steps[j, : len(want)].tolist() == want
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    run = AssistantRun(args.run)
    data = build_qa_data(run.recipe, run.fmt.base)
    rows = data.test_rows
    t0 = time.perf_counter()
    ok = decode_all(run, data, frozenset())
    seconds = time.perf_counter() - t0
    names = list(run.fmt.inputs)
    without = {n: decode_all(run, data, frozenset({n})) for n in names}
    seen = ~flag(rows, "unseen_paraphrase")
    plain = seen & ~flag(rows, "unseen_combination")
    qtypes = list(dict.fromkeys(rows["qtype"]))
    chances = {n: chance(rows, plain, [m for m in names if m != n]) for n in names}
    out: dict = {"run": args.run, "questions": int(plain.sum()), "decode_seconds": round(seconds, 1)}
    header = "| question | n | exact match | held-out paraphrase |" + "".join(
        f" without {n} | chance without {n} |" for n in names
    )
    print(header)
    print("|" + "---|" * (4 + 2 * len(names)))
    for q in qtypes:
        m = plain & (rows["qtype"] == q).to_numpy()
        u = ~seen & (rows["qtype"] == q).to_numpy()
        cells = [q, str(int(m.sum())), f"{ok[m].mean():.3f}", f"{ok[u].mean():.3f}" if u.any() else "-"]
        for n in names:
            cells += [f"{without[n][m].mean():.3f}", f"{chances[n][q]:.3f}"]
        print("| " + " | ".join(cells) + " |")
        out[q] = {"exact": float(ok[m].mean()), "unseen_paraphrase": float(ok[u].mean()) if u.any() else None}
        out[q].update({f"without_{n}": float(without[n][m].mean()) for n in names})
    out["all"] = float(ok[plain].mean())
    print(f"\nall question types: {out['all']:.4f} exact match over {int(plain.sum())} test questions")
    if "needs" in rows and (rows["needs"] == "both").any():
        both = plain & (rows["needs"] == "both").to_numpy()
        out["needs_both"] = float(ok[both].mean())
        print(f"questions that need both inputs: {out['needs_both']:.4f} ({int(both.sum())} questions)")
    combo = seen & flag(rows, "unseen_combination")
    if combo.any():
        out["unseen_combination"] = float(ok[combo].mean())
        print(f"held-out digit combinations (sum, larger): {out['unseen_combination']:.4f} ({int(combo.sum())})")
    if (~seen).any():
        out["unseen_paraphrase"] = float(ok[~seen].mean())
        print(f"held-out paraphrases, all types: {out['unseen_paraphrase']:.4f} ({int((~seen).sum())})")
    record = json.loads((run.rundir / "metrics.json").read_text())
    print(
        f"greedy decoding with the KV cache, {args.threads} thread(s): {seconds:.1f} s for {len(rows)} questions; "
        f"training took {record['train_seconds']:.0f} s; load average {load[0]:.2f} on {os.cpu_count()} cores"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
