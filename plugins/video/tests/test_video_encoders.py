"""The video encoders: contract checks and what each is sensitive to."""

from __future__ import annotations

import pytest
import torch

import anymodal
from anymodal.testing import check_encoder

SMALL_VIDEO = {"size": 32, "num_frames": 4}
SMALL = {
    "video_timesformer_tiny": {"image_size": 32, "patch_size": 8, "num_frames": 4,
                               "embed_dim": 32, "num_heads": 2},
    "video_frames_mean": {"channels": [8, 16], "width": 24},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_contract_with_small_clips(name: str) -> None:
    check_encoder(anymodal.get_encoder_spec(name), SMALL[name], SMALL_VIDEO)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_contract_with_default_224_clips(name: str) -> None:
    check_encoder(anymodal.get_encoder_spec(name))


def test_timesformer_reads_other_frame_counts_and_sizes() -> None:
    torch.manual_seed(0)
    encoder = anymodal.create_encoder("video_timesformer_tiny", **SMALL["video_timesformer_tiny"])
    for shape in [(2, 4, 3, 32, 32), (2, 6, 3, 48, 40), (1, 1, 3, 16, 16)]:
        assert encoder(torch.randn(shape)).shape == (shape[0], 32)


def test_timesformer_sees_frame_order_and_frames_mean_does_not() -> None:
    torch.manual_seed(0)
    clip = torch.randn(1, 4, 3, 32, 32)
    reversed_clip = clip.flip(1)
    former = anymodal.create_encoder("video_timesformer_tiny",
                                     **SMALL["video_timesformer_tiny"]).eval()
    # time_fc starts at zero (as in TimeSformer); give temporal attention a voice.
    for block in former.blocks:
        torch.nn.init.normal_(block.time_fc.weight, std=0.2)
    mean = anymodal.create_encoder("video_frames_mean", **SMALL["video_frames_mean"]).eval()
    with torch.no_grad():
        assert not torch.allclose(former(clip), former(reversed_clip), atol=1e-4)
        torch.testing.assert_close(mean(clip), mean(reversed_clip), atol=1e-5, rtol=1e-5)


def test_bad_inputs_say_what_was_expected() -> None:
    encoder = anymodal.create_encoder("video_frames_mean")
    with pytest.raises(ValueError, match=r"\[batch, frames, 3, height, width\]"):
        encoder(torch.randn(2, 3, 32, 32))
    former = anymodal.create_encoder("video_timesformer_tiny")
    with pytest.raises(ValueError, match="smaller than patch_size"):
        former(torch.randn(1, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="temporal_pool"):
        anymodal.create_encoder("video_frames_mean", temporal_pool="median")


def test_tiny_defaults_are_tiny() -> None:
    for name in SMALL:
        params = sum(p.numel() for p in anymodal.create_encoder(name).parameters())
        assert params < 500_000, f"{name} has {params} parameters"
