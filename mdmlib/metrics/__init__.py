"""Metrics: FID, sFID, precision/recall, their feature networks, reference statistics and series."""
