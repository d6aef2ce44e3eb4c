"""anymodal-datasets: data set builders that write real files and a manifest.

Registers the builder ``digits`` (``anymodal datasets build digits OUT_DIR``): the 1,797
handwritten digits shipped with scikit-learn, each as an image, a spoken word, a video, a
point cloud, a graph and a caption.
"""

from __future__ import annotations

__version__ = "0.1.0"
