"""Altair charts with one colour scheme, units on every axis and readable number formats."""

from __future__ import annotations

from typing import Final

import altair as alt
import pandas as pd

# One colour per meaning, used on every page, so "errors" or "p99" always look the same.
ACCENT = "#4C78A8"
ERROR = "#E45756"
INPUT_TOKENS = "#4C78A8"
OUTPUT_TOKENS = "#F58518"
COST = "#54A24B"
PERCENTILES = {"p50": "#4C78A8", "p95": "#F58518", "p99": "#E45756"}
SPAN_TYPES = {
    "agent": "#B279A2",
    "llm": "#4C78A8",
    "retrieval": "#54A24B",
    "tool": "#F58518",
    "embedding": "#72B7B2",
    "span": "#9D9D9D",
}
MODEL_SCHEME: Final = "tableau10"

_HEIGHT = 220


def _from_tooltip() -> alt.Tooltip:
    return alt.Tooltip("bucket:T", title="From", format="%Y-%m-%d %H:%M")


def _time_x(bucket_title: str) -> alt.X:
    return alt.X("bucket:T", title=bucket_title, axis=alt.Axis(format="%b %d %H:%M", labelAngle=0))


def volume_chart(df: pd.DataFrame, bucket_title: str) -> alt.Chart:
    """Traces per time bucket, as bars (``df``: bucket, traces, spans)."""
    chart: alt.Chart = (
        alt.Chart(df, title="Volume")
        .mark_bar(color=ACCENT)
        .encode(
            x=_time_x(bucket_title),
            y=alt.Y("traces:Q", title="Traces (count)", axis=alt.Axis(format=",d")),
            tooltip=[
                _from_tooltip(),
                alt.Tooltip("traces:Q", format=","),
                alt.Tooltip("spans:Q", format=","),
            ],
        )
        .properties(height=_HEIGHT)
    )
    return chart


def error_rate_chart(df: pd.DataFrame, bucket_title: str) -> alt.Chart:
    """Share of spans with status error per bucket (``df``: bucket, error_rate, errors)."""
    chart: alt.Chart = (
        alt.Chart(df, title="Error rate")
        .mark_line(point=True, color=ERROR)
        .encode(
            x=_time_x(bucket_title),
            y=alt.Y("error_rate:Q", title="Spans with errors (%)", axis=alt.Axis(format=".1%")),
            tooltip=[
                _from_tooltip(),
                alt.Tooltip("error_rate:Q", title="Error rate", format=".2%"),
                alt.Tooltip("errors:Q", title="Error spans", format=","),
            ],
        )
        .properties(height=_HEIGHT)
    )
    return chart


def latency_chart(df: pd.DataFrame, bucket_title: str) -> alt.Chart:
    """p50, p95 and p99 span latency per bucket (``df``: bucket, p50, p95, p99 in ms)."""
    long = df.melt(id_vars=["bucket"], value_vars=list(PERCENTILES), var_name="percentile", value_name="ms")
    chart: alt.Chart = (
        alt.Chart(long, title="Span latency")
        .mark_line(point=True)
        .encode(
            x=_time_x(bucket_title),
            y=alt.Y("ms:Q", title="Latency (ms)", axis=alt.Axis(format=",.3~s")),
            color=alt.Color(
                "percentile:N",
                title="Percentile",
                scale=alt.Scale(domain=list(PERCENTILES), range=list(PERCENTILES.values())),
            ),
            tooltip=[
                _from_tooltip(),
                "percentile:N",
                alt.Tooltip("ms:Q", title="Latency (ms)", format=",.3~f"),
            ],
        )
        .properties(height=_HEIGHT)
    )
    return chart


def tokens_chart(df: pd.DataFrame, bucket_title: str) -> alt.Chart:
    """Input and output tokens per bucket, stacked (``df``: bucket, input, output)."""
    long = df.melt(id_vars=["bucket"], value_vars=["input", "output"], var_name="direction", value_name="tokens")
    chart: alt.Chart = (
        alt.Chart(long, title="Tokens")
        .mark_bar()
        .encode(
            x=_time_x(bucket_title),
            y=alt.Y("tokens:Q", title="Tokens (count)", axis=alt.Axis(format=",.3~s")),
            color=alt.Color(
                "direction:N",
                title="Tokens",
                scale=alt.Scale(domain=["input", "output"], range=[INPUT_TOKENS, OUTPUT_TOKENS]),
            ),
            tooltip=[
                _from_tooltip(),
                "direction:N",
                alt.Tooltip("tokens:Q", format=","),
            ],
        )
        .properties(height=_HEIGHT)
    )
    return chart


