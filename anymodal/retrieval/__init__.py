"""Indexes, any-to-any search with each objective's own scoring, and metrics."""
