"""Workflows built on a trained pipeline: prediction over files (local and distributed),
distillation (teacher logits written with a corpus), tuning (temperatures and thresholds)
and the evaluation report."""
