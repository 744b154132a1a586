"""``loopwise eval``: offline evaluation of a JSONL dataset."""

from __future__ import annotations

import click


@click.command("eval")
def eval_command() -> None:
    """Evaluate a dataset file offline."""
    raise click.ClickException("not implemented yet")
