"""The model folder format: ``config.yaml``, ``model.safetensors``, ``anymodal.json``.

This module knows files, not models: it writes a config text, a module's tensors and a
manifest, and reads them back. Nothing is unpickled on load. Building a model from what is
read is :meth:`anymodal.model.MultiModalModel.from_pretrained`'s job, so that this module
never imports the model (no import circle).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save_model as _save_safetensors

from anymodal._version import __version__
from anymodal.errors import ArtifactError
from anymodal.utils.atomic import atomic_directory, recover
from anymodal.utils.checksums import digest_files, verify_files

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "fingerprint",
    "read_manifest",
    "read_weights",
    "write_model_folder",
]

# 2: anymodal.json lists the size and SHA-256 of every file (version 1 had no checksums).
FORMAT_VERSION = 2
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "anymodal.json"
# Keys a loader relies on; a manifest without them is damaged, not merely old.
_REQUIRED = ("fingerprint", "files", "modalities", "objective")


def fingerprint(config_yaml: str, state: Mapping[str, torch.Tensor]) -> str:
    """The one fingerprint: a short hash of the config text and every tensor.

    Equal for a model and its saved copy; an index records it to refuse another model.

    Args:
        config_yaml: the model's config as YAML text.
        state: the model's ``state_dict()``.
    """
    digest = hashlib.sha256(config_yaml.encode())
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(raw.numpy().tobytes())
    return digest.hexdigest()[:16]


def write_model_folder(directory: str | os.PathLike[str], config_yaml: str,
                       module: torch.nn.Module, manifest: Mapping[str, Any],
                       extra: Callable[[Path], object] | None = None) -> Path:
    """Write a model folder crash-safely (:func:`anymodal.utils.atomic.atomic_directory`).

    ``anymodal.json`` lists the size and SHA-256 of the two other files, so that a damaged
    copy is refused at load.

    Args:
        directory: the destination folder (replaced as a whole if it exists).
        config_yaml: the text of ``config.yaml``.
        module: the module whose tensors go to ``model.safetensors`` (shared storage kept once).
        manifest: the rest of ``anymodal.json`` (``format_version`` and ``files`` added here).
        extra: writes further files into the staging folder (e.g. LoRA adapters); they are
            swapped in with the rest and listed with their checksums.
    """
    target = Path(directory)
    if target.exists() and not (target / MANIFEST_FILE).is_file() and any(target.iterdir()):
        raise ArtifactError(f"{target} exists and is not a model folder (no {MANIFEST_FILE}); "
                            "not replaced")
    with atomic_directory(target) as staging:
        (staging / CONFIG_FILE).write_text(config_yaml, encoding="utf-8")
        _save_safetensors(module, str(staging / WEIGHTS_FILE))
        if extra is not None:
            extra(staging)
        names = [p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()]
        files = digest_files(staging, names)
        body = {"format_version": FORMAT_VERSION, **manifest, "files": files}
        (staging / MANIFEST_FILE).write_text(json.dumps(body, indent=2) + "\n",
                                             encoding="utf-8")
    return target


def read_manifest(directory: str | os.PathLike[str], verify: bool = True) -> dict[str, Any]:
    """Read the ``anymodal.json`` of a model folder, checked.

    Presence and format are checked, and with ``verify`` the size and SHA-256 of every file
    it lists.

    Args:
        directory: the model folder.
        verify: check the listed files' checksums (a pass over the weights).

    Raises:
        ArtifactError: naming the missing or damaged file and what was expected.
    """
    folder = Path(directory)
    recover(folder)  # a crash mid-replace may have left the complete copy aside
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise ArtifactError(f"{folder} is not a model folder (no such directory)")
    for name in (CONFIG_FILE, WEIGHTS_FILE, MANIFEST_FILE):
        if not (folder / name).is_file():
            raise ArtifactError(f"{folder} is not a complete model folder: {name} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is damaged: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} is damaged: expected a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: format_version {version!r}, this anymodal ({__version__}) reads "
            f"{FORMAT_VERSION}"
        )
    for key in _REQUIRED:
        if key not in manifest:
            raise ArtifactError(f"{path} is damaged: key {key!r} is missing")
    if verify:
        verify_files(folder, manifest["files"], f"model folder's {MANIFEST_FILE}")
    return dict(manifest)


def read_weights(directory: str | os.PathLike[str],
                 map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` in a model folder.

    Args:
        directory: the model folder.
        map_location: the device the tensors are loaded onto.

    Raises:
        ArtifactError: the file cannot be parsed as safetensors.
    """
    path = Path(directory) / WEIGHTS_FILE
    try:
        return load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read as safetensors ({exc})") from None
