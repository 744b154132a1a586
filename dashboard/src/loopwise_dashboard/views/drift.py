"""Drift: per drift rule, the p-value timeline, the latest check's statistics and examples, and a PCA view."""

from __future__ import annotations

import base64

import numpy as np
import numpy.typing as npt
import pandas as pd
import streamlit as st

from loopwise_dashboard import _charts, _state
from loopwise_dashboard._format import DASH, fmt_int, fmt_time
from loopwise_dashboard._models import DriftCheck, EvaluatorRule, StoredEmbedding

DRIFT_EVALUATOR = "embedding_drift"
PCA_LIMIT = 1000
CHECKS_LIMIT = 1000
DOCS = "https://github.com/loopwise/loopwise/blob/main/docs/evaluators.md#embedding_drift"

st.title("Drift")


def fmt_p(p: float | None) -> str:
    """A p-value: plain above 0.001, scientific below (drift p-values reach 1e-24)."""
    if p is None:
        return DASH
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"


def _param(rule: EvaluatorRule, key: str, default: float) -> float:
    try:
        return float(rule.params.get(key, default))
    except (TypeError, ValueError):
        return default


def _vectors(rows: list[StoredEmbedding]) -> npt.NDArray[np.float32]:
    return np.stack([np.frombuffer(base64.b64decode(x.vector_b64), dtype="<f4") for x in rows])


def pca_2d(vectors: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float64], list[float]]:
    """The rows on their first two principal components, and the share of variance each explains."""
    x = vectors.astype(np.float64)
    x -= x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(2, vt.shape[0])
    coords = x @ vt[:k].T
    if k < 2:
        coords = np.hstack([coords, np.zeros((len(x), 2 - k))])
    total = float((s**2).sum()) or 1.0
    shares = [float(v**2) / total for v in s[:2]] + [0.0] * (2 - min(2, len(s)))
    return coords, shares


def _no_rule(endpoint: str) -> None:
    st.info(
        "**No drift rule.** A drift rule (evaluator `embedding_drift`) embeds the outputs (or inputs) of the "
        "spans it matches and compares the latest window with a reference window on a schedule.",
        icon="🧭",
    )
    st.markdown("`loopwise up` gives a new local project one, `output_drift`. To add one to this project:")
    st.code(
        f"curl -s -X POST -H \"Authorization: Bearer $LOOPWISE_API_KEY\" -H 'Content-Type: application/json' \\\n"
        f'     {endpoint}/api/v1/evaluators -d \'{{"evaluator": "embedding_drift", "name": "output_drift", '
        f'"params": {{"field": "output"}}, "filter": {{"span_types": ["llm"]}}}}\'',
        language="bash",
    )
    st.markdown(f"Parameters, statistics and how to read them: [docs/evaluators.md]({DOCS}).")


with _state.collector_errors():
    rules: list[EvaluatorRule] = [x for x in _state.fetch("evaluators") if x.evaluator == DRIFT_EVALUATOR]
if not rules:
    _no_rule(_state.settings().endpoint)
    st.stop()

by_name = {x.name: x for x in rules}
c = st.columns([2, 3], vertical_alignment="bottom")
rule = by_name[c[0].selectbox("Drift rule", list(by_name), key="lw_drift_rule")]
alpha = _param(rule, "alpha", 0.01)
every = _param(rule, "every_minutes", 10)
min_samples = int(_param(rule, "min_samples", 30))
c[1].caption(
    f"Field `{rule.params.get('field', 'output')}` · checks every {every:g} min · alpha {alpha:g} · "
    f"at least {min_samples} samples per window" + ("" if rule.enabled else " · **disabled**")
)
if rule.last_error:
    st.warning(f"**The rule `{rule.name}` reports a problem:** {rule.last_error}", icon="⚠️")

r = _state.time_range()
start = _state.range_start(r)
with _state.collector_errors():
    checks: list[DriftCheck] = _state.fetch("drift", monitor=rule.name, from_=start, limit=CHECKS_LIMIT)
    if not checks:
        checks = _state.fetch("drift", monitor=rule.name, limit=1)
if not checks:
    st.info(
        f"**No checks yet for `{rule.name}`.** The runner records the first check after every_minutes "
        f"({every:g} min) once the rule exists, and needs min_samples ({min_samples}) embedded spans in both the "
        "reference and the current window for a verdict; with fewer it records a skipped check and says why. "
        "Is a runner running? `loopwise up` starts one.",
        icon="⏳",
    )
    st.stop()

latest = checks[0]
if latest.p_value is None:
    verdict = "Skipped"
elif latest.drift:
    verdict = "Drift"
else:
    verdict = "No drift"
cols = st.columns(5)
cols[0].metric("Latest verdict", verdict, help=f"Checked {fmt_time(latest.computed_at)} UTC")
cols[1].metric("p-value", fmt_p(latest.p_value), help=f"Drift when below alpha = {alpha:g}")
cols[2].metric("Reference samples", fmt_int(latest.n_reference))
cols[3].metric("Current samples", fmt_int(latest.n_current))
cols[4].metric("Checks shown", fmt_int(len(checks)), help=f"Since {start:%Y-%m-%d %H:%M} UTC ({r.label.lower()})")
if latest.p_value is None:
    st.info(f"The latest check was skipped: {latest.result.get('reason') or 'no reason recorded'}.")

