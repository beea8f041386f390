"""Reusable Streamlit pieces of the app (UI only; geometry lives in annotations/)."""
