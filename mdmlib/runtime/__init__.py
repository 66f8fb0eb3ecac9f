"""Where a job runs and what it leaves: its device, its GPU slot, its log."""