timeline = pd.DataFrame(
    [
        {"computed_at": x.computed_at, "p_value": x.p_value, "verdict": "drift" if x.drift else "no drift",
         "n_reference": x.n_reference, "n_current": x.n_current}
        for x in checks
        if x.p_value is not None and x.p_value > 0
    ]
)  # fmt: skip
if not timeline.empty:
    st.altair_chart(_charts.drift_timeline_chart(timeline, alpha), width="stretch")
skipped = sum(1 for x in checks if x.p_value is None)
if skipped:
    st.caption(f"{skipped} of {len(checks)} checks were skipped (too few samples) and are not plotted.")

st.subheader("Latest check")
left, right = st.columns(2)
methods = latest.result.get("methods") or {}
left.markdown("**Statistics per method**")
left.dataframe(
    pd.DataFrame(
        [
            {"method": m, "statistic": v.get("statistic"), "p_value": fmt_p(v.get("p_value")), "auc": v.get("auc")}
            for m, v in methods.items()
            if isinstance(v, dict)
        ],
        columns=["method", "statistic", "p_value", "auc"],
    ),
    hide_index=True,
    width="stretch",
    column_config={
        "method": "Method",
        "statistic": st.column_config.NumberColumn("Statistic", format="%.4g"),
        "p_value": "p-value",
        "auc": st.column_config.NumberColumn("AUC", format="%.3f", help="classifier's held-out ROC AUC"),
    },
)
right.markdown("**Windows**")
right.dataframe(
    pd.DataFrame(
        [
            {
                "window": "reference",
                "from": fmt_time(latest.reference_start),
                "to": fmt_time(latest.reference_end),
                "samples": latest.n_reference,
            },
            {
                "window": "current",
                "from": fmt_time(latest.current_start),
                "to": fmt_time(latest.current_end),
                "samples": latest.n_current,
            },
        ]
    ),
    hide_index=True,
    width="stretch",
    column_config={"window": "Window", "from": "From (UTC)", "to": "To (UTC)", "samples": "Samples"},
)
st.caption(
    f"Monitor `{latest.monitor}` · field `{latest.field}` · embedding model `{latest.model}` · "
    f"combined p-value = min(1, 3 x smallest method p-value)"
)


def _examples(key: str) -> pd.DataFrame:
    rows = latest.result.get(key) or []
    return pd.DataFrame(
        [{"witness": e.get("witness"), "text": e.get("text") or ""} for e in rows if isinstance(e, dict)],
        columns=["witness", "text"],
    )


st.subheader("What drives the shift")
left, right = st.columns(2)
config = {
    "witness": st.column_config.NumberColumn("Witness", format="%.3f", width="small"),
    "text": st.column_config.TextColumn("Text", width="large"),
}
left.markdown("**New in the current window** (highest witness)")
left.dataframe(_examples("examples"), hide_index=True, width="stretch", column_config=config)
right.markdown("**Gone from the reference window** (lowest witness)")
right.dataframe(_examples("reference_examples"), hide_index=True, width="stretch", column_config=config)

st.subheader("Reference against current embeddings")
with _state.collector_errors():
    reference: list[StoredEmbedding] = _state.fetch(
        "embeddings", rule_id=rule.id, from_=latest.reference_start, to=latest.reference_end, limit=PCA_LIMIT
    )
    current: list[StoredEmbedding] = _state.fetch(
        "embeddings", rule_id=rule.id, from_=latest.current_start, to=latest.current_end, limit=PCA_LIMIT
    )
if not reference or not current:
    st.caption(
        f"No PCA view: {len(reference)} reference and {len(current)} current embeddings are stored for these "
        "windows (embeddings expire with the project's retention)."
    )
    st.stop()
ref_v, cur_v = _vectors(reference), _vectors(current)
if ref_v.shape[1] != cur_v.shape[1]:
    st.caption("No PCA view: the two windows hold vectors of different sizes (the rule's model changed).")
    st.stop()
coords, shares = pca_2d(np.vstack([ref_v, cur_v]))
points = pd.DataFrame(
    {
        "pc1": coords[:, 0],
        "pc2": coords[:, 1],
        "window": ["reference"] * len(reference) + ["current"] * len(current),
        "text": [(x.text[:200] + "…") if len(x.text) > 200 else x.text for x in (*reference, *current)],
    }
)
st.altair_chart(
    _charts.embeddings_pca_chart(points, f"PC1 ({shares[0]:.0%} of variance)", f"PC2 ({shares[1]:.0%} of variance)"),
    width="stretch",
)
st.caption(
    f"{len(reference):,} reference and {len(current):,} current embeddings (a stable sample of at most "
    f"{PCA_LIMIT:,} per window), projected on the two main directions of both windows pooled."
)
