"""Where a job runs: its device and its GPU slot."""
