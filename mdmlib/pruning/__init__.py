"""Structural pruning of the U-Net: schemes and their MACs, importance criteria (torch-pruning),
the physical prune, and TDC's proxy-based search with its proposers."""
