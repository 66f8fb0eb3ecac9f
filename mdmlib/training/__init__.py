"""Training one model (the baseline or an expert): the job, the loop, timestep samplers, checkpoints, data parallelism."""
