"""Media benchmarks: load + transform throughput and encoder forward time, per modality.

    python benchmarks/media.py                  # every section; writes benchmarks/results/media.md
    python benchmarks/media.py --only audio     # some sections; prints only (the file keeps
                                                # every modality, so it is written by full runs)

Each modality is one section: a function registered with ``@section("<name>")`` that
writes its input files in ``ctx.workdir`` (a fresh folder per section) and returns
:class:`Table`s. The shared helpers measure the same way for every modality:

- :func:`loader_throughput`: items/s through ``torch.utils.data.DataLoader`` calling the
  modality's ``load`` + ``transform`` + ``collate`` on real files, in the main process
  (``workers=0``) and with worker processes; a warm-up pass runs first (worker start-up,
  imports, caches) and is not timed. Every process runs one torch thread, as DataLoader
  workers do.
- :func:`encoder_timings`: median forward time in eval mode (no grad) and of a training
  step (forward + backward), on a synthetic batch of the modality, with ``--threads``
  torch threads (1 by default).

To add a modality, write ``@section("pointcloud") def bench_pointcloud(ctx) -> list[Table]``
next to the others; ``main`` runs sections in the order they are defined.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import anymodal

RESULTS = Path(__file__).resolve().parent / "results" / "media.md"
LOADER_BATCH = 8  # items per batch of every loading measurement


# -- the registry of sections ------------------------------------------------------------


@dataclass
class Table:
    """One markdown table of a section."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |",
                 "|" + "|".join("---" for _ in self.headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"


@dataclass
class Context:
    """What every section gets.

    Args:
        workdir: the section's own empty temporary folder, for the files it writes.
        workers: DataLoader worker processes of the parallel measurement.
        quick: fewer items and repeats (a smoke run; figures are noisier).
    """

    workdir: Path
    workers: int = 2
    quick: bool = False


SectionFn = Callable[[Context], list[Table]]
SECTIONS: dict[str, SectionFn] = {}


def section(name: str) -> Callable[[SectionFn], SectionFn]:
    """Register a modality's benchmark function under ``name``."""

    def add(fn: SectionFn) -> SectionFn:
        if name in SECTIONS:
            raise ValueError(f"benchmark section {name!r} is defined twice")
        SECTIONS[name] = fn
        return fn

    return add


# -- shared measurements -----------------------------------------------------------------


class _Items(torch.utils.data.Dataset):
    """``spec.transform(spec.load(source), train)`` over ``sources``, cycled to ``length``."""

    def __init__(self, spec: anymodal.ModalitySpec, sources: Sequence[Any], train: bool,
                 length: int) -> None:
        self.spec, self.sources, self.train, self.length = spec, list(sources), train, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        source = self.sources[index % len(self.sources)]
        return self.spec.transform(self.spec.load(source), self.train)


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def loader_throughput(spec: anymodal.ModalitySpec, sources: Sequence[Any], *, train: bool,
                      workers: int, items: int, batch_size: int = LOADER_BATCH) -> float:
    """Items per second through a DataLoader (load + transform + collate), after a warm-up.

    Args:
        spec: the modality, options bound.
        sources: real files (cycled).
        train: transform in training mode (random crops, augmentation).
        workers: DataLoader worker processes (0: the main process).
        items: items per timed pass.
        batch_size: items per batch.
    """
    dataset = _Items(spec, sources, train, items)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=spec.collate,
        persistent_workers=workers > 0,
    )
    with _torch_threads(1):
        for _ in loader:  # warm-up: worker start-up, lazy imports, first-call caches
            pass
        start = time.perf_counter()
        for _ in loader:
            pass
        elapsed = time.perf_counter() - start
    return items / elapsed


