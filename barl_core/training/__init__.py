"""Configs, training methods, the hook-based trainer, checkpoints, distributed."""
