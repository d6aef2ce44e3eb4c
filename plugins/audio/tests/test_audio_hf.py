"""``audio_hf``: a tiny random wav2vec2 and its feature extractor, loaded from a folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.testing import check_encoder, check_trains_and_reloads, save_tiny_hf_model


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer wav2vec2 (16 kHz) and its feature extractor."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 4),
                            conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2, feat_extract_norm="layer")
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True,
                                         do_normalize=True)
    return save_tiny_hf_model(tmp_path_factory.mktemp("tiny_wav2vec2"), Wav2Vec2Model,
                              config, extractor)


def _options(folder: Path) -> dict:
    return {"processor": str(folder), "clip_seconds": 0.25, "eval_clips": 2}


def test_the_feature_extractor_runs_in_the_transform(tiny_wav2vec2: Path) -> None:
    audio = anymodal.get_modality("audio", **_options(tiny_wav2vec2))
    long_item = audio.transform(torch.randn(8000) * 0.1, False)  # 0.5 s: two clips
    short_item = audio.transform(torch.randn(2000) * 0.1, False)
    assert long_item["input_values"].shape == (2, 4000)
    assert short_item["input_values"].shape == (1, 2000)
    batch = audio.collate([long_item, short_item])
    assert batch["hf_inputs"]["input_values"].shape == (3, 4000)
    assert batch["hf_mask"].sum(1).tolist() == [4000, 4000, 2000]
    assert batch["item_index"].tolist() == [0, 0, 1]
    with pytest.raises(anymodal.ConfigError, match="set the option sample_rate to 16000"):
        anymodal.get_modality("audio", processor=str(tiny_wav2vec2),
                              sample_rate=8000).transform(torch.randn(4000), False)


def test_contract_and_padding_independence(tiny_wav2vec2: Path) -> None:
    spec = anymodal.get_encoder_spec("audio_hf")
    check_encoder(spec, {}, _options(tiny_wav2vec2))
    check_encoder(spec, {"pooling": "cls", "layer": "encoder.layers.0"}, _options(tiny_wav2vec2))
    audio = anymodal.get_modality("audio", **_options(tiny_wav2vec2))
    encoder = anymodal.create_encoder("audio_hf", audio).eval()
    assert encoder.config.model == str(tiny_wav2vec2) and encoder.width == 32
    short = audio.transform(torch.randn(2000) * 0.1, False)
    longer = audio.transform(torch.randn(4000) * 0.1, False)
    with torch.no_grad():
        alone = encoder(audio.collate([short]))
        padded = encoder(audio.collate([short, longer]))
    torch.testing.assert_close(padded[0], alone[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("freeze", [False, True])
def test_trains_saves_and_reloads_bit_identically(tiny_wav2vec2: Path, tmp_path: Path,
                                                  freeze: bool) -> None:
    check_trains_and_reloads({
        "audio": {"encoder": "audio_hf", "options": _options(tiny_wav2vec2),
                  "params": {"freeze": freeze}},
        "v": {"modality": "vector"},
    }, tmp_path / "model")