def encoder_timings(name: str, batch: Any, repeats: int,
                    params: dict[str, Any] | None = None) -> dict[str, float]:
    """Median milliseconds of an eval forward and of a train forward + backward.

    Returns:
        ``{"forward_ms", "train_step_ms", "params"}``.
    """
    torch.manual_seed(0)
    encoder = anymodal.create_encoder(name, **(params or {}))
    forward, step = [], []
    encoder.eval()
    with torch.no_grad():
        encoder(batch)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            encoder(batch)
            forward.append(time.perf_counter() - start)
    encoder.train()
    for _ in range(repeats + 1):
        start = time.perf_counter()
        encoder(batch).square().mean().backward()
        step.append(time.perf_counter() - start)
        encoder.zero_grad(set_to_none=True)
    return {
        "forward_ms": 1000 * statistics.median(forward),
        "train_step_ms": 1000 * statistics.median(step[1:]),
        "params": float(sum(p.numel() for p in encoder.parameters())),
    }


def loading_table(title: str, cases: list[tuple[str, anymodal.ModalitySpec, Sequence[Any], bool]],
                  ctx: Context, items: int, notes: list[str]) -> Table:
    """One row per ``(label, spec, sources, train)``: items/s in one process and with workers.

    ``notes`` describe the inputs; the table adds the batch size and items per timed pass.
    """
    rows = []
    for label, spec, sources, train in cases:
        single = loader_throughput(spec, sources, train=train, workers=0, items=items)
        multi = loader_throughput(spec, sources, train=train, workers=ctx.workers, items=items)
        rows.append([label, "train" if train else "eval", f"{single:.1f}", f"{multi:.1f}"])
    return Table(title, ["input", "mode", "1 process (items/s)",
                         f"DataLoader, {ctx.workers} workers (items/s)"], rows,
                 [*notes, f"batches of {LOADER_BATCH}; {items} items per timed pass"])


def throughput_table(title: str, spec: anymodal.ModalitySpec,
                     cases: list[tuple[str, Sequence[Any], bool]], ctx: Context,
                     items: int, notes: list[str]) -> Table:
    """:func:`loading_table` for cases ``(label, sources, train)`` of one modality ``spec``."""
    return loading_table(title, [(label, spec, sources, train) for label, sources, train in cases],
                         ctx, items, notes)


def encoder_table(title: str, modality: anymodal.ModalitySpec, names: list[str],
                  batch_size: int, input_desc: str, ctx: Context) -> Table:
    """Forward / train-step time of each encoder on one synthetic batch of ``modality``."""
    batch = modality.collate(modality.synthesize(batch_size, torch.Generator().manual_seed(0)))
    repeats = 2 if ctx.quick else 5
    rows = []
    for name in names:
        t = encoder_timings(name, batch, repeats)
        rows.append([f"`{name}`", f"{t['params'] / 1e3:.0f} k", f"{t['forward_ms']:.1f}",
                     f"{t['train_step_ms']:.1f}"])
    return Table(title, ["encoder", "parameters", f"forward, batch {batch_size} (ms)",
                         f"forward + backward, batch {batch_size} (ms)"], rows,
                 [f"input: {input_desc}; default encoder options; eval forward under "
                  f"`torch.no_grad()`; median of {repeats} runs; "
                  f"torch threads: {torch.get_num_threads()}"])


def run_ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-nostdin", "-loglevel", "error", *args], check=True)


# -- audio -------------------------------------------------------------------------------


