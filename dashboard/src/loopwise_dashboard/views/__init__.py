"""Dashboard pages: scripts that ``st.navigation`` runs, not modules to import.

The folder is not called ``pages``: that name switches on Streamlit's older file-based navigation, whose page
names and URLs clash with ours on a page's first load.
"""
