"""Training (pure core): tensors, walk-forward splits, the training loop, checkpoints."""