@section("audio")
def bench_audio(ctx: Context) -> list[Table]:
    """10 s files (wav, mp3, an mp4's AAC track) to 2 s log-mel clips; the audio encoders."""
    from anymodal_audio.config import AudioConfig
    from anymodal_audio.synthetic import synth_waveform, write_audio

    config_items = 32 if ctx.quick else 96
    audio = anymodal.get_modality("audio")  # defaults: 16 kHz, 2 s clips, 128-bin fbank
    folder = ctx.workdir
    rate = 44100  # CD-rate sources: loading includes resampling to 16 kHz
    source_config = AudioConfig(sample_rate=rate, clip_seconds=10.0)
    wavs, mp3s, mp4s = [], [], []
    for i in range(4):
        wave = synth_waveform(i, torch.Generator().manual_seed(i), source_config)
        wave = wave.repeat(2)[: 10 * rate]  # 5 to 10 s of sound, looped to exactly 10 s
        wavs.append(write_audio(folder / f"{i}.wav", wave, rate))
        mp3s.append(write_audio(folder / f"{i}.mp3", wave, rate))
        mp4s.append(write_audio(folder / f"{i}.mp4", wave, rate, with_video=True))
    cases = [
        ("10 s wav, 44.1 kHz → 1 random 2 s clip + SpecAugment", wavs, True),
        ("10 s wav, 44.1 kHz → 3 × 2 s eval clips", wavs, False),
        ("10 s mp3, 44.1 kHz → 1 random 2 s clip + SpecAugment", mp3s, True),
        ("10 s mp4 AAC track (decord) → 1 random 2 s clip", mp4s, True),
    ]
    loading = throughput_table(
        "Audio: load + transform + collate", audio, cases, ctx, config_items,
        ["modality defaults: mono 16 kHz, Kaldi fbank 128 bins, 25 ms window, 10 ms shift "
         "(198 frames a clip); files resampled from 44.1 kHz (torchaudio; FFmpeg for the "
         "mp4 track)"],
    )
    encoders = encoder_table("Audio encoders", audio, ["audio_ast_tiny", "audio_cnn_small"], 8,
                             "8 synthetic items of 1 to 2 s, padded to [8, ≤198, 128] + mask",
                             ctx)
    return [loading, encoders]


# -- video -------------------------------------------------------------------------------


@section("video")
def bench_video(ctx: Context) -> list[Table]:
    """10 s 340x256 H.264 files to 8-frame 224x224 clips; the video encoders."""
    items = 16 if ctx.quick else 48
    video = anymodal.get_modality("video")  # defaults: 8 frames, short side 256, crop 224
    folder = ctx.workdir
    files = []
    for i in range(4):
        path = folder / f"{i}.mp4"
        run_ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=340x256:rate=25,hue=h={30 * i}",
                   "-t", "10", "-c:v", "libx264", "-g", "50", "-pix_fmt", "yuv420p", str(path))
        files.append(path)
    cases = [
        ("10 s mp4 340x256 25 fps → 8 frames 224² (uniform, jitter, crop, flip)", files, True),
        ("10 s mp4 340x256 25 fps → 8 frames 224² (segment centres, centre crop)", files,
         False),
    ]
    loading = throughput_table(
        "Video: load + transform + collate", video, cases, ctx, items,
        ["modality defaults: 8 frames sampled uniformly over the video, short side → 256, "
         "224² crop, ImageNet normalisation; decord with 1 decoding thread per video; "
         "H.264 with a keyframe every 2 s"],
    )
    encoders = encoder_table("Video encoders", video,
                             ["video_timesformer_tiny", "video_frames_mean"], 8,
                             "[8, 8, 3, 224, 224] synthetic clips", ctx)
    return [loading, encoders]


# -- text --------------------------------------------------------------------------------


