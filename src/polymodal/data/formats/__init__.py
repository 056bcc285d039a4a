"""Readers for file formats that hold whole datasets (not one example per file)."""
