"""Datasets and their train/validation splits."""
