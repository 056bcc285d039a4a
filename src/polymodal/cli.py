"""The ``polymodal`` command: a thin shell over :mod:`polymodal.api` that renders progress and tables."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from polymodal import api
from polymodal.errors import PolymodalError
from polymodal.train import distributed

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Multimodal deep learning from validated YAML recipes.",
)
datasets_app = typer.Typer(no_args_is_help=True, help="Built-in real datasets.")
app.add_typer(datasets_app, name="datasets")
out = Console()
err = Console(stderr=True)


class ProgressView:
    """Turns trainer events into one rich progress bar per epoch."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=out,
        )
        self.task: Any = None
        self.model = ""

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: str, **info: Any) -> None:
        if event == "model_start":
            self.model = f"[bold]{info['name']}[/] "
        elif event == "epoch_start":
            desc = f"{self.model}epoch {info['epoch'] + 1}/{info['epochs']}"
            self.task = self.progress.add_task(desc, total=info["batches"], completed=info["done"], info="")
        elif event == "batch" and self.task is not None:
            self.progress.update(self.task, advance=1, info=f"loss {info['loss']:.3f}")
        elif event == "epoch_end" and self.task is not None and "info" in info:  # runs that describe themselves
            self.progress.update(self.task, info=info["info"])
        elif event == "epoch_end" and self.task is not None:
            m = info["metrics"]
            mark = " *" if info["improved"] else ""
            acc = m.get("val_accuracy")
            val = f"val acc {acc:.3f}" if acc is not None else f"val loss {m['val_loss']:.4f}"
            self.progress.update(self.task, info=f"train loss {m['train_loss']:.3f}  {val}{mark}")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


TRAIN_HELP = """Train a recipe (YAML path or built-in name). With no recipe: the embedded AV-Digits demo.

[b]Examples[/b]

  polymodal train                                  [dim]# AV-Digits: image-only, audio-only and fused[/]
  polymodal train recipes/avdigits.yaml --run-dir runs/av
  polymodal train recipes/avdigits.yaml --set trainer.epochs=3 --set fusion.name=late
  polymodal train --resume --run-dir runs/av       [dim]# continue a killed run[/]
  torchrun --nproc_per_node=2 -m polymodal train recipes/avdigits.yaml --run-dir runs/av2   [dim]# 2 processes (DDP)[/]
"""


