"""The plugin as anymodal sees it, and one mp4 feeding both audio and video."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.testing import check_modality, check_registered


def test_found_through_its_entry_point() -> None:
    encoders = {"video_timesformer_tiny", "video_frames_mean", "video_hf"}
    assert set(check_registered("video", "anymodal-video", encoders).encoders) == encoders


def test_modality_contract_with_bad_files(videos: Path) -> None:
    bad = [videos / "missing.mp4", str(videos / "garbage.mp4"), str(videos / "truncated.mp4"),
           str(videos / "audio_only.m4a"), str(videos / "no_frames.mp4"),
           str(videos / "garbage.xyz"), b"not a video" * 50]
    check_modality(anymodal.get_modality("video", size=32, num_frames=4), bad_sources=bad)
    check_modality(anymodal.get_modality("video"), bad_sources=bad[:1])


def test_spec_functions_pickle_for_dataloader_workers(videos: Path) -> None:
    video = anymodal.get_modality("video", size=32, num_frames=4)
    load, transform = pickle.loads(pickle.dumps((video.load, video.transform)))
    assert torch.equal(transform(load(videos / "clip.mp4"), False),
                       video.transform(video.load(videos / "clip.mp4"), False))


def test_one_mp4_feeds_the_audio_and_the_video_modality(videos: Path) -> None:
    pytest.importorskip("anymodal_audio", reason="the anymodal-audio plugin is not installed")
    if "audio" not in anymodal.list_modalities():
        pytest.skip("the anymodal-audio plugin is installed but not loaded")
    path = videos / "clip_audio.mp4"
    audio = anymodal.get_modality("audio", clip_seconds=1.0, n_mels=32, eval_clips=1)
    video = anymodal.get_modality("video", size=32, num_frames=4)
    sound = audio.transform(audio.load(path), False)
    clip = video.transform(video.load(path), False)
    assert sound.shape == (98, 32) and clip.shape == (4, 3, 32, 32)
    with pytest.raises(anymodal.DataError, match="has no audio stream"):
        audio.load(videos / "clip.mp4")