def cost_chart(df: pd.DataFrame, bucket_title: str) -> alt.Chart:
    """Priced cost per bucket (``df``: bucket, cost in USD)."""
    chart: alt.Chart = (
        alt.Chart(df, title="Cost")
        .mark_bar(color=COST)
        .encode(
            x=_time_x(bucket_title),
            y=alt.Y("cost:Q", title="Cost (USD)", axis=alt.Axis(format="$,.3~f")),
            tooltip=[
                _from_tooltip(),
                alt.Tooltip("cost:Q", title="Cost (USD)", format="$,.5f"),
            ],
        )
        .properties(height=_HEIGHT)
    )
    return chart


def per_model_chart(df: pd.DataFrame, field: str, title: str, axis_title: str, fmt: str) -> alt.Chart:
    """One horizontal bar per model (``df``: model plus ``field``)."""
    chart: alt.Chart = (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title="Model", sort="-x"),
            x=alt.X(f"{field}:Q", title=axis_title, axis=alt.Axis(format=fmt)),
            color=alt.Color("model:N", scale=alt.Scale(scheme=MODEL_SCHEME), legend=None),
            tooltip=["model:N", alt.Tooltip(f"{field}:Q", title=axis_title, format=fmt)],
        )
        .properties(height=max(120, 28 * len(df)))
    )
    return chart


def waterfall_chart(df: pd.DataFrame) -> alt.Chart:
    """The span waterfall (``df``: label, start_ms, end_ms, span_type, name, duration_ms, status), in start order."""
    types = sorted(set(df["span_type"]) | set(SPAN_TYPES), key=lambda t: (t not in SPAN_TYPES, t))
    palette = [SPAN_TYPES.get(t, "#BAB0AC") for t in types]
    base = alt.Chart(df, title="Span waterfall")
    bars = base.mark_bar(cornerRadius=2).encode(
        x=alt.X("start_ms:Q", title="Offset from trace start (ms)", axis=alt.Axis(format=",.3~f")),
        x2="end_ms:Q",
        y=alt.Y("label:N", title=None, sort=list(df["label"]), axis=alt.Axis(labelLimit=320)),
        color=alt.Color("span_type:N", title="Span type", scale=alt.Scale(domain=types, range=palette)),
        stroke=alt.condition(alt.datum.status == "error", alt.value(ERROR), alt.value(None)),
        strokeWidth=alt.value(2),
        tooltip=["name:N", "span_type:N", "status:N",
                 alt.Tooltip("start_ms:Q", title="Start (ms)", format=",.3f"),
                 alt.Tooltip("duration_ms:Q", title="Duration (ms)", format=",.3f")],
    )  # fmt: skip
    chart: alt.Chart = bars.properties(height=waterfall_height(len(df)) - 80)
    return chart


def waterfall_height(spans: int) -> int:
    """Pixels for a waterfall of ``spans`` rows: one row each plus room for the title and the axis.

    Streamlit sizes the chart's frame itself, so the page passes this along as well.

    Example:
        >>> waterfall_height(5)
        230
    """
    return 80 + max(5, spans) * 30


# -- Evaluations and Drift pages ------------------------------------------------------------------------------

SCORE = "#72B7B2"
WINDOWS = {"reference": "#4C78A8", "current": "#F58518"}


def score_histogram_chart(df: pd.DataFrame, name: str) -> alt.Chart:
    """One score name's value distribution (``df``: start, end, count per bin)."""
    chart: alt.Chart = (
        alt.Chart(df, title=f"Distribution of {name}")
        .mark_bar(color=SCORE)
        .encode(
            x=alt.X("start:Q", title=f"{name} (score value)", bin="binned", axis=alt.Axis(format=",.3~f")),
            x2="end:Q",
            y=alt.Y("count:Q", title="Scores (count)", axis=alt.Axis(format=",d")),
            tooltip=[
                alt.Tooltip("start:Q", title="From", format=",.4~f"),
                alt.Tooltip("end:Q", title="To", format=",.4~f"),
                alt.Tooltip("count:Q", title="Scores", format=","),
            ],
        )
        .properties(height=_HEIGHT)
    )
    return chart


def score_trend_chart(df: pd.DataFrame, name: str, bucket_title: str) -> alt.LayerChart:
    """Mean of a score per time bucket with its p10-p90 band (``df``: bucket, mean, p10, p90, n, errors)."""
    base = alt.Chart(df)
    x = _time_x(bucket_title)
    band = base.mark_area(color=SCORE, opacity=0.25).encode(
        x=x, y=alt.Y("p10:Q", title="Score (mean, p10-p90)"), y2="p90:Q"
    )
    line = base.mark_line(point=True, color=SCORE).encode(
        x=x,
        y="mean:Q",
        tooltip=[
            _from_tooltip(),
            alt.Tooltip("mean:Q", title="Mean", format=",.4~f"),
            alt.Tooltip("p10:Q", title="p10", format=",.4~f"),
            alt.Tooltip("p90:Q", title="p90", format=",.4~f"),
            alt.Tooltip("n:Q", title="Scores with a value", format=","),
            alt.Tooltip("errors:Q", title="Errors", format=","),
        ],
    )
    chart: alt.LayerChart = (band + line).properties(title=f"{name} over time", height=_HEIGHT)
    return chart


