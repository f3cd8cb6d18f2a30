"""Workflows built on the component: prediction over files (local and distributed) and
distillation (teacher logits written with a corpus)."""
