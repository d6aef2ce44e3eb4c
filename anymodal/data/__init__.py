"""Datasets, collation with presence masks, and embedding of raw items."""