def score_groups_chart(df: pd.DataFrame, name: str, group_title: str) -> alt.LayerChart:
    """Mean of a score per group (model or variant) as a dot, with its p10-p90 range.

    ``df``: group, mean, p10, p90, n.
    """
    base = alt.Chart(df)
    y = alt.Y("group:N", title=group_title, sort=list(df["group"]), axis=alt.Axis(labelLimit=240))
    color = alt.Color("group:N", scale=alt.Scale(scheme=MODEL_SCHEME), legend=None)
    rule = base.mark_rule(strokeWidth=3, opacity=0.5).encode(
        y=y, x=alt.X("p10:Q", title=f"{name} (score value: mean, p10-p90)"), x2="p90:Q", color=color
    )
    dot = base.mark_point(filled=True, size=90).encode(
        y=y,
        x="mean:Q",
        color=color,
        tooltip=[
            alt.Tooltip("group:N", title=group_title),
            alt.Tooltip("mean:Q", title="Mean", format=",.4~f"),
            alt.Tooltip("p10:Q", title="p10", format=",.4~f"),
            alt.Tooltip("p90:Q", title="p90", format=",.4~f"),
            alt.Tooltip("n:Q", title="Scores with a value", format=","),
        ],
    )
    chart: alt.LayerChart = (rule + dot).properties(
        title=f"{name} per {group_title.lower()}", height=max(120, 32 * len(df))
    )
    return chart


def drift_timeline_chart(df: pd.DataFrame, alpha: float) -> alt.LayerChart:
    """p-value per drift check on a log scale, with the ``alpha`` line and drift verdicts in red.

    ``df``: computed_at, p_value, verdict ("drift" or "no drift"), n_reference, n_current.
    """
    base = alt.Chart(df)
    x = alt.X("computed_at:T", title="Check time (UTC)", axis=alt.Axis(format="%b %d %H:%M", labelAngle=0))
    line = base.mark_line(color=ACCENT, opacity=0.6).encode(
        x=x, y=alt.Y("p_value:Q", title="p-value (log scale)", scale=alt.Scale(type="log"), axis=alt.Axis(format=".0e"))
    )
    points = base.mark_point(filled=True, size=70).encode(
        x=x,
        y="p_value:Q",
        color=alt.Color(
            "verdict:N", title="Verdict", scale=alt.Scale(domain=["drift", "no drift"], range=[ERROR, ACCENT])
        ),
        tooltip=[
            alt.Tooltip("computed_at:T", title="Checked", format="%Y-%m-%d %H:%M:%S"),
            alt.Tooltip("p_value:Q", title="p-value", format=".3e"),
            "verdict:N",
            alt.Tooltip("n_reference:Q", title="Reference samples", format=","),
            alt.Tooltip("n_current:Q", title="Current samples", format=","),
        ],
    )
    threshold = (
        alt.Chart(pd.DataFrame({"alpha": [alpha]}))
        .mark_rule(color=ERROR, strokeDash=[6, 4])
        .encode(y="alpha:Q", tooltip=[alt.Tooltip("alpha:Q", title="alpha (significance level)")])
    )
    chart: alt.LayerChart = (line + points + threshold).properties(title="p-value per check", height=_HEIGHT)
    return chart


def embeddings_pca_chart(df: pd.DataFrame, x_title: str, y_title: str) -> alt.Chart:
    """Reference against current embeddings on their first two principal components (``df``: pc1, pc2, window, text)."""
    chart: alt.Chart = (
        alt.Chart(df, title="Embeddings, 2-D PCA of both windows pooled")
        .mark_circle(size=40, opacity=0.6)
        .encode(
            x=alt.X("pc1:Q", title=x_title, axis=alt.Axis(format=",.2~f")),
            y=alt.Y("pc2:Q", title=y_title, axis=alt.Axis(format=",.2~f")),
            color=alt.Color(
                "window:N", title="Window", scale=alt.Scale(domain=list(WINDOWS), range=list(WINDOWS.values()))
            ),
            tooltip=["window:N", alt.Tooltip("text:N", title="Text")],
        )
        .properties(height=380)
    )
    return chart
