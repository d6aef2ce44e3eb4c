"""The plugin as anymodal sees it: entry point, registration, the modality contract."""

from __future__ import annotations

import pickle
import types
from pathlib import Path

import torch

import anymodal
from anymodal.testing import check_modality, check_registered


def test_found_through_its_entry_point() -> None:
    encoders = {"audio_ast_tiny", "audio_cnn_small", "audio_hf"}
    assert set(check_registered("audio", "anymodal-audio", encoders).encoders) == encoders


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


def test_a_plugin_derives_my_audio_from_audio() -> None:
    """A plugin registered after the audio plugin builds ``my_audio`` on it."""
    from anymodal.plugin_host.manager import PluginManager

    def my_audio() -> anymodal.ModalitySpec:
        return anymodal.derive_modality("my_audio", base="audio", n_mels=24, clip_seconds=0.5,
                                        default_encoder="my_audio_cnn_small")

    def my_audio_cnn() -> anymodal.EncoderSpec:
        return anymodal.derive_encoder("my_audio_cnn_small", base="audio_cnn_small",
                                       modality="my_audio")

    hooks = anymodal.plugin_hooks(modalities=[my_audio], encoders=[my_audio_cnn])
    plugin = types.SimpleNamespace(anymodal_register_modalities=hooks[0],
                                   anymodal_register_encoders=hooks[1])
    manager = PluginManager(allow=["audio"]).load()
    assert manager.register_plugin(plugin, name="my_audio_plugin"), manager.failures
    spec = manager.modalities.get("my_audio")
    assert spec.config.n_mels == 24 and spec.default_encoder == "my_audio_cnn_small"
    derived = manager.encoders.get("my_audio_cnn_small")
    params = anymodal.authoring.bind_encoder_params(derived, spec, {"channels": [8], "width": 8})
    encoder = derived.factory(derived.config_cls(**params))
    batch = spec.collate(spec.synthesize(3, torch.Generator().manual_seed(0)))
    assert batch["features"].shape[-1] == 24 and encoder(batch).shape == (3, 8)
