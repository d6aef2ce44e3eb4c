"""``video_hf``: a tiny random VideoMAE and its processor, loaded from a folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.testing import check_encoder, check_trains_and_reloads, save_tiny_hf_model


@pytest.fixture(scope="module")
def tiny_videomae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer VideoMAE (4 frames of 32 pixels) and its processor."""
    from transformers import VideoMAEConfig, VideoMAEImageProcessor, VideoMAEModel

    config = VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2,
                            hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64)
    processor = VideoMAEImageProcessor(size={"shortest_edge": 32},
                                       crop_size={"height": 32, "width": 32})
    return save_tiny_hf_model(tmp_path_factory.mktemp("tiny_videomae"), VideoMAEModel,
                              config, processor)


def _options(folder: Path) -> dict:
    return {"processor": str(folder), "num_frames": 4, "size": 40}


def test_the_processor_prepares_frames_and_the_contract_holds(tiny_videomae: Path) -> None:
    video = anymodal.get_modality("video", **_options(tiny_videomae))
    items = video.synthesize(2, torch.Generator().manual_seed(0))
    assert items[0].shape == (4, 3, 32, 32)
    spec = anymodal.get_encoder_spec("video_hf")
    check_encoder(spec, {}, _options(tiny_videomae))
    check_encoder(spec, {"pooling": "cls", "layer": "encoder.layer.0"}, _options(tiny_videomae))
    encoder = anymodal.create_encoder("video_hf", video)
    assert encoder.config.model == str(tiny_videomae) and encoder.width == 32


def test_trains_saves_and_reloads_bit_identically(tiny_videomae: Path, tmp_path: Path) -> None:
    check_trains_and_reloads({
        "video": {"encoder": "video_hf", "options": _options(tiny_videomae)},
        "v": {"modality": "vector"},
    }, tmp_path / "model", n=2)
