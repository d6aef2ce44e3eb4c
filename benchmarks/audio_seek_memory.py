"""Peak memory to get one audio clip from a long WAV: whole decode vs seeking (issue 14).

Writes a long 48 kHz stereo WAV, then in a fresh subprocess per mode loads it with the
``audio`` modality and featurises one 1 s evaluation clip, reporting the peak resident
memory (``ru_maxrss``) and the wall time. ``whole`` forces the former behaviour (the file is
decoded whole, then cropped) by raising ``EAGER_SECONDS`` above the file's length.

Usage: python benchmarks/audio_seek_memory.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
import torch
torch.set_num_threads(1)
import anymodal
import anymodal_audio.io as audio_io
if sys.argv[2] == "whole":
    audio_io.EAGER_SECONDS = 1e12
spec = anymodal.get_modality("audio", clip_seconds=1.0, eval_clips=1)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
features = spec.transform(spec.load(sys.argv[1]), False)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"mode": sys.argv[2], "peak_mib": peak / 1024, "before_mib": base / 1024,
                  "seconds": seconds, "shape": list(features.shape)}))
"""


def _write_wav(path: Path, minutes: float) -> None:
    import numpy as np
    import soundfile

    rate = 48000
    with soundfile.SoundFile(path, "w", rate, 2, "PCM_16") as out:
        for _ in range(int(minutes * 60)):  # one second at a time: the writer stays small
            t = np.arange(rate) / rate
            out.write(np.stack([np.sin(2 * np.pi * 440 * t), np.cos(2 * np.pi * 220 * t)],
                               axis=1).astype(np.float32) * 0.3)


def main() -> None:
    """Run both modes and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "long.wav"
        _write_wav(path, args.minutes)
        print(json.dumps({"file_mib": path.stat().st_size / 2**20, "minutes": args.minutes}))
        for mode in ("whole", "seek"):
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], check=True,
                                 capture_output=True, text=True, env={"OMP_NUM_THREADS": "1",
                                                                      "PATH": ""})
            print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
