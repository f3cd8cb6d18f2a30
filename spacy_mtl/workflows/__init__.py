"""Workflows built on the component: prediction over files (local and distributed)."""
