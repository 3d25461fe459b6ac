"""Measured comparisons; each prints its figures and ratios. Run through the Makefile's bench-* targets."""
