"""Every registered encoder and modality, built-in or from an installed plugin, meets the
contract of ``anymodal.testing``."""

from __future__ import annotations

import pytest

import anymodal
from anymodal.testing import check_encoder, check_modality

# Encoders whose construction needs more than the defaults (a downloadable model) are
# covered by their plugin's own tests instead (tiny models saved to a temporary folder).
HEAVY = {"text_minilm", "image_timm", "text_hf", "image_hf", "audio_hf", "video_hf",
         "image_open_clip", "text_open_clip"}


@pytest.mark.parametrize("name", anymodal.list_modalities())
def test_modality_contract(name: str) -> None:
    check_modality(anymodal.get_modality(name))


@pytest.mark.parametrize("name", [n for n in anymodal.list_encoders() if n not in HEAVY])
def test_encoder_contract(name: str) -> None:
    check_encoder(anymodal.get_encoder_spec(name))


def test_every_first_party_plugin_is_loaded() -> None:
    manager = anymodal.get_plugin_manager()
    assert not manager.failures, [str(f) for f in manager.failures]
    loaded = {p.distribution for p in manager.plugins.values()}
    for dist in ("anymodal", "anymodal-audio", "anymodal-video", "anymodal-text",
                 "anymodal-image", "anymodal-pointcloud", "anymodal-graph"):
        assert dist in loaded, f"{dist} is not installed or failed to load"
