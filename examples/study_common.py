"""What the example studies share: the machine they name, the digits encoders, one run.

``examples/compare_objectives.py``, ``examples/emergent_alignment.py`` and
``examples/symile_xor.py`` (and ``benchmarks/global_contrastive.py`` through the first)
import it; the examples are scripts, not a package: each puts its own folder on
``sys.path``.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import subprocess
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["DIGITS_MODALITIES", "SHARED_OBJECTIVES", "machine", "train_and_score"]

#: The encoders and modality options of ``recipes/digits_symile.yaml`` for the three
#: modalities the studies use (small, fast on a CPU); encoders take ``n_mels`` and
#: ``max_length`` from their modality's options.
DIGITS_MODALITIES: dict[str, dict[str, Any]] = {
    "image": {"encoder": "image_cnn_small",
              "options": {"size": 32, "hflip": 0.0, "train_crop": "random_resized",
                          "min_scale": 0.8},
              "params": {"channels": [16, 32, 64], "width": 128}},
    "audio": {"encoder": "audio_ast_tiny",
              "options": {"sample_rate": 22050, "clip_seconds": 1.0, "eval_clips": 1,
                          "n_mels": 64, "freq_mask": 8, "time_mask": 10},
              "params": {"embed_dim": 64, "depth": 2, "num_heads": 4, "max_frames": 128}},
    "text": {"encoder": "text_transformer_tiny",
             "options": {"max_length": 48, "random_crop": False},
             "params": {"width": 64, "depth": 2, "heads": 2}},
}


#: ``(label, objective name, objective params)``: the built-in objectives other than CLIP and
#: DCL at their defaults, Symile with both negative sets. The objective study trains these rows
#: and ``benchmarks/objectives.py`` times them; each adds its own CLIP and DCL variants.
SHARED_OBJECTIVES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("siglip", "siglip", {}),
    ("symile (n)", "symile", {"negatives": "n"}),
    ("symile (n_squared)", "symile", {"negatives": "n_squared"}),
    ("gram", "gram", {}),
    ("mv_infonce", "mv_infonce", {}),
    ("mv_dhel", "mv_dhel", {}),
    ("infoloob", "infoloob", {}),
)


def train_and_score(config: Any, manifest: Path, tasks: Sequence[str]
                    ) -> tuple[dict[str, float], float]:
    """Train ``config`` quietly, then R@1 (label positives) of its model on ``manifest``.

    Returns:
        ``({task: R@1}, training seconds)``.
    """
    import anymodal
    from anymodal.retrieval.evaluation import evaluate_retrieval
    from anymodal.training import train

    started = time.perf_counter()
    # The loop prints a start and end table per run; the studies print their own summary.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(config)
    seconds = time.perf_counter() - started
    model = anymodal.MultiModalModel.from_pretrained(result.output_dir / "model").eval()
    metrics = evaluate_retrieval(model, manifest, ",".join(tasks), ks=(1,), positives="label")
    return {task: float(metrics[task]["R@1"]) for task in tasks}, seconds


def machine() -> str:
    """``N-core CPU (model name), GPU or "no GPU"`` and the torch version, for a report.

    The CPU model comes from ``lscpu`` (``platform.processor()`` where it is missing).
    """
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                      if line.startswith("Model name")), platform.processor())
    except OSError:
        model = platform.processor()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()}-core CPU ({model}), {gpu}, runs on the CPU with 1 torch "
            f"thread; torch {torch.__version__}")
