"""Interfaces: the afme command line and the notebooks' helpers."""
