"""Traces: a filterable, paginated table of traces that leads to Trace detail."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from loopwise_dashboard import _state
from loopwise_dashboard._format import fmt_time
from loopwise_dashboard._models import MetricsRow, TracePage, TraceSummary

ANY = "(any)"
PAGE_SIZE = 50

st.title("Traces")

r = _state.time_range()
start = _state.range_start(r)

with _state.collector_errors():
    # Span names and models in the range make the two most useful filters pickable rather than typed.
    names: list[MetricsRow] = _state.fetch("metrics_summary", from_=start, group_by="name")
    models: list[MetricsRow] = _state.fetch("metrics_summary", from_=start, group_by="model")
    score_names = sorted({row.name for row in _state.fetch("scores_summary", from_=start)})

with st.container(border=True):
    c = st.columns(4)
    name = c[0].selectbox("Trace name", [ANY, *sorted({m.group for m in names if m.group})], key="lw_f_name")
    model = c[1].selectbox("Model", [ANY, *sorted({m.group for m in models if m.group})], key="lw_f_model")
    user_id = c[2].text_input("User id", key="lw_f_user", placeholder="exact match")
    session_id = c[3].text_input("Session id", key="lw_f_session", placeholder="exact match")
    c = st.columns(4)
    tag = c[0].text_input("Tag", key="lw_f_tag", placeholder="exact match")
    variant = c[1].text_input("Variant", key="lw_f_variant", placeholder="e.g. A")
    errors_only = c[2].toggle("Errors only", key="lw_f_errors")
    c[3].caption(f"{r.label}: traces that started since {start:%Y-%m-%d %H:%M} UTC.")
    search, score, bounds = st.columns([2, 1, 1])
    query = search.text_input("Search", key="lw_f_q", max_chars=200, placeholder="in span names, inputs, outputs")
    score_name = score.selectbox("Score", [ANY, *score_names], key="lw_f_score")
    # Scores have no common scale (BLEU is 0-100, most are 0-1): the range is typed, not a slider.
    low, high = bounds.columns(2)
    score_min = low.number_input("min", value=None, key="lw_f_score_min", disabled=score_name == ANY)
    score_max = high.number_input("max", value=None, key="lw_f_score_max", disabled=score_name == ANY)

filters = {
    "from_": start,
    "name": None if name == ANY else name,
    "model": None if model == ANY else model,
    "user_id": user_id.strip() or None,
    "session_id": session_id.strip() or None,
    "tag": tag.strip() or None,
    "variant": variant.strip() or None,
    "has_error": True if errors_only else None,
    "q": query.strip() or None,
    "score_name": None if score_name == ANY else score_name,
    "score_min": None if score_name == ANY else score_min,
    "score_max": None if score_name == ANY else score_max,
}

# Keyset pagination: remember the cursors of the pages seen, and start over when the filters change.
signature = repr(sorted(filters.items()))
if st.session_state.get("lw_f_signature") != signature:
    st.session_state.lw_f_signature = signature
    st.session_state.lw_cursors = [None]
cursors: list[str | None] = st.session_state.lw_cursors

with _state.collector_errors():
    page: TracePage = _state.fetch("traces", **filters, limit=PAGE_SIZE, cursor=cursors[-1])
    if not page.data and len(cursors) == 1 and not _state.fetch("traces", limit=1).data:
        _state.empty_state(_state.settings().endpoint)
        st.stop()


def _row(t: TraceSummary) -> dict[str, object]:
    return {
        "open": f"trace?trace_id={t.trace_id}",
        "name": t.name,
        "start": fmt_time(t.start_time),
        "duration_ms": t.duration_ms,
        "spans": t.span_count,
        "tokens": t.input_tokens + t.output_tokens,
        "cost_usd": t.cost_usd,
        "error": "❌" if t.has_error else "",
        "user": t.user_id,
        "tags": ", ".join(t.tags),
        "scores": ", ".join(f"{k}={v:.2f}" for k, v in sorted(t.scores.items())),
        "trace_id": t.trace_id,
    }


if not page.data:
    st.info("No trace matches these filters in this time range. Loosen a filter or pick a longer range.")
else:
    st.dataframe(
        pd.DataFrame([_row(t) for t in page.data]),
        hide_index=True,
        width="stretch",
        column_config={
            "open": st.column_config.LinkColumn("Open", display_text="open ↗", width="small"),
            "name": "Name",
            "start": "Start (UTC)",
            "duration_ms": st.column_config.NumberColumn("Duration (ms)", format="%.2f"),
            "spans": st.column_config.NumberColumn("Spans", format="%d"),
            "tokens": st.column_config.NumberColumn("Tokens", format="localized"),
            "cost_usd": st.column_config.NumberColumn("Cost (USD)", format="$%.5f"),
            "error": st.column_config.TextColumn("Error", width="small"),
            "user": "User",
            "tags": "Tags",
            "scores": "Scores (mean)",
            "trace_id": "Trace id",
        },
    )

nav = st.columns([1, 1, 4])
if nav[0].button("← Newer", disabled=len(cursors) == 1, key="lw_prev"):
    cursors.pop()
    st.rerun()
if nav[1].button("Older →", disabled=page.next_cursor is None, key="lw_next"):
    cursors.append(page.next_cursor)
    st.rerun()
nav[2].caption(f"Page {len(cursors)} · {len(page.data)} traces, newest first")

if page.data:
    labels = {t.trace_id: f"{t.name} · {fmt_time(t.start_time)} · {t.trace_id}" for t in page.data}
    pick, go = st.columns([4, 1], vertical_alignment="bottom")
    chosen = pick.selectbox("Trace", list(labels), format_func=labels.__getitem__, key="lw_pick_trace")
    if go.button("Open trace detail", type="primary", key="lw_open_trace"):
        st.switch_page(_state.TRACE_DETAIL_PAGE, query_params={"trace_id": chosen})
