"""The Loopwise dashboard: what ``streamlit run`` executes (``loopwise dashboard`` does it for you).

It only sets up the page, the navigation and the sidebar; each page lives under ``pages/``.
"""

from __future__ import annotations

import streamlit as st

from loopwise_dashboard import _state

st.set_page_config(page_title="Loopwise", page_icon="🔁", layout="wide")

navigation = st.navigation(
    [
        st.Page("views/overview.py", title="Overview", icon=":material/monitoring:", url_path="overview", default=True),
        st.Page("views/traces.py", title="Traces", icon=":material/list:", url_path="traces"),
        st.Page("views/trace_detail.py", title="Trace detail", icon=":material/timeline:", url_path="trace"),
        st.Page("views/evaluations.py", title="Evaluations", icon=":material/rule:", url_path="evaluations"),
        st.Page("views/drift.py", title="Drift", icon=":material/query_stats:", url_path="drift"),
        st.Page("views/feedback.py", title="Feedback queue", icon=":material/thumbs_up_down:", url_path="feedback"),
        st.Page("views/settings.py", title="Settings", icon=":material/settings:", url_path="settings"),
    ]
)

settings = _state.settings()
with st.sidebar:
    # Drawn here, on every page, so the choice survives moving between pages.
    st.selectbox(
        "Time range", [r.label for r in _state.TIME_RANGES], index=1, key="lw_range",
        help="Overview and Traces show data that started in this range (UTC).",
    )  # fmt: skip
    if st.button("Refresh data", icon=":material/refresh:", help="Forget cached answers and ask the collector again."):
        _state.clear_cache()
    st.caption(f"Collector `{settings.endpoint}`  \nAPI key `{settings.masked_key()}`")

navigation.run()
