"""The audio encoders: contract checks, masking, clip averaging."""

from __future__ import annotations

import pytest
import torch

import anymodal
from anymodal.testing import check_encoder

SMALL_AUDIO = {"clip_seconds": 1.0, "n_mels": 32}
ENCODERS = ["audio_ast_tiny", "audio_cnn_small"]


@pytest.mark.parametrize("name", ENCODERS)
def test_contract_with_default_options(name: str) -> None:
    check_encoder(anymodal.get_encoder_spec(name))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("audio_ast_tiny", {"patch_time": 8, "patch_freq": 8, "embed_dim": 32, "num_heads": 2,
                            "depth": 1}),
        ("audio_cnn_small", {"channels": [8, 16], "width": 24}),
    ],
)
def test_contract_with_small_options(name: str, params: dict) -> None:
    # n_mels is not repeated: the encoder takes it from the modality's options.
    check_encoder(anymodal.get_encoder_spec(name), params, SMALL_AUDIO)
    audio = anymodal.get_modality("audio", **SMALL_AUDIO)
    encoder = anymodal.create_encoder(name, audio, **params)
    assert encoder.config.n_mels == 32
    assert encoder.width == params.get("width", params.get("embed_dim"))


def test_n_mels_that_contradicts_the_modality_is_a_config_error() -> None:
    audio = anymodal.get_modality("audio", n_mels=32)
    with pytest.raises(anymodal.ConfigError, match=r"n_mels=64.*n_mels=32"):
        anymodal.create_encoder("audio_cnn_small", audio, n_mels=64)


@pytest.mark.parametrize(
    ("name", "params"),
    [("audio_ast_tiny", {}), ("audio_cnn_small", {}), ("audio_cnn_small", {"convs_per_block": 2})],
)
def test_padding_never_leaks_into_a_row(name: str, params: dict) -> None:
    """Garbage in padded frames, and any amount of padding, leave a row's output alone."""
    torch.manual_seed(0)
    encoder = anymodal.create_encoder(name, n_mels=32, **params).eval()
    item = torch.randn(37, 32)  # not a multiple of any patch or pooling size
    alone = encoder({"features": item[None], "mask": torch.ones(1, 37, dtype=torch.bool)})
    padded = torch.full((2, 90, 32), 1e4)
    padded[0, :37] = item
    padded[1] = torch.randn(90, 32)
    mask = torch.zeros(2, 90, dtype=torch.bool)
    mask[0, :37] = True
    mask[1] = True
    with torch.no_grad():
        both = encoder({"features": padded, "mask": mask})
    torch.testing.assert_close(both[0], alone[0].detach(), atol=1e-4, rtol=1e-4)
    assert torch.isfinite(both).all()


@pytest.mark.parametrize("name", ENCODERS)
def test_eval_clips_are_averaged_per_item(name: str) -> None:
    torch.manual_seed(0)
    encoder = anymodal.create_encoder(name, n_mels=32).eval()
    audio = anymodal.get_modality("audio", clip_seconds=0.5, n_mels=32, eval_clips=3)
    long_wave = torch.randn(24000) * 0.1  # 1.5 s: three 0.5 s clips
    short_wave = torch.randn(4000) * 0.1
    items = [audio.transform(long_wave, False), audio.transform(short_wave, False)]
    assert items[0].dim() == 3 and items[1].dim() == 2
    with torch.no_grad():
        out = encoder(audio.collate(items))
        per_clip = encoder(audio.collate(list(items[0].unbind(0))))
        short = encoder(audio.collate(items[1:]))
    assert out.shape == (2, encoder.width)
    torch.testing.assert_close(out[0], per_clip.mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[1], short[0], atol=1e-4, rtol=1e-4)


def test_wrong_mel_count_and_too_long_inputs_say_what_to_change() -> None:
    encoder = anymodal.create_encoder("audio_ast_tiny", n_mels=64, max_frames=64)
    with pytest.raises(ValueError, match="n_mels=64"):
        encoder({"features": torch.randn(1, 10, 32), "mask": torch.ones(1, 10, dtype=bool)})
    with pytest.raises(ValueError, match="max_frames"):
        encoder({"features": torch.randn(1, 100, 64), "mask": torch.ones(1, 100, dtype=bool)})
    cnn = anymodal.create_encoder("audio_cnn_small", n_mels=64)
    with pytest.raises(ValueError, match="n_mels=64"):
        cnn(torch.randn(1, 10, 32))


def test_tiny_defaults_are_tiny() -> None:
    for name in ENCODERS:
        params = sum(p.numel() for p in anymodal.create_encoder(name).parameters())
        assert params < 500_000, f"{name} has {params} parameters"
