"""Feedback queue: traces that need a person's look, one at a time, rated with thumbs from the keyboard."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from loopwise_dashboard import _charts, _state
from loopwise_dashboard._chat import parse_messages, show_value, system_text
from loopwise_dashboard._format import fmt_int, fmt_ms, fmt_pct, fmt_time
from loopwise_dashboard._models import EvaluatorRule, FeedbackGroup, ReviewItem, Score, Span, TraceDetail

ERRORS = "Errored traces"
LOW = "Lowest "  # + a rule name
QUEUE_LIMIT = 20  # low-scoring or errored traces
SAMPLE = 10  # plus the newest traces, as a sample of ordinary traffic
UP_KEY, DOWN_KEY, SKIP_KEY = "Ctrl+Up", "Ctrl+Down", "Ctrl+Right"

st.title("Feedback queue")
st.caption(
    "Traces that need a person's look: the lowest-scoring ones for an evaluator rule (or the errored ones), plus "
    "the newest traces as a sample, leaving out traces that already have human feedback. Each rating is stored "
    f"as a human score `thumbs` (1 up, 0 down). Keys: **{UP_KEY}** 👍 · **{DOWN_KEY}** 👎 · **{SKIP_KEY}** skip, "
    "also while typing a comment."
)

with _state.collector_errors():
    rules: list[EvaluatorRule] = _state.client().rules()  # not cached: a rule made a moment ago is listed
# Drift rules write embeddings, not scores, so there is nothing "low" to sort by.
score_rules = [r.name for r in rules if r.evaluator != "embedding_drift"]
options = [ERRORS] + [LOW + name for name in score_rules]
source = st.selectbox(
    "Review", options, index=1 if score_rules else 0, key="lw_fq_source",
    help="Which traces come first; the newest traces follow as a sample.",
)  # fmt: skip


def _build(source: str) -> None:
    """Ask the collector for a fresh queue; kept in the session so that rating a trace does not reshuffle it."""
    c = _state.client()
    with _state.collector_errors():
        if source == ERRORS:
            queue = c.review_queue(errors=True, recent=SAMPLE, limit=QUEUE_LIMIT)
        else:
            queue = c.review_queue(score_name=source.removeprefix(LOW), recent=SAMPLE, limit=QUEUE_LIMIT)
    st.session_state.update(lw_fq_for=source, lw_fq_items=queue, lw_fq_pos=0, lw_fq_rated=0, lw_fq_skipped=0)


if st.session_state.get("lw_fq_for") != source:
    _build(source)
if st.button("Reload queue", icon=":material/refresh:", key="lw_fq_reload", help="Start over with a fresh queue."):
    _state.clear_cache()
    _build(source)

items: list[ReviewItem] = st.session_state.lw_fq_items
pos: int = st.session_state.lw_fq_pos
rated: int = st.session_state.lw_fq_rated
skipped: int = st.session_state.lw_fq_skipped
total = len(items)

done = st.session_state.pop("lw_fq_flash", None)
if done:
    st.success(done, icon="✅")

if total == 0:
    st.info(
        "**Nothing to review.** Every trace this queue would show already has human feedback, or there are no "
        "traces yet. Pick another queue above, or send traffic with `loopwise demo`.",
        icon="🎉",
    )
else:
    st.progress(
        min(pos, total) / total, text=f"{rated} of {total} reviewed" + (f" · {skipped} skipped" if skipped else "")
    )


def _focus(spans: list[Span]) -> Span:
    """The span worth reading: the first one with chat messages, else the root."""
    return next((s for s in spans if parse_messages(s.input) or parse_messages(s.output)), spans[0])


def _advance(rated_now: bool, message: str) -> None:
    st.session_state.lw_fq_pos = pos + 1
    if rated_now:
        st.session_state.lw_fq_rated = rated + 1
    else:
        st.session_state.lw_fq_skipped = skipped + 1
    st.session_state.lw_fq_flash = message
    st.rerun()


if 0 < total <= pos:
    st.success(f"**Queue done.** {rated} rated, {skipped} skipped. Reload for more.", icon="🏁")
elif total:
    item = items[pos]
    with _state.collector_errors():
        detail: TraceDetail = _state.fetch("trace", trace_id=item.trace_id)
        scores: list[Score] = _state.fetch("scores", trace_id=item.trace_id, limit=1000)
    root = detail.spans[0]
    why = {"error": "errored", "recent": "recent sample"}.get(item.reason, item.reason)
    if item.value is not None:
        why += f" ({item.value:.3f})"
    st.subheader(f"{pos + 1}. {root.name}")
    st.caption(
        f"`{item.trace_id}` · {fmt_time(root.start_time)} UTC · {fmt_ms(root.duration_ms)} · "
        f"{fmt_int(len(detail.spans))} spans · in the queue for: **{why}**"
    )
    for s in detail.spans:
        if s.status == "error":
            st.error(f"**{s.name}** failed: {s.status_message or 'status error'}", icon="❌")
    span = _focus(detail.spans)
    if span is not root:
        st.caption(f"Showing span **{span.name}** ({span.model or span.span_type or 'span'}).")
    left, right = st.columns(2)
    with left:
        show_value("Input", span.input, system_text(span.system_instructions))
    with right:
        show_value("Output", span.output)
    if scores:
        st.markdown("**Scores** · " + " · ".join(
            f"`{s.name}` {'—' if s.value is None else f'{s.value:.3f}'} ({s.source})" for s in scores[:12]
        ))  # fmt: skip
    else:
        st.caption("No scores yet.")

    with st.form(key=f"lw_fq_form_{item.trace_id}", enter_to_submit=False, border=True):
        comment = st.text_input("Comment (optional)", key=f"lw_fq_comment_{item.trace_id}", max_chars=10_000)
        cols = st.columns(3)
        up = cols[0].form_submit_button("👍 Good", key="lw_fq_up", type="primary", shortcut=UP_KEY, width="stretch")
        down = cols[1].form_submit_button("👎 Bad", key="lw_fq_down", shortcut=DOWN_KEY, width="stretch")
        skip = cols[2].form_submit_button("Skip", key="lw_fq_skip", shortcut=SKIP_KEY, width="stretch")
    if up or down:
        with _state.collector_errors():
            _state.client().post_feedback(
                item.trace_id, "thumbs", 1.0 if up else 0.0, comment.strip(), label="up" if up else "down"
            )
        _state.clear_cache()
        _advance(True, f"Thumbs {'up' if up else 'down'} recorded for {root.name} `{item.trace_id[:8]}…`.")
    if skip:
        _advance(False, f"Skipped {root.name} `{item.trace_id[:8]}…`.")

st.divider()
st.subheader("Feedback so far")
group_by = st.radio("Per", ["model", "variant"], horizontal=True, key="lw_fq_group")
with _state.collector_errors():
    summary: list[FeedbackGroup] = _state.fetch("feedback_summary", group_by=group_by)
if not summary:
    st.caption("No human feedback yet: rate a trace above, or send some with `loopwise.score(..., source='human')`.")
else:
    df = pd.DataFrame(
        [
            {
                group_by: g.group or "(none)", "traces": g.traces, "mean": g.mean, "thumbs_up": g.thumbs_up,
                "thumbs_down": g.thumbs_down, "thumbs_up_rate": g.thumbs_up_rate, "ratings": g.ratings,
                "rating_mean": g.rating_mean, "comments": g.comments,
            }
            for g in summary
        ]
    )  # fmt: skip
    chart = (
        alt.Chart(df, title="Mean human feedback")
        .mark_bar(color=_charts.ACCENT)
        .encode(
            x=alt.X("mean:Q", title="Mean feedback (0 to 1; thumbs up = 1)", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y(f"{group_by}:N", title=group_by.capitalize(), sort="-x"),
            tooltip=[
                alt.Tooltip(f"{group_by}:N"),
                alt.Tooltip("mean:Q", format=".2f"),
                alt.Tooltip("traces:Q", format=","),
                alt.Tooltip("thumbs_up_rate:Q", title="thumbs up rate", format=".0%"),
            ],
        )
        .properties(height=max(80, 28 * len(df)))
    )
    left, right = st.columns([2, 3])
    left.altair_chart(chart, width="stretch")
    right.dataframe(
        df,
        hide_index=True,
        width="stretch",
        column_config={
            "mean": st.column_config.NumberColumn("Mean (0 to 1)", format="%.2f"),
            "thumbs_up": st.column_config.NumberColumn("👍", format="%d"),
            "thumbs_down": st.column_config.NumberColumn("👎", format="%d"),
            "thumbs_up_rate": st.column_config.NumberColumn("👍 rate", format="percent"),
            "rating_mean": st.column_config.NumberColumn("Rating (1 to 5)", format="%.2f"),
        },
    )
    ups, downs = sum(g.thumbs_up for g in summary), sum(g.thumbs_down for g in summary)
    st.caption(
        f"{fmt_int(sum(g.n for g in summary))} feedback scores on {fmt_int(sum(g.traces for g in summary))} "
        f"traces · thumbs up overall: {fmt_pct(ups / (ups + downs)) if ups + downs else '—'}"
    )
