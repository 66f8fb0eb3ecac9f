"""mdmlib: timestep-interval expert diffusion models (MDM and the related papers); all the pipeline's logic."""
