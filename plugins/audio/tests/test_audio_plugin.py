"""The plugin as anymodal sees it: entry point, registration, the modality contract."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

import anymodal
from anymodal.testing import check_modality


def test_found_through_its_entry_point() -> None:
    manager = anymodal.get_plugin_manager()
    info = next(p for p in manager.plugins.values() if "audio" in p.modalities)
    assert info.distribution == "anymodal-audio" and not info.builtin
    assert set(info.encoders) == {"audio_ast_tiny", "audio_cnn_small"}
    assert anymodal.get_modality("audio").default_encoder in info.encoders


def test_modality_contract_with_bad_files(media: Path, ffmpeg_media: Path) -> None:
    bad = [media / "missing.wav", str(media / "garbage.wav"), str(media / "empty.wav"),
           str(media / "nan.wav"), str(media / "garbage.xyz"),
           str(media / "truncated_stereo44k.flac"), str(ffmpeg_media / "video_only.mp4"),
           b"not audio" * 20]
    check_modality(anymodal.get_modality("audio"), bad_sources=bad)
    check_modality(anymodal.get_modality("audio", clip_seconds=0.5, n_mels=16,
                                         features="melspec"), bad_sources=bad[:2])


def test_spec_functions_pickle_for_dataloader_workers(media: Path) -> None:
    audio = anymodal.get_modality("audio", clip_seconds=0.5)
    load, transform = pickle.loads(pickle.dumps((audio.load, audio.transform)))
    item = transform(load(media / "mono16k.wav"), False)
    assert torch.equal(item, audio.transform(audio.load(media / "mono16k.wav"), False))


def test_a_dataloader_with_workers_batches_real_files(media: Path) -> None:
    audio = anymodal.get_modality("audio", clip_seconds=0.5, n_mels=32)
    paths = [media / "mono16k.wav", media / "stereo44k.flac"] * 2

    class Files(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> torch.Tensor:
            return audio.transform(audio.load(paths[i]), False)

    loader = torch.utils.data.DataLoader(Files(), batch_size=4, num_workers=2,
                                         collate_fn=audio.collate)
    (batch,) = list(loader)
    # 1 s and 1.5 s files give 3 evaluation clips of 0.5 s each (eval_clips=3).
    assert batch["features"].shape == (12, 48, 32) and batch["mask"].all()
    assert batch["item_index"].tolist() == torch.arange(4).repeat_interleave(3).tolist()
