"""Mixtures of experts: which model serves which timestep."""
