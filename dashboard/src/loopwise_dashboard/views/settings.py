"""Settings: the connection (collector, key, health) and the project's evaluator rules."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from loopwise_dashboard import _state
from loopwise_dashboard._errors import DashboardError
from loopwise_dashboard._models import EvaluatorRule

# The built-in evaluators that run on live spans. The API has no route that lists evaluators (a 422 for an unknown
# one names them, plugins included); bleu, rouge, embedding_similarity and hf_evaluate need a reference answer and
# human_feedback is read, not run, so the collector refuses those for rules. Plugins: type the name instead.
LIVE_EVALUATORS = ["hallucination", "toxicity", "llm_judge", "embedding_drift"]
SPAN_TYPES = ["llm", "tool", "retrieval", "embedding", "agent", "span"]

st.title("Settings")

settings = _state.settings()
client = _state.client()

st.subheader("Connection")
cols = st.columns(3)
cols[0].markdown(f"**Collector**  \n`{settings.endpoint}`")
cols[1].markdown(
    f"**API key**  \n`{settings.masked_key()}`",
    help="The key picks the project. Set LOOPWISE_API_KEY, or let the dashboard read .loopwise/credentials.json, "
    "which `loopwise up` writes (LOOPWISE_DATA_DIR).",
)
try:
    status = client.health().status
except DashboardError:
    status = "unreachable"
cols[2].markdown(f"**Health**  \n{'🟢' if status == 'ok' else '🔴'} `{status}`")

with _state.collector_errors():
    # Not cached: this page changes rules, and should show changes made elsewhere at once.
    rules: list[EvaluatorRule] = client.rules()
st.caption(
    f"The key is accepted: its project has {len(rules)} evaluator rule{'s' if len(rules) != 1 else ''}. "
    "The collector has no route that names the project; `loopwise up` calls a local one `demo` or your choice."
)


def _flash(kind: str, message: str) -> None:
    st.session_state.lw_rules_flash = (kind, message)


def _filter_text(f: dict[str, Any]) -> str:
    """``span_types=llm; models=gpt-4o`` for the non-empty lists, or ``all spans``.

    Example:
        >>> _filter_text({"span_types": ["llm"], "tags": [], "models": ["a", "b"]})
        'span_types=llm; models=a,b'
    """
    parts = [f"{k}={','.join(map(str, v))}" for k, v in f.items() if v]
    return "; ".join(parts) or "all spans"


def _set_enabled(rule: EvaluatorRule, key: str) -> None:
    """Toggle callback: PATCH ``enabled`` at once; on refusal put the toggle back and say why."""
    want = bool(st.session_state[key])
    try:
        client.update_rule(rule.id, enabled=want)
    except DashboardError as exc:
        st.session_state[key] = rule.enabled
        _flash("error", f"Could not change **{rule.name}**: {exc}")
        return
    _state.clear_cache()
    _flash("success", f"Rule **{rule.name}** {'enabled' if want else 'disabled'}.")


st.subheader("Evaluator rules")
st.caption(
    "Which live spans the evaluation runners score, with which evaluator and at what sample rate. "
    "Rules from the collector's rules file (source `config`) are read-only here."
)
flash = st.session_state.pop("lw_rules_flash", None)
if flash:
    kind, message = flash
    (st.error if kind == "error" else st.success)(message)

if not rules:
    st.info("No evaluator rules yet: create one below, and the runners start scoring matching spans.", icon="🧪")
else:
    table = pd.DataFrame(
        [
            {
                "name": r.name, "evaluator": r.evaluator, "filter": _filter_text(r.filter),
                "sample_rate": r.sample_rate, "enabled": r.enabled, "source": r.source,
                "backfill_hours": r.backfill_hours, "params": json.dumps(r.params) if r.params else "",
                "last_error": r.last_error or "",
            }
            for r in rules
        ]
    )  # fmt: skip
    styled = table.style.map(lambda v: "color: #E45756; font-weight: bold" if v else "", subset=["last_error"])
    st.dataframe(
        styled,
        hide_index=True,
        width="stretch",
        column_config={
            "sample_rate": st.column_config.NumberColumn("Sample rate", format="percent"),
            "enabled": st.column_config.CheckboxColumn("Enabled"),
            "backfill_hours": st.column_config.NumberColumn("Backfill (h)", format="%d"),
            "last_error": "Last error",
        },
    )
    for r in rules:
        if r.last_error:
            st.warning(f"**{r.name}** last error: {r.last_error}", icon="⚠️")

    st.markdown("**Change a rule**")
    by_name = {r.name: r for r in rules}
    picked = st.selectbox("Rule", list(by_name), key="lw_rule_pick")
    rule = by_name[picked]
    if rule.source == "config":
        st.info(
            f"**{rule.name}** comes from the collector's rules file (LOOPWISE_EVALUATOR_RULES_FILE): change it there "
            "and restart the collector.",
            icon="🔒",
        )
    else:
        enabled_key = f"lw_rule_enabled_{rule.id}"
        if enabled_key not in st.session_state:
            st.session_state[enabled_key] = rule.enabled
        st.toggle("Enabled", key=enabled_key, on_change=_set_enabled, args=(rule, enabled_key))
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        rate = left.number_input(
            "Sample rate", 0.0, 1.0, value=float(rule.sample_rate), step=0.05, format="%.2f",
            key=f"lw_rule_rate_{rule.id}", help="Share of matching spans to evaluate (0 to 1).",
        )  # fmt: skip
        if right.button("Save rate", key="lw_rule_save_rate", disabled=rate == rule.sample_rate):
            try:
                client.update_rule(rule.id, sample_rate=rate)
            except DashboardError as exc:
                st.error(f"Could not change **{rule.name}**: {exc}")
            else:
                _state.clear_cache()
                _flash("success", f"Rule **{rule.name}** now samples {rate:.0%} of matching spans.")
                st.rerun()
        if st.session_state.get("lw_rule_confirm") != rule.id:
            if st.button("Delete rule…", key="lw_rule_delete", icon=":material/delete:"):
                st.session_state.lw_rule_confirm = rule.id
                st.rerun()
        else:
            st.warning(f"Delete **{rule.name}**? Its scores stay; a new rule of that name can be made later.")
            yes, no = st.columns(2)
            if yes.button("Yes, delete", key="lw_rule_delete_yes", type="primary"):
                st.session_state.pop("lw_rule_confirm", None)
                try:
                    client.delete_rule(rule.id)
                except DashboardError as exc:
                    st.error(f"Could not delete **{rule.name}**: {exc}")
                else:
                    _state.clear_cache()
                    _flash("success", f"Rule **{rule.name}** deleted.")
                    st.rerun()
            if no.button("Cancel", key="lw_rule_delete_no"):
                st.session_state.pop("lw_rule_confirm", None)
                st.rerun()


def _names(text: str) -> list[str]:
    """Comma-separated names as a list, blanks dropped.

    Example:
        >>> _names(" a, b ,,c ")
        ['a', 'b', 'c']
    """
    return [p.strip() for p in text.split(",") if p.strip()]


st.markdown("**New rule**")
with st.form("lw_rule_create", border=True):
    left, right = st.columns(2)
    evaluator = left.selectbox(
        "Evaluator", LIVE_EVALUATORS, key="lw_new_evaluator",
        help="Built-in evaluators that run on live spans (docs/evaluators.md).",
    )  # fmt: skip
    plugin = right.text_input(
        "…or a plugin evaluator", key="lw_new_plugin", placeholder="registered name, e.g. my_pkg_grader"
    )
    name = left.text_input(
        "Name", key="lw_new_name", placeholder="default: the evaluator's name",
        help="Letters, digits, `_`, `.` and `-`; the name its scores get. Unique in the project, fixed once created.",
    )  # fmt: skip
    span_types = right.multiselect("Span types", SPAN_TYPES, key="lw_new_span_types", placeholder="all")
    params_text = st.text_area(
        "Parameters (JSON object)", value="{}", key="lw_new_params", height=90,
        help="The evaluator's keyword parameters, e.g. {\"threshold\": 0.6}. A bad one shows as the rule's last error.",
    )  # fmt: skip
    a, b, c = st.columns(3)
    span_names = a.text_input("Span names", key="lw_new_span_names", placeholder="comma-separated; empty: all")
    models = b.text_input("Models", key="lw_new_models", placeholder="comma-separated; empty: all")
    tags = c.text_input("Tags", key="lw_new_tags", placeholder="comma-separated; empty: all")
    a, b, c = st.columns(3, vertical_alignment="bottom")
    sample_rate = a.number_input("Sample rate", 0.0, 1.0, value=1.0, step=0.05, format="%.2f", key="lw_new_rate")
    backfill = b.number_input("Backfill (hours)", 0, 8760, value=24, step=1, key="lw_new_backfill")
    enabled = c.checkbox("Enabled", value=True, key="lw_new_enabled")
    submitted = st.form_submit_button("Create rule", type="primary", key="lw_new_submit")

if submitted:
    try:
        params = json.loads(params_text or "{}")
    except ValueError as exc:
        params = None
        st.error(f'Parameters are not valid JSON: {exc}. Write an object such as `{{"threshold": 0.6}}`.')
    if params is not None and not isinstance(params, dict):
        st.error("Parameters must be a JSON object (`{...}`), not a list or a single value.")
        params = None
    if params is not None:
        chosen = plugin.strip() or evaluator
        filter_ = {"span_names": _names(span_names), "models": _names(models), "tags": _names(tags)}
        filter_["span_types"] = list(span_types)
        try:
            created = client.create_rule(
                chosen, name=name.strip() or None, params=params, filter=filter_, sample_rate=float(sample_rate),
                backfill_hours=int(backfill), enabled=enabled,
            )  # fmt: skip
        except DashboardError as exc:
            st.error(f"Could not create the rule: {exc}")
        else:
            _state.clear_cache()
            _flash("success", f"Rule **{created.name}** created ({created.evaluator}).")
            st.rerun()
