"""anymodal-graph: graphs as an anymodal modality.

Registers the modality ``graph`` (PyG ``Data`` items read from ``.pt``, JSON and edge-list
CSV files, collated with PyG's ``Batch``) and the encoders ``graph_gin`` and ``graph_gat``.
"""

from __future__ import annotations

__version__ = "0.1.0"
