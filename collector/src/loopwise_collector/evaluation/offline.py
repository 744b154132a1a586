"""``loopwise eval``: offline evaluation of a JSONL dataset with any registered evaluators.

Everything that can be checked is checked before the first model runs, cheapest first: evaluator
names, ``--option`` syntax, output directories, the collector (with ``--push``), evaluator
construction (a bad checkpoint path), then one pass over the dataset (malformed lines, rows that
lack a field an evaluator needs). Evaluation then streams the dataset in batches, writing each
batch's rows as it goes; only the score values (for percentiles) and, for evaluators with a
corpus-level result, the items are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from loopwise_collector.errors import LoopwiseError
from loopwise_collector.evaluation._dataset import DatasetInfo, Row, has_field, iter_rows, read_reference_texts, scan
from loopwise_collector.evaluation._push import Pusher, PushTarget, experiment_id, resolve_target, score_payloads
from loopwise_collector.evaluation._summary import Tally, format_table, plain
from loopwise_collector.evaluators import (
    BaseEvaluator,
    EvalItem,
    Evaluator,
    EvaluatorError,
    Score,
    UnknownEvaluatorError,
    available_evaluators,
    get_evaluator,
)
from loopwise_collector.evaluators._types import finite

DRIFT = "embedding_drift"
# Errors an evaluator's loader may only hit on first use; when a whole batch fails with one, the
# configuration is wrong and every further row would fail the same way.
_CONFIG_FAILURES = ("EvaluatorConfigError: ", "MissingDependencyError: ")


def parse_names(value: str) -> list[str]:
    """Evaluator names from ``--evaluators``: comma-separated, blanks and repeats dropped, order kept.

    Example:
        >>> parse_names("bleu, rouge,,bleu")
        ['bleu', 'rouge']
    """
    names: list[str] = []
    for part in value.split(","):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names


def parse_options(values: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--option NAME.PARAM=VALUE`` values grouped by evaluator; VALUE is JSON when it parses, else text.

    Example:
        >>> parse_options(["rouge.rouge_type=rouge1", "bleu.lowercase=true", "bleu.smooth_value=0.1"],
        ...               ["bleu", "rouge"])
        {'rouge': {'rouge_type': 'rouge1'}, 'bleu': {'lowercase': True, 'smooth_value': 0.1}}
    """
    out: dict[str, dict[str, Any]] = {}
    for raw in values:
        key, sep, text = raw.partition("=")
        evaluator, dot, param = key.strip().partition(".")
        if not sep or not dot or not evaluator or not param:
            raise click.BadParameter(
                f"{raw!r} is not NAME.PARAM=VALUE, e.g. rouge.rouge_type=rouge1", param_hint="'--option'"
            )
        if evaluator not in names:
            raise click.BadParameter(
                f"{raw!r} is for evaluator {evaluator!r}, which is not in --evaluators ({', '.join(names)})",
                param_hint="'--option'",
            )
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        out.setdefault(evaluator, {})[param.strip()] = value
    return out


def _check_output(path: Path, flag: str, dataset: Path) -> None:
    parent = path.expanduser().absolute().parent
    if not parent.is_dir():
        raise click.BadParameter(f"directory {str(parent)!r} does not exist; create it first", param_hint=flag)
    if path.exists() and path.resolve() == dataset.resolve():
        raise click.BadParameter(f"{str(path)!r} is the dataset itself; write results elsewhere", param_hint=flag)


def _build(name: str, params: dict[str, Any]) -> Evaluator:
    try:
        return get_evaluator(name, **params)
    except EvaluatorError as exc:
        message = exc.message if exc.message.startswith(name) else f"{name}: {exc.message}"
        raise click.ClickException(f"cannot set up evaluator {message}") from exc
    except Exception as exc:  # a plugin's own validation: still a configuration problem, not a crash
        raise click.ClickException(f"cannot set up evaluator {name}: {type(exc).__name__}: {exc}") from exc


def _needs_items(ev: Evaluator) -> bool:
    """Whether ``aggregate`` may compute something, so the run must keep items and scores for it."""
    impl = getattr(type(ev), "aggregate", None)
    return impl is not None and impl is not BaseEvaluator.aggregate


