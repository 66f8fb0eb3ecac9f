"""Core pieces every other package uses: intervals and budgets, noise schedules, image ranges, atomic writes,
seeded RNG blocks, the Adam optimizer."""
