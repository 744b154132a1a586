"""Trace detail: the span waterfall, inputs and outputs as chat, attributes, scores and a feedback widget."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from loopwise_dashboard import _charts, _state
from loopwise_dashboard._chat import parse_messages, show_value, system_text
from loopwise_dashboard._format import fmt_int, fmt_ms, fmt_time, fmt_usd
from loopwise_dashboard._models import Score, Span, TraceDetail

NEST = "\u203a "  # a single right-pointing angle quote

st.title("Trace detail")

trace_id = st.text_input(
    "Trace id", value=st.query_params.get("trace_id", ""), placeholder="32 hex digits, from the Traces page"
).strip()
if not trace_id:
    st.info("Pick a trace on the **Traces** page, or paste a trace id above.")
    st.page_link(_state.TRACES_PAGE, label="Go to Traces", icon=":material/list:")
    st.stop()
if not re.fullmatch(r"[0-9a-fA-F]{32}", trace_id):
    st.error("A trace id is 32 hex digits, e.g. `5b8efff798038103d269b633813fc60c`.")
    st.stop()
trace_id = trace_id.lower()
# Keep the URL shareable: it names the trace on screen.
if st.query_params.get("trace_id") != trace_id:
    st.query_params["trace_id"] = trace_id

with _state.collector_errors():
    detail: TraceDetail = _state.fetch("trace", trace_id=trace_id)
    scores: list[Score] = _state.fetch("scores", trace_id=trace_id, limit=1000)

spans = detail.spans
root = spans[0]
t0 = min(s.start_time_unix_nano for s in spans)
t1 = max(s.end_time_unix_nano for s in spans)
errors = [s for s in spans if s.status == "error"]
priced = [s.cost_usd for s in spans if s.cost_usd is not None]

st.caption(f"`{trace_id}` · started {fmt_time(root.start_time)} UTC · service `{root.service_name or '—'}`")
st.subheader(root.name)
cols = st.columns(5)
cols[0].metric("Duration", fmt_ms((t1 - t0) / 1e6))
cols[1].metric("Spans", fmt_int(len(spans)))
cols[2].metric("Tokens", fmt_int(sum((s.input_tokens or 0) + (s.output_tokens or 0) for s in spans)))
cols[3].metric("Cost", fmt_usd(sum(priced) if priced else None))
cols[4].metric("Error spans", fmt_int(len(errors)))
for s in errors:
    st.error(f"**{s.name}** failed: {s.status_message or 'status error'}", icon="❌")


def _depths(spans: list[Span]) -> dict[str, int]:
    ids = {s.span_id: s for s in spans}
    depth: dict[str, int] = {}
    for s in spans:  # start order puts most parents first; walk up for the rest, bounded against cycles
        d, parent, seen = 0, s.parent_span_id, 0
        while parent in ids and seen < len(spans):
            d, parent, seen = d + 1, ids[parent].parent_span_id, seen + 1
        depth[s.span_id] = d
    return depth


depth = _depths(spans)
total_ms = max((t1 - t0) / 1e6, 1e-6)
waterfall = pd.DataFrame(
    [
        {
            # A numbered label keeps same-named spans on their own rows; the marker shows the nesting, since
            # right-aligned axis labels would swallow plain indentation.
            "label": f"{i + 1}. {NEST * depth[s.span_id]}{s.name}",
            "name": s.name,
            "span_type": s.span_type or "span",
            "status": s.status,
            "start_ms": (s.start_time_unix_nano - t0) / 1e6,
            # A zero-length span would be invisible; give it a sliver of the trace's width.
            "end_ms": max((s.end_time_unix_nano - t0) / 1e6, (s.start_time_unix_nano - t0) / 1e6 + total_ms / 300),
            "duration_ms": s.duration_ms,
        }
        for i, s in enumerate(spans)
    ]
)
st.altair_chart(_charts.waterfall_chart(waterfall), width="stretch", height=_charts.waterfall_height(len(waterfall)))

# The first span that carries chat messages is the most telling one to open with.
default = next((i for i, s in enumerate(spans) if parse_messages(s.input) or parse_messages(s.output)), 0)
index = st.selectbox(
    "Span", range(len(spans)), index=default, key=f"lw_span_{trace_id}",
    format_func=lambda i: f"{i + 1}. {spans[i].name} ({spans[i].span_type or 'span'}, {fmt_ms(spans[i].duration_ms)})",
)  # fmt: skip
span = spans[index]

info = st.columns(5)
info[0].metric("Type", span.span_type or "span")
info[1].metric("Model", span.model or "—")
info[2].metric("Duration", fmt_ms(span.duration_ms))
info[3].metric("Tokens in / out", f"{fmt_int(span.input_tokens)} / {fmt_int(span.output_tokens)}")
info[4].metric("Cost", fmt_usd(span.cost_usd), help=f"cost source: {span.cost_source or 'none'}")


left, right = st.columns(2)
with left:
    show_value("Input", span.input, system_text(span.system_instructions))
with right:
    show_value("Output", span.output)

with st.expander(f"Attributes ({len(span.attributes)})"):
    st.json(span.attributes, expanded=True)
    st.markdown("**Resource**")
    st.json(span.resource_attributes, expanded=False)
    if span.events:
        st.markdown("**Events**")
        st.json(span.events, expanded=False)

st.subheader("Scores")
if scores:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "name": s.name,
                    "value": s.value,
                    "label": s.label,
                    "source": s.source,
                    "comment": s.comment,
                    "span": s.span_id or "(trace)",
                    "created": fmt_time(s.created_at),
                }
                for s in scores
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={"value": st.column_config.NumberColumn("Value", format="%.3f"), "created": "Created (UTC)"},
    )
else:
    st.caption("No scores for this trace yet.")

st.subheader("Your feedback")
done = st.session_state.pop("lw_feedback_done", None)
if done:
    st.success(done, icon="✅")
with st.container(border=True):
    thumbs = st.feedback("thumbs", key=f"lw_thumbs_{trace_id}")
    comment = st.text_area("Comment (optional)", key=f"lw_comment_{trace_id}", max_chars=10_000)
    if st.button("Send feedback", type="primary", key=f"lw_send_{trace_id}"):
        if thumbs is None:
            st.warning("Pick thumbs up or down first.")
        else:
            up = thumbs == 1
            with _state.collector_errors():
                _state.client().post_feedback(
                    trace_id, "thumbs", 1.0 if up else 0.0, comment.strip(), label="up" if up else "down"
                )
            _state.clear_cache()
            st.session_state.lw_feedback_done = f"Thanks: thumbs {'up' if up else 'down'} recorded as a human score."
            st.rerun()
