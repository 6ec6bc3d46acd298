"""Training and scoring models: the training loop (DDP), augmentation, slice banks, metrics, `evaluate`."""
