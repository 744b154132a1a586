"""Evaluations: score distributions and trends per evaluator, per model and per variant, and the worst traces."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from loopwise_dashboard import _charts, _state
from loopwise_dashboard._format import DASH, fmt_int, fmt_time
from loopwise_dashboard._models import EvaluatorRule, ScoreSummaryRow, WorstScore

ANY = "(any)"
SOURCES = [ANY, "evaluator", "human", "offline", "api"]
UNPLACED = "(not placed)"
WORST_LIMIT = 20
DOCS = "https://github.com/loopwise/loopwise/blob/main/docs/evaluators.md"

st.title("Evaluations")

r = _state.time_range()
start = _state.range_start(r)


def _num(value: float | None) -> str:
    return DASH if value is None else f"{value:.3g}"


def _no_scores(endpoint: str) -> None:
    st.info(
        "**No scores yet.** Scores come from evaluator rules, which the evaluation runners apply to live spans, "
        "and from human feedback and the API.",
        icon="🧪",
    )
    st.markdown(
        "`loopwise up` gives a new local project two rules: **hallucination** (LLM spans, half of them) and "
        "**output_drift** (embedding drift of LLM outputs, on the Drift page). Its runner scores spans as they "
        "arrive. To add a rule to another project:"
    )
    st.code(
        f"curl -s -X POST -H \"Authorization: Bearer $LOOPWISE_API_KEY\" -H 'Content-Type: application/json' \\\n"
        f'     {endpoint}/api/v1/evaluators -d \'{{"evaluator": "hallucination", '
        f'"filter": {{"span_types": ["llm"]}}, "sample_rate": 0.5}}\'',
        language="bash",
    )
    st.markdown(
        f"Which evaluators exist and what they measure: [docs/evaluators.md]({DOCS}). "
        "Feedback given on the Trace detail page is a score too (source `human`)."
    )


with st.container(border=True):
    c = st.columns([1, 3])
    source_pick = c[0].selectbox("Source", SOURCES, key="lw_ev_source", help="Who recorded the scores.")
    source = None if source_pick == ANY else source_pick

with _state.collector_errors():
    per_name: list[ScoreSummaryRow] = _state.fetch("scores_summary", from_=start, source=source)
    if not per_name:
        if not _state.fetch("scores_summary"):
            _no_scores(_state.settings().endpoint)
        else:
            st.info(
                f"No {source_pick if source else ''} scores recorded in the {r.label.lower()}. "
                "Pick a longer time range in the sidebar, or another source."
            )
        st.stop()

names = [row.name for row in per_name]
name: str = c[1].selectbox("Evaluator (score name)", names, key="lw_ev_name")
c[1].caption(f"{r.label}: scores recorded since {start:%Y-%m-%d %H:%M} UTC.")

with _state.collector_errors():
    series: list[ScoreSummaryRow] = _state.fetch(
        "scores_summary", from_=start, name=name, source=source, group_by=r.group_by
    )
    per_model: list[ScoreSummaryRow] = _state.fetch(
        "scores_summary", from_=start, name=name, source=source, group_by="model"
    )
    per_variant: list[ScoreSummaryRow] = _state.fetch(
        "scores_summary", from_=start, name=name, source=source, group_by="variant"
    )
    worst: list[WorstScore] = _state.fetch("worst_scores", name=name, from_=start, source=source, limit=WORST_LIMIT)
    rules: list[EvaluatorRule] = _state.fetch("evaluators")

row = next(x for x in per_name if x.name == name)
rule = next((x for x in rules if x.name == name), None)
if rule is not None and rule.last_error:
    st.warning(f"**The rule `{name}` reports a problem:** {rule.last_error}", icon="⚠️")

cols = st.columns(5)
cols[0].metric("Scores", fmt_int(row.count), help=f"{row.n:,} with a value")
cols[1].metric("Mean", _num(row.mean))
cols[2].metric("Median (p50)", _num(row.p50))
cols[3].metric("p10 to p90", f"{_num(row.p10)} to {_num(row.p90)}")
cols[4].metric("Errors", fmt_int(row.errors), help="Scores with label 'error' and no value: the evaluator failed.")
if rule is not None:
    st.caption(f"Rule `{rule.name}`: evaluator `{rule.evaluator}`, sample rate {rule.sample_rate:g}.")

left, right = st.columns(2)
hist = row.histogram
if hist and hist.counts and len(hist.edges) == len(hist.counts) + 1:
    bins = pd.DataFrame({"start": hist.edges[:-1], "end": hist.edges[1:], "count": hist.counts})
    left.altair_chart(_charts.score_histogram_chart(bins, name), width="stretch")
else:
    left.caption("No values to plot: every score of this name in the range is an error.")

trend = pd.DataFrame(
    [
        {"bucket": x.group, "mean": x.mean, "p10": x.p10, "p90": x.p90, "n": x.n, "errors": x.errors}
        for x in series
        if x.group
    ]
)
if not trend.empty:
    trend["bucket"] = pd.to_datetime(trend["bucket"], utc=True)
    bucket_title = "Time recorded (UTC, per hour)" if r.group_by == "hour" else "Time recorded (UTC, per day)"
    right.altair_chart(_charts.score_trend_chart(trend, name, bucket_title), width="stretch")


def _groups(rows: list[ScoreSummaryRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"group": x.group or UNPLACED, "mean": x.mean, "p10": x.p10, "p90": x.p90, "n": x.n,
             "count": x.count, "errors": x.errors}
            for x in rows
            if x.n > 0
        ]
    )  # fmt: skip


models = _groups(per_model)
variants = _groups(per_variant)
left, right = st.columns(2)
if not models.empty:
    left.altair_chart(_charts.score_groups_chart(models, name, "Model"), width="stretch")
if not variants.empty and set(variants["group"]) != {UNPLACED}:
    right.altair_chart(_charts.score_groups_chart(variants, name, "Variant"), width="stretch")
else:
    right.caption("No variants: traces tag their variant with `loopwise.variant` (A/B tests).")

st.subheader("All evaluators")
st.dataframe(
    pd.DataFrame(
        [
            {
                "name": x.name,
                "count": x.count,
                "n": x.n,
                "errors": x.errors,
                "mean": x.mean,
                "p10": x.p10,
                "p50": x.p50,
                "p90": x.p90,
                "min": x.min,
                "max": x.max,
            }
            for x in per_name
        ]
    ),
    hide_index=True,
    width="stretch",
    column_config={
        "name": "Score name",
        "count": st.column_config.NumberColumn("Scores", format="%d"),
        "n": st.column_config.NumberColumn("With a value", format="%d"),
        "errors": st.column_config.NumberColumn("Errors", format="%d"),
        **{
            k: st.column_config.NumberColumn(k.capitalize() if k in ("mean", "min", "max") else k, format="%.4g")
            for k in ("mean", "p10", "p50", "p90", "min", "max")
        },
    },
)

st.subheader(f"Worst {name} traces")
if not worst:
    st.caption("No trace has a valued score of this name in the range.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "open": f"trace?trace_id={w.trace_id}",
                    "value": w.value,
                    "mean": w.mean,
                    "scores": w.score_count,
                    "label": w.label,
                    "comment": w.comment,
                    "recorded": fmt_time(w.created_at),
                    "trace_id": w.trace_id,
                }
                for w in worst
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "open": st.column_config.LinkColumn("Open", display_text="open ↗", width="small"),
            "value": st.column_config.NumberColumn("Lowest value", format="%.4g"),
            "mean": st.column_config.NumberColumn("Mean", format="%.4g"),
            "scores": st.column_config.NumberColumn("Scores", format="%d"),
            "label": "Label",
            "comment": "Comment",
            "recorded": "Recorded (UTC)",
            "trace_id": "Trace id",
        },
    )
    labels = {w.trace_id: f"{w.value:.4g} · {w.trace_id}" for w in worst}
    pick, go = st.columns([4, 1], vertical_alignment="bottom")
    chosen = pick.selectbox("Trace", list(labels), format_func=labels.__getitem__, key="lw_ev_pick_trace")
    if go.button("Open trace detail", type="primary", key="lw_ev_open_trace"):
        st.switch_page(_state.TRACE_DETAIL_PAGE, query_params={"trace_id": chosen})
