"""Overview: volume, errors, latency, tokens and cost over time, and per model."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from loopwise_dashboard import _charts, _state
from loopwise_dashboard._format import fmt_int, fmt_ms, fmt_pct, fmt_usd
from loopwise_dashboard._models import MetricsRow

st.title("Overview")

settings = _state.settings()
refresh_s = settings.refresh_s
auto = st.toggle(
    f"Auto-refresh every {refresh_s} s" if refresh_s else "Auto-refresh (off: LOOPWISE_REFRESH_S=0)",
    value=refresh_s > 0, disabled=refresh_s == 0, key="lw_auto_refresh",
)  # fmt: skip


def _buckets(rows: list[MetricsRow]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "bucket": pd.to_datetime([r.group for r in rows], utc=True),
            "traces": [r.trace_count for r in rows],
            "spans": [r.span_count for r in rows],
            "errors": [r.error_count for r in rows],
            "error_rate": [r.error_rate for r in rows],
            "p50": [r.latency_p50_ms for r in rows],
            "p95": [r.latency_p95_ms for r in rows],
            "p99": [r.latency_p99_ms for r in rows],
            "input": [r.input_tokens for r in rows],
            "output": [r.output_tokens for r in rows],
            "cost": [r.cost_usd or 0.0 for r in rows],
        }
    )


def _models(rows: list[MetricsRow]) -> pd.DataFrame:
    # Spans without a model are the app's own steps (agents, tools, retrieval), not model calls.
    return pd.DataFrame(
        [
            {
                "model": r.group, "calls": r.span_count, "traces": r.trace_count, "error_rate": r.error_rate,
                "p50_ms": r.latency_p50_ms, "p95_ms": r.latency_p95_ms, "p99_ms": r.latency_p99_ms,
                "input_tokens": r.input_tokens, "output_tokens": r.output_tokens, "cost_usd": r.cost_usd,
                "unpriced": r.unpriced_span_count,
            }
            for r in rows
            if r.group
        ]
    )  # fmt: skip


def render() -> None:
    """The page body; a fragment, so auto-refresh reruns only this part."""
    r = _state.time_range()
    start = _state.range_start(r)
    with _state.collector_errors():
        total: list[MetricsRow] = _state.fetch("metrics_summary", from_=start)
        if not total:
            if not _state.fetch("traces", limit=1).data:
                _state.empty_state(settings.endpoint)
            else:
                st.info(f"No spans started in the {r.label.lower()}. Pick a longer time range in the sidebar.")
            return
        series: list[MetricsRow] = _state.fetch("metrics_summary", from_=start, group_by=r.group_by)
        per_model: list[MetricsRow] = _state.fetch("metrics_summary", from_=start, group_by="model")

    t = total[0]
    st.caption(f"{r.label} · since {start:%Y-%m-%d %H:%M} UTC · latency and errors are per span")
    # Two rows of four: seven numbers on one row get cut off on a laptop screen.
    cols = st.columns(4)
    cols[0].metric("Traces", fmt_int(t.trace_count))
    cols[1].metric("Spans", fmt_int(t.span_count))
    cols[2].metric("Error rate", fmt_pct(t.error_rate), help=f"{t.error_count:,} spans with status error")
    cols[3].metric(
        "Cost", fmt_usd(t.cost_usd),
        help=f"{t.unpriced_span_count:,} spans had tokens but no known price, and are left out",
    )  # fmt: skip
    cols = st.columns(4)
    cols[0].metric("Latency p50", fmt_ms(t.latency_p50_ms))
    cols[1].metric("Latency p95", fmt_ms(t.latency_p95_ms))
    cols[2].metric("Latency p99", fmt_ms(t.latency_p99_ms))
    cols[3].metric("Tokens in / out", f"{fmt_int(t.input_tokens)} / {fmt_int(t.output_tokens)}")

    df = _buckets(series)
    bucket_title = "Time (UTC, per hour)" if r.group_by == "hour" else "Time (UTC, per day)"
    left, right = st.columns(2)
    left.altair_chart(_charts.volume_chart(df, bucket_title), width="stretch")
    right.altair_chart(_charts.error_rate_chart(df, bucket_title), width="stretch")
    left.altair_chart(_charts.latency_chart(df, bucket_title), width="stretch")
    right.altair_chart(_charts.tokens_chart(df, bucket_title), width="stretch")
    left.altair_chart(_charts.cost_chart(df, bucket_title), width="stretch")

    st.subheader("Per model")
    models = _models(per_model)
    if models.empty:
        st.caption("No span in this range names a model.")
        return
    left, right = st.columns(2)
    left.altair_chart(
        _charts.per_model_chart(models, "calls", "Calls per model", "Calls (spans)", ",d"), width="stretch"
    )
    right.altair_chart(
        _charts.per_model_chart(models.fillna({"cost_usd": 0.0}), "cost_usd", "Cost per model", "Cost (USD)", "$,.4~f"),
        width="stretch",
    )
    st.dataframe(
        models,
        hide_index=True,
        width="stretch",
        column_config={
            "model": "Model",
            "calls": st.column_config.NumberColumn("Calls", format="%d"),
            "traces": st.column_config.NumberColumn("Traces", format="%d"),
            "error_rate": st.column_config.NumberColumn("Error rate", format="percent"),
            "p50_ms": st.column_config.NumberColumn("p50 (ms)", format="%.2f"),
            "p95_ms": st.column_config.NumberColumn("p95 (ms)", format="%.2f"),
            "p99_ms": st.column_config.NumberColumn("p99 (ms)", format="%.2f"),
            "input_tokens": st.column_config.NumberColumn("Input tokens", format="localized"),
            "output_tokens": st.column_config.NumberColumn("Output tokens", format="localized"),
            "cost_usd": st.column_config.NumberColumn("Cost (USD)", format="$%.5f"),
            "unpriced": st.column_config.NumberColumn("Unpriced calls", format="%d"),
        },
    )


if auto and refresh_s:
    st.fragment(run_every=refresh_s)(render)()
else:
    render()