def _batches(path: Path, size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in iter_rows(path):
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _missing_message(info: DatasetInfo) -> str:
    lines = [f"{info.path}: some rows lack a field an evaluator needs:"]
    for m in info.missing:
        where = ", ".join(map(str, m.lines)) + (", ..." if m.count > len(m.lines) else "")
        lines.append(f"  {m.evaluator} needs {m.field!r}: missing on {m.count} row(s) (line {where})")
    lines.append("Add the field, drop those evaluators, or pass --allow-missing to record error scores for those rows.")
    return "\n".join(lines)


def _score_json(score: Score) -> dict[str, Any]:
    return {
        "value": finite(score.value),
        "label": score.label,
        "explanation": score.explanation,
        "metadata": plain(dict(score.metadata)),
        "error": score.is_error,
    }


class _Run:
    """One evaluation pass: evaluators, their tallies, and what aggregates need."""

    def __init__(self, evaluators: dict[str, Evaluator], *, aggregates: bool) -> None:
        self.evaluators = evaluators
        self.requires = {n: frozenset(getattr(ev, "requires", frozenset())) for n, ev in evaluators.items()}
        self.versions = {n: str(getattr(ev, "version", "")) for n, ev in evaluators.items()}
        self.tallies = {n: Tally(n, self.versions[n]) for n in evaluators}
        self.keep = {n for n, ev in evaluators.items() if aggregates and _needs_items(ev)}
        # Per evaluator, only the rows it actually scored: a row without its field must not reach a
        # corpus statistic as an empty text. The items themselves are shared between evaluators.
        self.items: dict[str, list[EvalItem]] = {n: [] for n in self.keep}
        self.scores: dict[str, list[Score]] = {n: [] for n in self.keep}
        self.warned: set[str] = set()

    def batch(self, rows: list[Row]) -> dict[str, list[Score]]:
        items = [row.item() for row in rows]
        results = {name: self._one(name, ev, rows, items) for name, ev in self.evaluators.items()}
        for name, scores in results.items():
            self.tallies[name].add(scores)
        return results

    def _one(self, name: str, ev: Evaluator, rows: list[Row], items: list[EvalItem]) -> list[Score]:
        need = sorted(self.requires[name])
        out: list[Score | None] = [None] * len(rows)
        ready = []
        for i, row in enumerate(rows):
            lacking = [f for f in need if not has_field(row.data, f)]
            if lacking:
                out[i] = Score.error(name, f"missing field(s) {', '.join(map(repr, lacking))} needed by {name}")
            else:
                ready.append(i)
        if ready:
            batch = [items[i] for i in ready]
            scores = self._evaluate(name, ev, batch)
            for i, score in zip(ready, scores, strict=True):
                out[i] = score
            if name in self.keep:
                self.items[name].extend(batch)
                self.scores[name].extend(scores)
        return [s if s is not None else Score.error(name, "not evaluated") for s in out]

    def _evaluate(self, name: str, ev: Evaluator, items: list[EvalItem]) -> list[Score]:
        try:
            scores = list(ev.evaluate(items))
        except EvaluatorError as exc:  # a missing library or model found on first use: every row would fail
            raise click.ClickException(f"evaluator {name} failed: {exc.message}") from exc
        except Exception as exc:  # the protocol says evaluate never raises; a plugin that does loses its batch only
            self._warn(name, f"warning: {name} raised {type(exc).__name__}: {exc}; its batch gets error scores")
            return [Score.error(name, exc) for _ in items]
        if len(scores) != len(items):
            self._warn(name, f"warning: {name} returned {len(scores)} scores for {len(items)} items; batch is errors")
            return [Score.error(name, f"{name} returned the wrong number of scores") for _ in items]
        reasons = {s.explanation for s in scores if s.is_error}
        if len(reasons) == 1 and all(s.is_error for s in scores):
            reason = reasons.pop()
            if reason.startswith(_CONFIG_FAILURES):
                raise click.ClickException(f"evaluator {name} cannot run: {reason.split(': ', 1)[1]}")
        return scores

    def _warn(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            click.echo(message, err=True)

    def summary(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, ev in self.evaluators.items():
            stats = self.tallies[name].stats()
            aggregate: dict[str, Any] = {}
            if name in self.keep:
                try:
                    aggregate = dict(ev.aggregate(self.items[name], self.scores[name])) if self.items[name] else {}
                except Exception as exc:  # the per-row results stand; say what is missing
                    click.echo(f"warning: {name}: aggregate failed ({type(exc).__name__}: {exc})", err=True)
                    aggregate = {"error": f"{type(exc).__name__}: {exc}"}
            out[name] = {**stats, "aggregate": plain(aggregate)}
        return out


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@click.command("eval")
@click.option(
    "--dataset",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL file: one object per line with input, output, reference, context.",
)
@click.option("--evaluators", required=True, metavar="NAMES", help="Comma-separated, e.g. bleu,rouge.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results JSONL: each input row plus its scores.",
)
@click.option(
    "--summary",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write per-evaluator statistics and aggregates (corpus BLEU, drift) here as JSON.",
)
@click.option(
    "--reference",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSONL reference window for embedding_drift (texts from its field, default output).",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="NAME.PARAM=VALUE",
    help="Evaluator parameter; VALUE is JSON if it parses, else text. Repeatable.",
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=64, show_default=True, help="Rows per batch.")
@click.option(
    "--allow-missing", is_flag=True, help="Score rows that lack a required field as errors instead of stopping."
)
@click.option(
    "--no-aggregate",
    is_flag=True,
    help="Skip corpus-level results (corpus BLEU, ROUGE means, drift): nothing per row is kept in memory.",
)
@click.option("--push", is_flag=True, help="Send the run to the collector as an experiment.")
@click.option("--name", default=None, help="Experiment name (needed with --push).")
@click.option("--dataset-name", default=None, help="Dataset name for --push [default: the file name without .jsonl].")
@click.option(
    "--dataset-version", default=None, help="Dataset version for --push [default: 12 hex of the file's sha256]."
)
@click.option(
    "--endpoint",
    envvar="LOOPWISE_ENDPOINT",
    default=None,
    help="Collector URL for --push [LOOPWISE_ENDPOINT, default http://<LOOPWISE_HOST>:<LOOPWISE_PORT>].",
)
@click.option(
    "--api-key",
    envvar="LOOPWISE_API_KEY",
    default=None,
    help="Project key for --push [LOOPWISE_API_KEY, default: the one `loopwise up` keeps].",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where `loopwise up` keeps credentials.json [LOOPWISE_DATA_DIR].",
)
@click.pass_context
def eval_command(ctx: click.Context, /, **params: Any) -> None:
    """Evaluate a JSONL dataset offline and write per-row scores and a summary.

    Each output row is the input row plus "scores": {evaluator: {value, label, explanation,
    metadata, error}}. A table of n, errors, mean, p50 and p95 per evaluator is printed at the end.

    \b
    Example:
      loopwise eval --dataset qa.jsonl --evaluators bleu,rouge --out results.jsonl --summary summary.json
      loopwise eval --dataset qa.jsonl --evaluators bleu --out results.jsonl --push --name baseline
    """
    from_env = ctx.get_parameter_source("api_key") is click.core.ParameterSource.ENVIRONMENT
    try:
        _run(_Args(**params, key_from_env=from_env))
    except LoopwiseError as exc:
        raise click.ClickException(exc.message) from exc
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or 'I/O'}: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class _Args:
    """The command line, as parsed by click."""

    dataset: Path
    evaluators: str
    out: Path
    summary: Path | None
    reference: Path | None
    options: tuple[str, ...]
    batch_size: int
    allow_missing: bool
    no_aggregate: bool
    push: bool
    name: str | None
    dataset_name: str | None
    dataset_version: str | None
    endpoint: str | None
    api_key: str | None
    data_dir: Path | None
    key_from_env: bool


def _run(args: _Args) -> None:
    names = parse_names(args.evaluators)
    if not names:
        raise click.BadParameter("name at least one evaluator, e.g. bleu,rouge", param_hint="'--evaluators'")
    known = available_evaluators()
    for evaluator in names:
        if evaluator not in known:
            raise click.BadParameter(str(UnknownEvaluatorError(evaluator, known)), param_hint="'--evaluators'")
    params = parse_options(args.options, names)
    _check_output(args.out, "'--out'", args.dataset)
    if args.summary is not None:
        _check_output(args.summary, "'--summary'", args.dataset)
        if args.summary.absolute() == args.out.absolute():
            raise click.BadParameter("--summary must be a different file from --out", param_hint="'--summary'")

    target: PushTarget | None = None
    if args.push:
        if not args.name:
            raise click.UsageError("--push needs --name: the experiment's name, e.g. --name baseline")
        target = resolve_target(args.endpoint, args.api_key, args.data_dir, key_from_env=args.key_from_env)
        with contextlib.closing(Pusher(target)) as probe:
            probe.check()

    _add_drift_reference(params, names, args.reference)
    evaluators = {evaluator: _build(evaluator, params.get(evaluator, {})) for evaluator in names}
    run = _Run(evaluators, aggregates=not args.no_aggregate)
    info = scan(args.dataset, run.requires)
    if info.rows == 0:
        raise click.ClickException(f"{args.dataset} has no rows: expected one JSON object per line")
    if info.missing:
        if not args.allow_missing:
            raise click.ClickException(_missing_message(info))
        click.echo("warning: " + _missing_message(info).splitlines()[0], err=True)
        for m in info.missing:
            click.echo(f"  {m.evaluator}: {m.count} row(s) without {m.field!r} get error scores", err=True)

    _evaluate_to(args.out, args.dataset, args.batch_size, run, info.rows)
    per_evaluator = run.summary()
    ds_name, ds_version = args.dataset_name or info.name, args.dataset_version or info.version
    summary = {
        "dataset": {"path": str(args.dataset), "name": ds_name, "version": ds_version, "sha256": info.sha256,
                    "rows": info.rows},
        "evaluators": per_evaluator,
    }  # fmt: skip
    if args.summary is not None:
        _write_json_atomic(args.summary, summary)
    for line in format_table(per_evaluator):
        click.echo(line)
    written = f"Wrote {info.rows} rows to {args.out}" + (f" and the summary to {args.summary}" if args.summary else "")
    click.echo(f"{written}.")
    errors = sum(s["errors"] for s in per_evaluator.values())
    if errors:
        click.echo(f'warning: {errors} error score(s); their reasons are in {args.out} ("error": true)', err=True)
        for evaluator, tally in run.tallies.items():
            if tally.errors:
                click.echo(f"  {evaluator}: {tally.errors} error(s), first: {tally.first_error[:300]}", err=True)

    if target is not None:
        assert args.name is not None  # checked with --push above
        _push(target, args.out, summary, args.name, run.versions, info.rows * len(names))


def _add_drift_reference(params: dict[str, dict[str, Any]], names: list[str], reference: Path | None) -> None:
    """Give embedding_drift its reference window's texts from ``--reference``."""
    if DRIFT in names and "reference" not in params.get(DRIFT, {}):
        drift_field = params.get(DRIFT, {}).get("field", "output")
        if reference is None:
            raise click.UsageError(
                f"{DRIFT} compares the dataset with a reference window: pass --reference ref.jsonl, rows whose "
                f"{drift_field!r} texts are the baseline (the field is set with --option {DRIFT}.field=input|output)"
            )
        if not isinstance(drift_field, str):
            raise click.BadParameter(f"{DRIFT}.field must be 'input' or 'output'", param_hint="'--option'")
        params.setdefault(DRIFT, {})["reference"] = read_reference_texts(reference, drift_field)
    elif reference is not None and DRIFT not in names:
        raise click.UsageError(f"--reference is the baseline for {DRIFT}, which is not in --evaluators")


def _evaluate_to(out: Path, dataset: Path, batch_size: int, run: _Run, rows: int) -> None:
    """Stream the dataset through the evaluators into ``out``, which appears only once complete."""
    names = list(run.evaluators)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as fh, click.progressbar(
            length=rows, label="Evaluating", file=sys.stderr
        ) as bar:  # fmt: skip
            for batch in _batches(dataset, batch_size):
                results = run.batch(batch)
                for i, row in enumerate(batch):
                    scores = {evaluator: _score_json(results[evaluator][i]) for evaluator in names}
                    fh.write(json.dumps({**row.data, "scores": scores}, ensure_ascii=False) + "\n")
                bar.update(len(batch))
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _push(
    target: PushTarget, out: Path, summary: dict[str, Any], name: str, versions: dict[str, str], total: int
) -> None:
    dataset = summary["dataset"]
    exp_id = experiment_id(name, dataset["name"], dataset["version"], versions)
    with contextlib.closing(Pusher(target)) as pusher:
        pusher.create_experiment(
            {"id": exp_id, "name": name, "dataset_name": dataset["name"], "dataset_version": dataset["version"],
             "evaluators": versions, "summary": summary, "row_count": dataset["rows"]}
        )  # fmt: skip
        with click.progressbar(length=total, label="Pushing   ", file=sys.stderr) as bar:
            accepted = pusher.push_scores(exp_id, score_payloads(out, versions), bar.update)
    click.echo(f"Pushed experiment {name!r} ({exp_id}): {accepted} scores to {target.endpoint}.")
    click.echo(f'  curl -H "Authorization: Bearer {target.key_shown}" "{target.endpoint}/api/v1/experiments/{exp_id}"')
