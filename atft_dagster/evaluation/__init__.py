"""Evaluation metrics (pure core)."""