@section("text")
def bench_text(ctx: Context) -> list[Table]:
    """In-memory sentences and ~2 KB UTF-8 .txt files to byte ids; the text encoders."""
    from anymodal_text.synthetic import make_sentences

    items = 256 if ctx.quick else 2048
    text = anymodal.get_modality("text")  # defaults: 256 byte ids, random window in training
    sentences, _ = make_sentences(64, torch.Generator().manual_seed(0))
    folder = ctx.workdir
    files = []
    for i in range(8):
        path = folder / f"{i}.txt"
        body = " ".join(make_sentences(60, torch.Generator().manual_seed(i))[0])
        path.write_text(f"Légende {i} — " + body, encoding="utf-8")  # ~2 KB, some non-ASCII
        files.append(path)
    cases = [
        ("in-memory template sentences (~30 bytes)", sentences, False),
        ("~2 KB .txt files → random 256-byte window", files, True),
        ("~2 KB .txt files → first 256 bytes", files, False),
    ]
    loading = throughput_table(
        "Text: load + transform + collate", text, cases, ctx, items,
        ["modality defaults: NFC normalisation, UTF-8 bytes + BOS/EOS, max_length 256; "
         "batches padded with an attention mask"],
    )
    batch = text.collate(text.synthesize(32, torch.Generator().manual_seed(0)))
    repeats = 2 if ctx.quick else 5
    rows = []
    # text_minilm is frozen by default (its train step is its forward); time fine-tuning.
    for name, params in [("text_transformer_tiny", {}), ("text_minilm", {"freeze": False})]:
        t = encoder_timings(name, batch, repeats, params)
        label = f"`{name}`" + (f" ({', '.join(f'{k}={v}' for k, v in params.items())})"
                               if params else "")
        rows.append([label, f"{t['params'] / 1e3:.0f} k", f"{t['forward_ms']:.1f}",
                     f"{t['train_step_ms']:.1f}"])
    encoders = Table(
        "Text encoders", ["encoder", "parameters", "forward, batch 32 (ms)",
                          "forward + backward, batch 32 (ms)"], rows,
        ["input: 32 synthetic sentences (byte ids padded to the longest, ≤ 70; text_minilm "
         "tokenises the raw strings with its WordPiece tokenizer inside forward, included "
         f"in the time); eval forward under `torch.no_grad()`; median of {repeats} runs, "
         f"{torch.get_num_threads()} torch threads"],
    )
    return [loading, encoders]


# -- image -------------------------------------------------------------------------------