@app.command(help=TRAIN_HELP)
def train(
    recipe: Annotated[str | None, typer.Argument(help="Recipe YAML path or built-in name.")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Output folder (default runs/NAME-TIMESTAMP).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --run-dir from its last checkpoint.")] = False,
    compare: Annotated[
        bool | None,
        typer.Option(help="Also train each input alone and print a table (default: on for the embedded demo)."),
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: trainer.epochs=3.")] = None,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="Log scalars to RUN/tb (same as --set trainer.tensorboard=true).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    setup_logging(verbose)
    if tensorboard:
        set_ = [*(set_ or []), "trainer.tensorboard=true"]
    main_rank = distributed.is_main_process()  # under torchrun only rank 0 logs, draws progress and prints
    if not main_rank:
        logging.getLogger().setLevel(logging.ERROR)
    demo = recipe is None and not resume
    if compare is None:
        compare = demo
    name = "avdigits" if recipe is None else recipe
    with ProgressView() if main_rank else contextlib.nullcontext() as view:
        if resume:
            res = api.train(None, run_dir, resume=True, callback=view)  # type: ignore[arg-type]
            rows = None
        elif compare:
            rows = api.compare_modalities(api.as_recipe(name, tuple(set_ or ())), run_dir, callback=view)
        else:
            res = api.train(api.as_recipe(name, tuple(set_ or ())), run_dir, callback=view)
            rows = None
    if not main_rank:
        distributed.finish()
    if rows is not None:
        table = Table(title=f"Test accuracy — {rows[-1]['data']}")
        for col in ("model", "test accuracy", "macro F1", "best epoch", "train s"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for r in rows:
            table.add_row(
                r["model"],
                f"{r['test_accuracy']:.4f}",
                f"{r['test_macro_f1']:.4f}",
                str(r["best_epoch"]),
                f"{r['train_seconds']:.1f}",
            )
        out.print(table)
        out.print(f"run directory: {rows[-1]['run_dir']}")
        skipped = rows[-1]["skipped_rows"]
    elif "generator_steps" in res.test:  # a GAN run
        if "conditional_accuracy" in res.test:
            out.print(
                f"a classifier with test accuracy {res.test['classifier_test_accuracy']:.4f} on real images agrees "
                f"with the requested class on {res.test['conditional_accuracy']:.4f} of "
                f"{res.test['generated_images']:,} generated images"
            )
        out.print(f"{res.test['generator_steps']} generator steps, {res.seconds:.1f} s, data: {res.data_source}")
        out.print(f"samples: {res.run_dir / 'samples.png'} (one grid per epoch in samples/)")
        out.print(f"run directory: {res.run_dir}")
        skipped = 0
    elif "objective" in res.test:  # a pretraining run: the objective's test metrics
        shown = {k: v for k, v in res.test.items() if isinstance(v, float)}
        out.print(f"{res.test['objective']} test " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items()))
        out.print(f"(best epoch {res.best_epoch}, {res.seconds:.1f} s, data: {res.data_source})")
        out.print(f"run directory: {res.run_dir}")
        skipped = res.skipped
    elif (res.run_dir / "tokenizer.json").is_file():  # a language model: validation loss per token
        out.print(
            f"val loss {res.test['loss']:.4f}  token accuracy {res.test['accuracy']:.4f}  "
            f"(best epoch {res.best_epoch}, {res.seconds:.1f} s, data: {res.data_source})"
        )
        out.print(f"run directory: {res.run_dir}")
        skipped = 0
    else:
        extra = "".join(
            f"  {label} {res.test[key]:.4f}"
            for key, label in (
                ("macro_f1", "macro F1"),
                ("micro_f1", "micro F1"),
                ("bleu4", "BLEU-4"),
                ("rouge_l", "ROUGE-L"),
                ("cider", "CIDEr"),
            )
            if key in res.test
        )
        kind = "exact match" if "bleu4" in res.test else "accuracy"
        out.print(
            f"test {kind} {res.test['accuracy']:.4f}{extra}  "
            f"(best epoch {res.best_epoch}, {res.seconds:.1f} s, data: {res.data_source})"
        )
        for ref, hyp in res.test.get("examples", []):
            out.print(f"  reference {ref!r}  generated {hyp!r}", markup=False, highlight=False)
        record = json.loads((res.run_dir / "metrics.json").read_text(encoding="utf-8"))
        without = record.get("test_without") or {}
        if "privacy" in record:
            dp = record["privacy"]
            out.print(
                f"differential privacy: epsilon {dp['epsilon']:.3f} at delta {dp['delta']:g} "
                f"(noise multiplier {dp['noise_multiplier']:.3f}, max grad norm {dp['max_grad_norm']:g}, "
                f"{dp['steps']} steps at sampling rate {dp['sample_rate']:.4f}, Poisson sampling, RDP accountant)"
            )
        if without:
            out.print("test accuracy with one input missing: " + "  ".join(f"-{k} {v:.4f}" for k, v in without.items()))
        out.print(f"run directory: {res.run_dir}")
        skipped = res.skipped
    if skipped:
        out.print(f"[yellow]skipped {skipped} unreadable rows[/] (data.on_error: skip); list in skipped.json")
    distributed.finish()


DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Evaluate on every row of this CSV/Parquet/JSONL manifest (the run's input and label columns, "
        "paths relative to it) instead of a split of the run's own data.",
    ),
]


def run_kind(run_dir: Path) -> str | None:
    """meta.json's ``kind`` (lm, gan, pretrain; None for a multimodal model or no meta.json)."""
    meta = run_dir / "meta.json"
    return json.loads(meta.read_text(encoding="utf-8")).get("kind") if meta.is_file() else None


EVALUATE_HELP = """Evaluate a finished run on a split of its data and write its HTML report (RUN/report.html).

[b]Example[/b]

  polymodal evaluate runs/av --split test
  polymodal evaluate runs/av --data new_rows.csv   [dim]# every row of another manifest; report-new_rows.html[/]
  polymodal evaluate runs/shakespeare_char       [dim]# a language model: validation loss, perplexity, samples[/]
"""


@app.command(help=EVALUATE_HELP)
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    report: Annotated[bool, typer.Option(help="Also write RUN/report.html.")] = True,
    benchmark_dir: Annotated[
        Path | None, typer.Option("--benchmark", help="A `polymodal benchmark` folder to include in the report.")
    ] = None,
    table: DataOption = None,
) -> None:
    kind = "lm" if (run_dir / "tokenizer.json").is_file() else run_kind(run_dir)
    if table is not None and kind is not None:
        raise PolymodalError(f"{run_dir} is a kind: {kind} run; --data is for multimodal models (drop --data)")
    if kind == "lm":  # a language model: its validation text is the evaluation
        path = api.report(run_dir) if report else None
        val = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("val", {})
        if as_json:
            out.print_json(json.dumps(val))
        else:
            out.print(
                f"val loss {val['loss']:.4f}  perplexity {math.exp(val['loss']):.2f}  "
                f"token accuracy {val['accuracy']:.4f}"
            )
        if path is not None:
            err.print(f"report: {path}")
        return
    if kind == "pretrain":  # the objective's metrics (recall@K, zero-shot, masked accuracy)
        from polymodal.pretrain.run import evaluate_pretrain

        m = evaluate_pretrain(run_dir, split)
        if as_json:
            out.print_json(json.dumps(m))
        else:
            shown = {k: v for k, v in m.items() if isinstance(v, float)}
            out.print(f"{split} {m['objective']}: " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items()))
        return
    if kind == "gan":  # a GAN: its quality figure was measured at the end of training; report the grids
        path = api.report(run_dir) if report else None
        m = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        if as_json:
            out.print_json(json.dumps(m))
        elif m.get("conditional_accuracy") is not None:
            out.print(
                f"conditional accuracy {m['conditional_accuracy']:.4f} over {m['generated_images']} generated images "
                f"(classifier on real test images: {m['classifier_test_accuracy']:.4f})"
            )
        else:
            out.print(f"{m.get('generator_steps')} generator steps; no quality figure for a text-conditioned GAN")
        if path is not None:
            err.print(f"report: {path}")
        return
    m = api.evaluate(run_dir, split, table)
    if m.get("skipped_rows"):
        err.print(f"[yellow]skipped {m['skipped_rows']} unreadable rows[/] (data.on_error: skip)")
    if report:
        err.print(f"report: {api.report(run_dir, split, benchmark_dir, table=table)}")
    split = m["split"]
    if as_json:
        out.print_json(json.dumps(m))
        return
    if "tasks" in m:
        for task, tm in m["tasks"].items():
            shown = {k: v for k, v in tm.items() if isinstance(v, (int, float))}
            out.print(f"{split} {task}: " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    else:
        out.print(
            f"{split}: accuracy {m['accuracy']:.4f}  macro P {m['macro_precision']:.4f}  "
            f"macro R {m['macro_recall']:.4f}  macro F1 {m['macro_f1']:.4f}  (n={m['n']})"
        )
    if m.get("without"):
        out.print("accuracy with one input missing: " + "  ".join(f"-{k} {v:.4f}" for k, v in m["without"].items()))
    if "confusion_matrix" not in m:
        return
    names = list(m["per_class"])
    cm = Table(title="Confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for n in names:
        cm.add_column(n, justify="right")
    for n, row in zip(names, m["confusion_matrix"], strict=True):
        cm.add_row(n, *[str(v) for v in row])
    out.print(cm)


REPORT_HELP = """Write a run's self-contained HTML evaluation report: learning curves, confusion matrix, ROC
curves, per-class scores, head-specific metrics or generated text, attention maps, per-modality contribution
(masking and gradient × input saliency) and the fusion benchmark if one exists.

[b]Examples[/b]

  polymodal report runs/av                                  [dim]# writes runs/av/report.html[/]
  polymodal report runs/av --benchmark benchmark/avdigits_hard --split val
  polymodal report runs/av --data new_rows.csv              [dim]# writes runs/av/report-new_rows.html[/]
"""


@app.command(help=REPORT_HELP)
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    benchmark_dir: Annotated[
        Path | None, typer.Option("--benchmark", help="A `polymodal benchmark` folder to include.")
    ] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Output file (default RUN/report.html).")] = None,
    table: DataOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    setup_logging(verbose)
    path = api.report(run_dir, split, benchmark_dir, out_file, table)
    out.print(f"report written: {path}")


PREDICT_HELP = """Predict one example with a finished run; pass each input as --NAME VALUE.

[b]Example[/b]

  polymodal predict runs/av --image digit.png --audio seven.wav
"""


@app.command(help=PREDICT_HELP, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def predict(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    values: dict[str, str] = {}
    args = list(ctx.args)
    while args:
        flag = args.pop(0)
        if not flag.startswith("--") or not args:
            raise PolymodalError(f"expected --INPUT VALUE pairs, got '{flag}'; e.g. --image x.png --audio y.wav")
        key, _, inline = flag[2:].partition("=")
        values[key] = inline or args.pop(0)
    res = api.load(run_dir).predict(**values)
    if as_json:
        out.print_json(json.dumps(res))
        return
    if res.get("missing"):
        out.print(f"[yellow]missing input(s): {', '.join(res['missing'])}[/] (predicted from the others)")
    if "label" not in res and "labels" not in res:  # multi-task: one block per task
        out.print_json(json.dumps({k: v for k, v in res.items() if k != "missing"}))
        return
    if "labels" in res:
        out.print(f"labels: [bold]{', '.join(res['labels']) or '(none)'}[/]")
    else:
        out.print(f"label: [bold]{res['label']}[/]")
    t = Table(show_header=True)
    t.add_column("class")
    t.add_column("probability", justify="right")
    for c, p in sorted(res["probabilities"].items(), key=lambda kv: -kv[1]):
        t.add_row(c, f"{p:.4f}")
    out.print(t)


BENCHMARK_HELP = """Train every fusion (and each input alone) over several seeds; write tables and a plot.

Writes benchmark.md, benchmark.csv, benchmark.json and robustness.png to --out. Each run trains in a fresh
process. Rerunning with the same --out skips finished runs.

[b]Examples[/b]

  polymodal benchmark avdigits_hard --fusions all --seeds 3 --out benchmarks/results/avdigits_hard
  polymodal benchmark basicmotions --fusions concat,late:combine=vote,tensor --seeds 2
"""


@app.command(help=BENCHMARK_HELP)
def benchmark(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML path or built-in name.")],
    fusions: Annotated[
        str, typer.Option(help="'all' or a comma list of fusion names, options as name:key=value.")
    ] = "all",
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per model (recipe seed, +1, ...).")] = 3,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default benchmark/NAME).")] = None,
    unimodal: Annotated[bool, typer.Option(help="Also train each input alone.")] = True,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: trainer.epochs=3.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from polymodal import benchmark as bench

    setup_logging(verbose)
    parsed = api.as_recipe(recipe, tuple(set_ or ()))
    where = out_dir or Path("benchmark") / parsed.name
    command = "polymodal " + " ".join(sys.argv[1:]) if sys.argv[1:] else f"polymodal benchmark {recipe}"

    def show(event: str, **info: Any) -> None:
        if event == "model_start":
            out.print(f"training {info['name']}")

    bench.benchmark(parsed, fusions, seeds, where, unimodal, command=command, callback=show)
    out.print((where / "benchmark.md").read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True)
    out.print(f"written: {where}/benchmark.md, benchmark.csv, benchmark.json, robustness.png")


FEDERATED_HELP = """Simulate federated averaging (FedAvg) of a recipe over non-IID clients; test the global model.

The training split is divided over --clients by a Dirichlet(--alpha) label split; each round a --fraction
of the clients trains --local-epochs from the global weights and the server averages them. Options
override the recipe's `federated:` section.

[b]Examples[/b]

  polymodal federated avdigits --clients 10 --alpha 0.1 --rounds 12 --run-dir runs/av-fed
  polymodal federated basicmotions --clients 4 --alpha 1.0 --local-epochs 2 --fraction 0.5
"""


@app.command(help=FEDERATED_HELP)
def federated(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML path or built-in name.")],
    run_dir: Annotated[Path | None, typer.Option(help="Output folder (default runs/NAME-TIMESTAMP).")] = None,
    clients: Annotated[int | None, typer.Option(help="Number of clients K.")] = None,
    alpha: Annotated[float | None, typer.Option(help="Dirichlet concentration (0.1 very skewed, 100 ~IID).")] = None,
    rounds: Annotated[int | None, typer.Option(help="Communication rounds.")] = None,
    local_epochs: Annotated[int | None, typer.Option(help="Epochs each chosen client trains per round.")] = None,
    fraction: Annotated[float | None, typer.Option(help="Fraction of clients chosen per round.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: trainer.lr=0.01.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from polymodal.federated.fedavg import train_federated

    setup_logging(verbose)
    given = {"clients": clients, "alpha": alpha, "rounds": rounds, "local_epochs": local_epochs, "fraction": fraction}
    overrides = [*(set_ or ()), *(f"federated.{k}={v}" for k, v in given.items() if v is not None)]
    parsed = api.as_recipe(recipe, tuple(overrides))

    def show(event: str, **info: Any) -> None:
        m = info["metrics"]
        mark = " *" if info["improved"] else ""
        loss = "-" if m["train_loss"] is None else f"{m['train_loss']:.3f}"
        out.print(
            f"round {info['round'] + 1}/{info['rounds']}  clients {m['clients']} ({m['examples']} examples)  "
            f"train loss {loss}  val acc {m['val_accuracy']:.4f}{mark}",
            highlight=False,
        )

    res = train_federated(parsed, run_dir, callback=show)
    sizes = json.loads((res.run_dir / "metrics.json").read_text(encoding="utf-8"))["federated"]["client_sizes"]
    out.print(
        f"test accuracy {res.test['accuracy']:.4f}  macro F1 {res.test['macro_f1']:.4f}  (best round "
        f"{res.best_epoch}, {res.seconds:.1f} s, client sizes {sizes}, data: {res.data_source})"
    )
    out.print(f"run directory: {res.run_dir}")


HYPEROPT_HELP = """Search hyperparameters with Optuna (TPE sampler, median pruning on the per-epoch validation metric).

Writes trials.csv, trials.md and best.yaml (the best trial's recipe, ready for `polymodal train`) to --out;
trial N trains in OUT/trials/trial-NNN. Without --space: lr, weight decay, batch size, head dropout, fusion.

[b]Examples[/b]

  polymodal hyperopt avdigits --trials 20 --timeout 3600 --out hyperopt/avdigits
  polymodal hyperopt basicmotions --trials 10 --space space.yaml --set trainer.epochs=20
  polymodal train hyperopt/avdigits/best.yaml
"""


@app.command(help=HYPEROPT_HELP)
def hyperopt(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML path or built-in name.")],
    trials: Annotated[int, typer.Option(min=1, help="Number of trials at most.")] = 20,
    timeout: Annotated[float | None, typer.Option(min=1, help="Start no new trial after this many seconds.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default hyperopt/NAME).")] = None,
    space: Annotated[Path | None, typer.Option(help="Search-space YAML (recipe key: range or choices).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: trainer.epochs=3.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from polymodal import hyperopt as hp

    setup_logging(verbose)
    parsed_space = hp.load_space(space) if space is not None else None
    where = out_dir or Path("hyperopt") / api.as_recipe(recipe, tuple(set_ or ())).name

    def show(event: str, **info: Any) -> None:
        r = info["row"]
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        params = "  ".join(f"{k}={hp.fmt(v)}" for k, v in r["params"].items())
        out.print(f"trial {r['trial']}: {r['state']} {value} after {r['epochs']} epochs  {params}", highlight=False)

    res = hp.search(recipe, trials, where, timeout, parsed_space, list(set_ or ()), callback=show)
    out.print((where / "trials.md").read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True)
    if res.best is None:
        out.print("[yellow]no trial completed[/]; widen the search space or train longer")
    else:
        out.print(f"best: trial {res.best['trial']}, validation {res.best['value']:.4f}; train it with:")
        out.print(f"  polymodal train {res.best_recipe}", highlight=False)
    out.print(f"written: {', '.join(str(p) for p in res.files)}", highlight=False)


GENERATE_HELP = """Generate text with a trained language-model run (KV cache on by default).

[b]Examples[/b]

  polymodal generate runs/shakespeare_char --prompt "ROMEO:" --max-tokens 300 --temperature 0.8 --top-k 40
  polymodal generate runs/shakespeare_char --prompt "KING" --temperature 0 --beams 4 --max-tokens 60
"""


@app.command(help=GENERATE_HELP)
def generate(
    run_dir: Annotated[Path, typer.Argument(help="A finished language-model run directory.")],
    prompt: Annotated[str, typer.Option(help="Text to continue.")] = "\n",
    max_tokens: Annotated[int, typer.Option(min=1, help="New tokens at most.")] = 200,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = 0.8,
    top_k: Annotated[int, typer.Option(min=0, help="Keep the k most likely tokens (0 = all).")] = 0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling mass (1 = off).")] = 1.0,
    repetition_penalty: Annotated[float, typer.Option(min=1.0, help="> 1 discourages repeats.")] = 1.0,
    beams: Annotated[int, typer.Option(min=0, help="Beam search with this many beams (0 = sample).")] = 0,
    stop: Annotated[list[str] | None, typer.Option(help="Stop after this text (repeatable).")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    cache: Annotated[bool, typer.Option(help="Use the KV cache.")] = True,
) -> None:
    import torch

    from polymodal.gpt.generate import beam_search, stream
    from polymodal.gpt.lm import load_lm

    model, tokenizer, _ = load_lm(run_dir)
    ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long)
    stops = [tokenizer.encode(s.replace("\\n", "\n").replace("\\t", "\t")) for s in stop or []]
    out.print(prompt, end="", markup=False, highlight=False)
    if beams:
        new = beam_search(model, ids, max_tokens, beams=beams, stop=stops or None, use_cache=cache)
        out.print(tokenizer.decode(new), markup=False, highlight=False)
        return
    gen = torch.Generator().manual_seed(seed)
    shown: list[int] = []
    for tok in stream(
        model,
        ids,
        max_tokens,
        temperature,
        top_k or None,
        top_p,
        repetition_penalty,
        stops or None,
        use_cache=cache,
        generator=gen,
    ):
        shown.append(tok)
        text = tokenizer.decode(shown)
        if "\ufffd" not in text:  # a BPE token may end inside a multi-byte character: wait for the rest
            out.print(text, end="", markup=False, highlight=False)
            out.file.flush()
            shown = []
    out.print()


EXPORT_HELP = """Export a finished run's model to ONNX (+ a sidecar JSON); optionally prune and/or int8-quantise it.

Prints and writes (next to the output) size, batch-1 latency and test accuracy of each step, and the largest
difference between the ONNX and PyTorch logits.

[b]Examples[/b]

  polymodal export runs/av --format onnx                       [dim]# runs/av/export/model.onnx + model.json[/]
  polymodal export runs/av --quantize int8 --out av-int8.onnx  [dim]# dynamic int8 (MatMul/Gemm)[/]
  polymodal export runs/av --prune 0.5                         [dim]# zero the 50 % smallest weights first[/]
"""


@app.command(help=EXPORT_HELP)
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    format_: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    out_file: Annotated[Path | None, typer.Option("--out", help="Output file (default RUN/export/).")] = None,
    quantize: Annotated[str | None, typer.Option(help="int8: dynamic int8 quantisation.")] = None,
    prune: Annotated[float | None, typer.Option(help="Zero this fraction (0-1) of weights, global L1.")] = None,
    evaluate_: Annotated[
        bool, typer.Option("--eval/--no-eval", help="Measure accuracy and parity on the run's test split.")
    ] = True,
    threads: Annotated[int, typer.Option(min=1, help="Threads while measuring latency.")] = 1,
    repeats: Annotated[int, typer.Option(min=1, help="Timed batch-1 calls per variant.")] = 100,
) -> None:
    rep = api.export(run_dir, format_, out_file, quantize, prune, evaluate=evaluate_, threads=threads, repeats=repeats)
    where = f"the {rep.split} split" if rep.split else "placeholder inputs (--no-eval)"
    t = Table(title=f"Export of {run_dir} — accuracy on {where}; latency batch 1, {threads} thread(s)")
    for col in ("variant", "size KB", "zlib KB", "latency ms", "accuracy", "Δ accuracy", "zero weights"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    first = rep.rows[0].get("accuracy")
    for r in rep.rows:
        acc = r.get("accuracy")
        t.add_row(
            r["variant"],
            f"{r['size_bytes'] / 1024:.1f}",
            f"{r['compressed_bytes'] / 1024:.1f}",
            f"{r['latency_ms']:.3f}",
            "–" if acc is None else f"{acc:.4f}",
            "–" if acc is None or first is None else f"{acc - first:+.4f}",
            "–" if r.get("sparsity") is None else f"{100 * r['sparsity']:.1f} %",
        )
    out.print(t)
    p = rep.parity
    colour = "green" if p["ok"] else "red"
    out.print(
        f"ONNX vs PyTorch: max |Δ logit| [{colour}]{p['max_abs_diff']:.2e}[/] over {p['examples']} examples "
        f"(tolerance {p['tolerance']:g})"
    )
    out.print(f"written: {rep.out}, {rep.sidecar.name}, {rep.report_path.name}")


SAMPLE_HELP = """Generate images with a trained GAN run: one row of --n samples for a label or a caption.

[b]Examples[/b]

  polymodal sample runs/gan_mnist --label 7 --n 16 --out seven.png
  polymodal sample runs/gan_clipart --text "red apple fruit" --n 8 --out apple.png
"""


@app.command(help=SAMPLE_HELP)
def sample(
    run_dir: Annotated[Path, typer.Argument(help="A GAN run directory.")],
    out_path: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path("samples.png"),
    label: Annotated[str | None, typer.Option(help="Class to generate (label-conditioned runs).")] = None,
    text: Annotated[str | None, typer.Option(help="Caption to generate from (text-conditioned runs).")] = None,
    n: Annotated[int, typer.Option(min=1, max=1024, help="Number of images.")] = 16,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
) -> None:
    path = api.sample_gan(run_dir, out_path, label, text, n, seed)
    out.print(f"wrote {n} images to {path}")


SERVE_HELP = """Serve a finished run over HTTP: REST API, OpenAPI docs at /docs and a demo page at /.

[b]Examples[/b]

  polymodal serve runs/av --port 8000                  [dim]# then open http://127.0.0.1:8000/[/]
  curl -F image=@digit.png -F audio=@seven.wav 'http://127.0.0.1:8000/predict?explain=1'
  polymodal serve runs/av --batch-ms 2                 [dim]# micro-batch requests arriving within 2 ms[/]
"""


@app.command(help=SERVE_HELP)
def serve(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (classifier or language model).")],
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    batch_ms: Annotated[float, typer.Option(min=0.0, help="Micro-batching window in ms (0 = off).")] = 0.0,
    max_batch: Annotated[int, typer.Option(min=1, help="Largest micro-batch and /predict/batch size.")] = 32,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body in MB.")] = 10.0,
    max_image_pixels: Annotated[int, typer.Option(min=1, help="Largest image (width × height).")] = 16_000_000,
    threads: Annotated[int, typer.Option(min=1, help="torch threads per worker (1 is fastest for small models).")] = 1,
    workers: Annotated[int, typer.Option(min=1, help="Server processes, each with its own copy of the model.")] = 1,
    engine: Annotated[
        str,
        typer.Option(
            help="torch, or onnx: predict with onnxruntime over the model exported at start-up "
            "(needs the export extra; explanations still use torch)."
        ),
    ] = "torch",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request.")] = False,
) -> None:
    from polymodal.serve.app import ENGINES, read_meta
    from polymodal.serve.limits import Limits
    from polymodal.serve.server import serve as run_server

    read_meta(run_dir)  # a bad run directory: one error line before anything is printed
    if engine not in ENGINES:
        raise PolymodalError(f"unknown --engine '{engine}'; use one of: {', '.join(ENGINES)}")
    limits = Limits(int(max_upload_mb * 2**20), max_image_pixels, max_batch)
    out.print(f"serving {run_dir} on http://{host}:{port}/  (API docs: /docs; Ctrl-C stops)")
    level = "info" if verbose else "warning"
    run_server(run_dir, host, port, workers, threads, limits, batch_ms, max_batch, level, engine)


@datasets_app.command(
    "list", help="List built-in datasets and where each is found.\n\n[b]Example[/b]\n\n  polymodal datasets list"
)
def datasets_list() -> None:
    import dataclasses

    import polymodal.components  # noqa: F401
    from polymodal.registry import DATASETS

    t = Table(title="Built-in datasets")
    for col in ("name", "what", "status"):
        t.add_column(col)
    for name in DATASETS.names():
        entry = DATASETS.get(name)
        options = entry.config()
        t.add_row(name, entry.summary, entry.factory(**dataclasses.asdict(options)).status())
    out.print(t)


def main() -> None:
    try:
        app(standalone_mode=False)
    except PolymodalError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; continue with: polymodal train --resume --run-dir RUN_DIR")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
