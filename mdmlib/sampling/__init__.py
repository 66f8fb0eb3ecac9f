"""Sampling: the DDIM solver and the sample files of evaluation points."""
