"""Colour themes for the terminal UI, as data files (`*.toml`)."""