def _photo_like(index: int, height: int = 480, width: int = 640) -> Any:
    """A ``PIL.Image`` with smooth colour regions, a shape and noise (compresses like a photo)."""
    import torch.nn.functional as F
    from PIL import Image

    from anymodal_image.synthetic import draw_images

    g = torch.Generator().manual_seed(index)
    field_ = F.interpolate(torch.rand(1, 3, 6, 8, generator=g), size=(height, width),
                           mode="bicubic", align_corners=False)[0]
    shape, _ = draw_images(1, height, g)
    canvas = field_.clone()
    left = (width - height) // 2
    canvas[:, :, left:left + height] = 0.5 * canvas[:, :, left:left + height] + 0.5 * (
        shape[0].float() / 255)
    canvas = (canvas + 0.02 * torch.randn(canvas.shape, generator=g)).clamp(0, 1)
    return Image.fromarray((canvas * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())


@section("image")
def bench_image(ctx: Context) -> list[Table]:
    """640x480 jpeg/png/webp files to 224² (and 96²) items; the image encoders."""
    import importlib.util

    items = 32 if ctx.quick else 128
    image = anymodal.get_modality("image")  # defaults: 224², ImageNet normalisation
    folder = ctx.workdir
    files: dict[str, list[Path]] = {"jpg": [], "png": [], "webp": []}
    for i in range(4):
        photo = _photo_like(i)
        for ext, options in (("jpg", {"quality": 90}), ("png", {}), ("webp", {"quality": 80})):
            path = folder / f"{i}.{ext}"
            photo.save(path, **options)
            files[ext].append(path)
    small = anymodal.get_modality("image", size=96)
    cases = [
        ("640x480 jpeg → 224² random resized crop + flip", image, files["jpg"], True),
        ("640x480 jpeg → 224² resize + centre crop", image, files["jpg"], False),
        ("640x480 png → 224² resize + centre crop", image, files["png"], False),
        ("640x480 webp → 224² resize + centre crop", image, files["webp"], False),
        ("640x480 jpeg → 96² resize + centre crop (CPU recipes)", small, files["jpg"], False),
    ]
    loading = loading_table(
        "Image: load + transform + collate", cases, ctx, items,
        ["Pillow decode (full image, then RGB), torchvision transforms.v2 on uint8 tensors "
         "(antialiased resize), float + ImageNet normalisation"],
    )
    names = ["image_vit_tiny", "image_cnn_small"]
    if importlib.util.find_spec("timm") is not None:
        names.append("image_timm")  # default model_name: resnet18, random weights
    encoders = encoder_table("Image encoders", image, names, 8,
                             "[8, 3, 224, 224] synthetic shapes (image_timm: resnet18)", ctx)
    return [loading, encoders]


# -- pointcloud --------------------------------------------------------------------------


@section("pointcloud")
def bench_pointcloud(ctx: Context) -> list[Table]:
    """10k-point scans (PLY, PCD, npy) and 5k-triangle meshes to 1024 points; the encoders."""
    import numpy as np
    import open3d as o3d

    items = 32 if ctx.quick else 96
    folder = ctx.workdir
    clouds: dict[str, list[Path]] = {"ply": [], "pcd": [], "npy": []}
    meshes: list[Path] = []
    for i in range(4):
        mesh = o3d.geometry.TriangleMesh.create_torus(1.0, 0.3 + 0.05 * i, 60, 40)
        mesh.compute_vertex_normals()  # 2,400 vertices, 4,800 triangles
        mesh.triangle_normals = o3d.utility.Vector3dVector()  # OBJ keeps vertex normals only
        meshes.append(folder / f"{i}.obj")
        o3d.io.write_triangle_mesh(str(meshes[-1]), mesh)
        o3d.utility.random.seed(i)
        cloud = mesh.sample_points_uniformly(10_000)
        colors = np.random.default_rng(i).uniform(size=(10_000, 3))
        cloud.colors = o3d.utility.Vector3dVector(colors)
        for ext in ("ply", "pcd"):
            clouds[ext].append(folder / f"{i}.{ext}")
            o3d.io.write_point_cloud(str(clouds[ext][-1]), cloud)
        clouds["npy"].append(folder / f"{i}.npy")
        np.save(clouds["npy"][-1], np.asarray(cloud.points, dtype=np.float32))

    def spec(**options: Any) -> anymodal.ModalitySpec:
        return anymodal.get_modality("pointcloud", **options)

    default = spec()  # 1024 points, xyz, FPS, uniform mesh sampling
    cases = [
        ("PLY scan, 10k pts → 1024 FPS + augmentation", default, clouds["ply"], True),
        ("PLY scan, 10k pts → 1024 FPS", default, clouds["ply"], False),
        ("PLY scan, 10k pts → 1024 voxel grid", spec(sampling="voxel"), clouds["ply"], False),
        ("PLY scan, 10k pts → 1024 random", spec(sampling="random"), clouds["ply"], False),
        ("PLY scan, 10k pts, xyz+rgb+normals → 1024 FPS",
         spec(use_colors=True, use_normals=True), clouds["ply"], False),
        ("PCD scan (binary), 10k pts → 1024 FPS", default, clouds["pcd"], False),
        ("npy array, 10k pts → 1024 FPS", default, clouds["npy"], False),
        ("OBJ mesh, 4.8k triangles → 2048 uniform samples → 1024 FPS", default, meshes,
         False),
        ("OBJ mesh, 4.8k triangles → 2048 Poisson-disk samples → 1024 FPS",
         spec(mesh_sampling="poisson"), meshes, False),
    ]
    loading = loading_table(
        "Point clouds: load + transform + collate", cases, ctx, items,
        ["modality defaults unless stated: 1024 points, xyz, unit-sphere normalisation, "
         "farthest-point sampling in numpy (1024 vectorised passes over the cloud); "
         "augmentation = rotation about y, scale 0.8–1.25, jitter σ 0.01; open3d 0.20 reads "
         "the files"],
    )
    encoders = encoder_table(
        "Point-cloud encoders", default, ["pointcloud_pointnet", "pointcloud_pointbert_tiny"],
        8, "[8, 1024, 3] synthetic primitives; Point-BERT: 32 FPS centres × 16 neighbours", ctx)
    return [loading, encoders]


# -- graph -------------------------------------------------------------------------------


@section("graph")
def bench_graph(ctx: Context) -> list[Table]:
    """Molecule-sized and 1k-node graphs from .pt, JSON and CSV files; the encoders."""
    import csv
    import json

    from torch_geometric.data import Data

    items = 64 if ctx.quick else 256
    folder = ctx.workdir
    files: dict[str, list[Path]] = {key: [] for key in
                                    ("small_pt", "small_data_pt", "small_json", "big_pt",
                                     "big_json", "big_csv")}
    for i in range(4):
        g = torch.Generator().manual_seed(i)
        for size, nodes, edges in (("small", 30, 64), ("big", 1000, 5000)):
            data = Data(x=torch.randn(nodes, 8, generator=g),
                        edge_index=torch.randint(0, nodes, (2, edges), generator=g))
            torch.save(data.to_dict(), folder / f"{size}{i}.pt")
            files[f"{size}_pt"].append(folder / f"{size}{i}.pt")
            path = folder / f"{size}{i}.json"
            path.write_text(json.dumps({"nodes": data.x.tolist(),
                                        "edges": data.edge_index.T.tolist()}))
            files[f"{size}_json"].append(path)
            if size == "small":
                torch.save(data, folder / f"data{i}.pt")
                files["small_data_pt"].append(folder / f"data{i}.pt")
            else:
                path = folder / f"{i}.csv"
                with open(path, "w", newline="") as f:
                    csv.writer(f).writerows(data.edge_index.T.tolist())
                files["big_csv"].append(path)
    graph = anymodal.get_modality("graph")  # feature_dim 16, undirected, degree features
    augmented = anymodal.get_modality("graph", edge_dropout=0.2, feature_noise=0.1)
    cases = [
        (".pt `Data.to_dict()`, 30 nodes, 64 edges, 8 features", graph, files["small_pt"],
         False),
        (".pt pickled `Data`, 30 nodes (weights_only + PyG safe globals)", graph,
         files["small_data_pt"], False),
        ("JSON, 30 nodes, 64 edges, 8 features", graph, files["small_json"], False),
        (".pt, 1,000 nodes, 5,000 edges, 8 features", graph, files["big_pt"], False),
        (".pt, 1,000 nodes + DropEdge 0.2 + feature noise", augmented, files["big_pt"], True),
        ("JSON, 1,000 nodes, 5,000 edges, 8 features", graph, files["big_json"], False),
        ("CSV edge list, 5,000 edges → degree one-hot features", graph, files["big_csv"],
         False),
    ]
    loading = loading_table(
        "Graphs: load + transform + collate", cases, ctx, items,
        ["modality defaults: features padded to 16 columns, edges made undirected and "
         "coalesced (PyG `to_undirected`), collate = `Batch.from_data_list`"],
    )
    encoders = encoder_table(
        "Graph encoders", graph, ["graph_gin", "graph_gat"], 32,
        "32 synthetic graphs (cycle, grid, tree, star, SBM) of 8 to 20 nodes, 16 features",
        ctx)
    return [loading, encoders]


# -- loaders against their decoders -------------------------------------------------------


def decoder_throughput(decode: Callable[[Any], Any], sources: Sequence[Any],
                       items: int) -> float:
    """Items per second of ``decode(source)`` alone, one process, after one warm-up pass."""
    with _torch_threads(1):
        for source in sources:
            decode(source)
        start = time.perf_counter()
        for index in range(items):
            decode(sources[index % len(sources)])
        return items / (time.perf_counter() - start)


def _decoders(ctx: Context) -> dict[str, tuple[list[Path], Callable[[Any], Any], str]]:
    """Per modality: two files, the raw decoder alone, and how it is called."""
    import decord
    import numpy as np
    import open3d as o3d
    import soundfile
    from PIL import Image

    from anymodal_audio.config import AudioConfig
    from anymodal_audio.synthetic import synth_waveform, write_audio
    from anymodal_video.sampling import sample_indices

    folder = ctx.workdir
    files: dict[str, list[Path]] = {k: [] for k in ("audio", "audio16", "video", "image", "pc",
                                                    "graph")}
    rate, video_config = 44100, anymodal.get_modality("video").config
    for i in range(2):
        wave = synth_waveform(i, torch.Generator().manual_seed(i),
                              AudioConfig(sample_rate=rate, clip_seconds=10.0))
        files["audio"].append(write_audio(folder / f"{i}.wav", wave.repeat(2)[:10 * rate], rate))
        wave = synth_waveform(i, torch.Generator().manual_seed(i), AudioConfig(clip_seconds=10.0))
        files["audio16"].append(write_audio(folder / f"{i}_16k.wav", wave.repeat(2)[:160_000],
                                            16000))
        files["video"].append(folder / f"{i}.mp4")
        run_ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=340x256:rate=25,hue=h={30 * i}", "-t",
                   "10", "-c:v", "libx264", "-g", "50", "-pix_fmt", "yuv420p",
                   str(files["video"][-1]))
        files["image"].append(folder / f"{i}.jpg")
        _photo_like(i).save(files["image"][-1], quality=90)
        cloud = o3d.geometry.PointCloud()
        cloud.points = o3d.utility.Vector3dVector(np.random.default_rng(i).normal(size=(10_000, 3)))
        files["pc"].append(folder / f"{i}.ply")
        o3d.io.write_point_cloud(str(files["pc"][-1]), cloud)
        g = torch.Generator().manual_seed(i)
        files["graph"].append(folder / f"{i}.pt")
        torch.save({"x": torch.randn(1000, 8, generator=g),
                    "edge_index": torch.randint(0, 1000, (2, 5000), generator=g)},
                   files["graph"][-1])

    def video(path: Path) -> Any:
        reader = decord.VideoReader(str(path), num_threads=1)
        indices = sample_indices(len(reader), reader.get_avg_fps(), True, video_config)
        return reader.get_batch(indices)

    return {
        "audio": (files["audio"], lambda p: soundfile.read(p, dtype="float32"),
                  "soundfile.read (whole 10 s file)"),
        "audio16": (files["audio16"], lambda p: soundfile.read(p, dtype="float32"),
                    "soundfile.read (whole 10 s file)"),
        "video": (files["video"], video, "decord open + get_batch of the 8 sampled frames"),
        "image": (files["image"], lambda p: Image.open(p).convert("RGB"),
                  "Pillow open + convert RGB"),
        "pc": (files["pc"], lambda p: np.asarray(o3d.io.read_point_cloud(str(p)).points),
               "open3d read_point_cloud"),
        "graph": (files["graph"], lambda p: torch.load(p, weights_only=True),
                  "torch.load (weights_only)"),
    }


