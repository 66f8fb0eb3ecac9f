"""Interval selection: where to split the timesteps into expert intervals.

One module per method of the papers; each returns an ``IntervalChoice`` and the
pipeline writes it to ``intervals/<method>_n<n>.json`` (see ``choice``).
"""
from mdmlib.intervals.choice import (
    IntervalChoice,
    IntervalFileError,
    read_choice,
    write_choice,
)

__all__ = ["IntervalChoice", "IntervalFileError", "read_choice", "write_choice"]
