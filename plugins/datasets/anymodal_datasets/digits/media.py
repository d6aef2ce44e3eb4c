"""Writing one sample's files: PNG, WAV, mp4, PLY and PyG ``.pt``.

Every writer takes the digit as scikit-learn gives it (``[8, 8]`` floats, ink 0-16) and
its :class:`~.plan.SamplePlan`, and writes one file through :func:`~.tools.atomic_path`.
Pillow, open3d, soundfile, torch and torch_geometric are imported here, in the worker
processes, never when the plugin is listed.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from .config import DigitsConfig
from .plan import SamplePlan
from .tools import ToolError, atomic_path, run_tool

__all__ = ["WRITERS", "digit_image", "graph_arrays", "point_cloud", "video_frames"]

_INK_MAX = 16.0  # load_digits() pixels are counts of ink in 4x4 blocks, 0..16


def _ink(pixels: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] (1: full ink). Shapes: ``[8, 8] -> [8, 8]``."""
    return np.clip(np.asarray(pixels, dtype=np.float32) / _INK_MAX, 0.0, 1.0)


def digit_image(pixels: np.ndarray, size: int) -> np.ndarray:
    """The digit as dark ink on white paper, upsampled (bicubic) to ``size``.

    Shapes:
        pixels: ``[8, 8]``; output: ``[size, size]`` uint8.
    """
    from PIL import Image

    ink = Image.fromarray(_ink(pixels), mode="F").resize((size, size), Image.BICUBIC)
    return (255.0 - np.clip(np.asarray(ink), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def video_frames(pixels: np.ndarray, plan: SamplePlan, size: int, frames: int) -> np.ndarray:
    """The digit moving, turning and scaling along ``plan.motion``.

    Each frame is drawn at twice the resolution (bilinear affine warp of the bicubic
    upsampled digit) and reduced with a box filter, which keeps thin strokes smooth.

    Shapes:
        pixels: ``[8, 8]``; output: ``[frames, size, size]`` uint8 (ink dark on white).
    """
    from PIL import Image

    big = 2 * size
    ink = np.clip(np.asarray(Image.fromarray(_ink(pixels), mode="F")
                             .resize((big, big), Image.BICUBIC)), 0.0, 1.0)
    base = Image.fromarray((ink * 255.0).round().astype(np.uint8), mode="L")
    centre, motion, out = big / 2.0, plan.motion, []
    for t in np.linspace(0.0, 1.0, frames):
        angle = math.radians(np.interp(t, (0, 1), motion.angle))
        scale = float(np.interp(t, (0, 1), motion.scale))
        dx = float(np.interp(t, (0, 1), motion.shift_x)) * big
        dy = float(np.interp(t, (0, 1), motion.shift_y)) * big
        # PIL maps each output pixel back into the input: p_in = A (p_out - c - d) + c.
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        ox, oy = centre + dx, centre + dy
        coeffs = (cos, sin, centre - cos * ox - sin * oy,
                  -sin, cos, centre + sin * ox - cos * oy)
        frame = base.transform((big, big), Image.AFFINE, coeffs, Image.BILINEAR, fillcolor=0)
        out.append(255 - np.asarray(frame.resize((size, size), Image.BOX)))
    return np.stack(out)


def point_cloud(pixels: np.ndarray, plan: SamplePlan, num_points: int,
                noise: float) -> np.ndarray:
    """Points on the ink, extruded to ``plan.thickness`` in z, with Gaussian noise.

    Points fall in 32x32 cells of the bilinear-upsampled digit with probability
    proportional to the ink above a faint threshold, uniformly inside the cell, and
    uniformly in depth.

    Shapes:
        pixels: ``[8, 8]``; output: ``[num_points, 3]`` float64, x right and y up in
        about ``[-1, 1]``.
    """
    from PIL import Image

    grid = 32
    ink = np.asarray(Image.fromarray(_ink(pixels), mode="F").resize((grid, grid),
                                                                     Image.BILINEAR))
    weight = np.clip(ink - 0.2, 0.0, None).ravel().astype(np.float64)
    if weight.sum() <= 0:  # a blank digit: spread points over the whole square
        weight = np.ones_like(weight)
    rng = np.random.default_rng(plan.noise_seed)
    cells = rng.choice(weight.size, size=num_points, p=weight / weight.sum())
    rows, cols = np.divmod(cells, grid)
    x = (cols + rng.random(num_points)) / grid * 2.0 - 1.0
    y = 1.0 - (rows + rng.random(num_points)) / grid * 2.0
    z = (rng.random(num_points) - 0.5) * plan.thickness
    points = np.stack([x, y, z], axis=1)
    return points + rng.normal(0.0, noise, size=points.shape)


def graph_arrays(pixels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k-nearest-neighbour graph of the ink pixels of the 8x8 digit.

    Nodes are the pixels with ink, in row-major order; features are
    ``[ink, x, y]`` (ink in [0, 1], x right and y up in [-1, 1]). Each node is joined to
    its ``k`` nearest nodes (ties broken by node order), and every edge is stored in both
    directions.

    Shapes:
        output: ``x [N, 3]`` float32, ``edge_index [2, E]`` int64 (sorted, no duplicates).
    """
    ink = _ink(pixels)
    rows, cols = np.nonzero(ink > 0)
    if rows.size == 0:  # a blank digit still needs one node
        rows, cols = np.array([3]), np.array([3])
    xy = np.stack([(cols - 3.5) / 3.5, (3.5 - rows) / 3.5], axis=1)
    x = np.concatenate([ink[rows, cols][:, None], xy], axis=1).astype(np.float32)
    n = len(x)
    distance = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :min(k, n - 1)]
    source = np.repeat(np.arange(n), nearest.shape[1])
    pairs = np.stack([source, nearest.ravel()], axis=1)
    pairs = np.unique(np.concatenate([pairs, pairs[:, ::-1]]), axis=0)
    return x, pairs.T.astype(np.int64).reshape(2, -1)


def write_image(pixels: np.ndarray, plan: SamplePlan, path: Path, config: DigitsConfig) -> None:
    from PIL import Image

    with atomic_path(path) as temporary:
        Image.fromarray(digit_image(pixels, config.image_size), mode="L").save(temporary)


def write_audio(pixels: np.ndarray, plan: SamplePlan, path: Path, config: DigitsConfig) -> None:
    """The number word spoken by espeak-ng (22,050 Hz mono 16-bit WAV)."""
    import soundfile

    speech = plan.speech
    with atomic_path(path) as temporary:
        run_tool(["espeak-ng", "-v", speech.voice, "-s", str(speech.speed),
                  "-p", str(speech.pitch), "-a", str(speech.amplitude),
                  "-w", str(temporary), "--", speech.word], what=str(path))
        if soundfile.info(str(temporary)).frames == 0:
            raise ToolError(f"espeak-ng wrote no audio for {speech.word!r} with voice "
                            f"{speech.voice!r} ({path})")


def write_video(pixels: np.ndarray, plan: SamplePlan, path: Path, config: DigitsConfig) -> None:
    """H.264 in mp4, yuv420p; bit-exact flags so that the bytes do not name the version."""
    frames = video_frames(pixels, plan, config.video_size, config.video_frames)
    side = f"{config.video_size}x{config.video_size}"
    with atomic_path(path) as temporary:
        run_tool(["ffmpeg", "-nostdin", "-y", "-loglevel", "error",
                  "-f", "rawvideo", "-pix_fmt", "gray", "-s", side,
                  "-r", str(config.video_fps), "-i", "-",
                  "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-threads", "1",
                  "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                  "-flags", "+bitexact", "-fflags", "+bitexact", "-map_metadata", "-1",
                  str(temporary)], what=str(path), stdin=frames.tobytes())


def write_pointcloud(pixels: np.ndarray, plan: SamplePlan, path: Path,
                     config: DigitsConfig) -> None:
    import open3d

    cloud = open3d.geometry.PointCloud()
    cloud.points = open3d.utility.Vector3dVector(
        point_cloud(pixels, plan, config.num_points, config.point_noise))
    with atomic_path(path) as temporary:
        if not open3d.io.write_point_cloud(str(temporary), cloud, write_ascii=False):
            raise ToolError(f"open3d could not write {path}")


def write_graph(pixels: np.ndarray, plan: SamplePlan, path: Path, config: DigitsConfig) -> None:
    """Write a PyG ``Data`` saved as ``Data.to_dict()``.

    Plain tensors, so that ``torch.load(weights_only=True)`` reads it with no allow-listed
    class.
    """
    import torch
    from torch_geometric.data import Data

    x, edge_index = graph_arrays(pixels, config.graph_k)
    # No ``y``: the label stays in the manifest, so no graph reader can leak it into training.
    data = Data(x=torch.from_numpy(x), edge_index=torch.from_numpy(edge_index))
    data.validate(raise_on_error=True)
    buffer = io.BytesIO()  # the archive's inner folder is then "archive", not the file name
    torch.save(data.to_dict(), buffer)
    with atomic_path(path) as temporary:
        temporary.write_bytes(buffer.getvalue())


WRITERS = {"image": write_image, "audio": write_audio, "video": write_video,
           "pointcloud": write_pointcloud, "graph": write_graph}
