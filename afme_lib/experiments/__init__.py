"""Experiments: the run spec and the one run entry point, comparisons, grids, the main job, report pages."""