@section("decoders")
def bench_decoders(ctx: Context) -> list[Table]:
    """Each loader beside its raw decoder, uncached and through the sample cache."""
    from omegaconf import OmegaConf

    from anymodal.data.sample_cache import with_sample_cache

    items = 16 if ctx.quick else 48
    decoders = _decoders(ctx)
    spec = anymodal.get_modality
    cases = [  # label, modality, files/decoder key, floor (what costs most beyond decoding)
        ("audio: 10 s wav 44.1 kHz → 2 s fbank clip + SpecAugment", spec("audio"), "audio",
         "resampling 44.1 → 16 kHz of the whole file; fbank"),
        ("audio: 10 s wav 16 kHz (the modality's rate) → 2 s fbank clip + SpecAugment",
         spec("audio"), "audio16", "fbank of the clip"),
        ("video: 10 s mp4 340x256 → 8 frames 224² (train)", spec("video"), "video",
         "decoding (normalisation of 8 × 224² frames next)"),
        ("image: 640x480 jpeg → 224² random resized crop", spec("image"), "image",
         "antialiased resize"),
        ("point cloud: 10k PLY → 1024 FPS, random start", spec("pointcloud"), "pc",
         "farthest-point sampling (1024 passes over 10k points), every epoch"),
        ("point cloud: 10k PLY → 1024 FPS, fps_start=first", spec("pointcloud",
         fps_start="first"), "pc", "farthest-point sampling, cached from epoch 2"),
        ("point cloud: 10k PLY → 1024 random", spec("pointcloud", sampling="random"), "pc",
         "normalisation"),
        ("graph: 1k nodes, 5k edges .pt", spec("graph"), "graph", "to_undirected + coalesce"),
    ]
    rows = []
    for index, (label, modality, key, floor) in enumerate(cases):
        paths, decode, _ = decoders[key]
        files = [str(path) for path in paths]  # absolute paths, as manifests resolve them
        raw = decoder_throughput(decode, files, items)
        loader = loader_throughput(modality, files, train=True, workers=0, items=items)
        cache = OmegaConf.create({"dir": str(ctx.workdir / f"cache{index}")})
        cached_spec = with_sample_cache({key: modality}, cache)[key]
        # loader_throughput's untimed warm-up pass fills the cache; the timed pass reads it
        cached = loader_throughput(cached_spec, files, train=True, workers=0, items=items)
        rows.append([label, f"{raw:.1f}", f"{loader:.1f}", f"{raw / loader:.2f}x",
                     f"{cached:.1f}", f"{cached / loader:.2f}x", floor])
    notes = [f"{key}: {how}" for key, (_, _, how) in decoders.items() if key != "audio16"]
    return [Table("Loaders against their decoders (1 process, 1 torch thread, train mode)",
                  ["input", "raw decoder (items/s)", "loader (items/s)",
                   "decoder / loader", "cached loader (items/s)", "cached / loader",
                   "what sets the loader's floor"], rows,
                  ["raw decoder: " + "; ".join(notes),
                   "loader: the modality's load + transform + collate (batches of "
                   f"{LOADER_BATCH}); cached "
                   "loader: the same through the sample cache (data.cache), which stores the "
                   "transform's deterministic prefix (ModalitySpec.prepare) and reads it from "
                   "epoch 2 on", f"{items} items per timed pass, files cycled (page cache warm)"])]


