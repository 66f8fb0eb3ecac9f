"""Denoiser architectures, the registry that builds them from a checkpoint, attention hooks and MACs."""
