"""Interval selection: where to split the timesteps into expert intervals, one module per method
of the papers (``registry`` lists them); each writes an ``IntervalChoice`` (``choice``)."""