# -- driver ------------------------------------------------------------------------------


def machine() -> str:
    """``2-core CPU, no GPU (AMD EPYC)``-style description of this machine."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                      if line.startswith("Model name")), model)
    gpu = (f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU")
    return f"{os.cpu_count()}-core CPU, {gpu} ({model})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated sections "
                        f"({', '.join(SECTIONS)}); prints without writing the results file")
    parser.add_argument("--quick", action="store_true", help="fewer items (smoke run)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for encoder timings (default 1: on a small shared "
                        "CPU, OpenMP threads that wait on each other dominate the figures)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")

    command = "python benchmarks/media.py " + " ".join(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    parts = [f"# Media benchmarks\n\nMachine: {machine()}; torch {torch.__version__}; "
             f"load average {os.getloadavg()[0]:.1f} at start (the CPU is shared).\n\n"
             f"Command: `{command.strip()}`\n"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            section_start = time.perf_counter()
            workdir = Path(tmp) / name
            workdir.mkdir()
            tables = SECTIONS[name](Context(workdir, workers=args.workers, quick=args.quick))
            parts.append(f"## {name}\n\n" + "\n".join(t.markdown() for t in tables)
                         + f"\n_section time: {time.perf_counter() - section_start:.0f} s_\n")
            print(parts[-1], flush=True)
    parts.append(f"Total time: {time.perf_counter() - started:.0f} s.\n")
    if args.only:
        print(parts[0] + parts[-1])
    else:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("\n".join(parts))
        print(parts[0] + parts[-1] + f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
