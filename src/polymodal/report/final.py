"""The run's final metrics as a table, for kinds of run that have no section of their own (e.g. pretraining:
the objective's recall@K, masked-token accuracy, reconstruction error)."""

from __future__ import annotations

from polymodal.report.header import TARGET_KINDS
from polymodal.report.page import Section, note, table
from polymodal.report.run import RunView

OWN_SECTIONS = ("lm", "gan")  # run kinds whose results have a section of their own


def section(view: RunView) -> Section | None:
    if view.kind in TARGET_KINDS or view.kind in OWN_SECTIONS:
        return None
    scores = view.scores
    rows = [
        [k.replace("_", " "), v] for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    if not rows:
        return Section("final", "Final metrics", note("The run has no final metrics yet (metrics.json is missing)."))
    what = view.recipe.get("objective")
    name = what.get("name") if isinstance(what, dict) else view.kind
    body = note(f"Measured when training ended, on the {view.split} split; the {name} objective's own metrics.")
    return Section("final", "Final metrics", body + table(["metric", view.split], rows))
