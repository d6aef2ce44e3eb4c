"""A model folder on disk: ``config.yaml``, ``model.safetensors``, ``anymodal.json``.

Nothing is unpickled on load. The folder is written beside its destination under a
temporary name and renamed, so that a crash never leaves half a model where a good one was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save_model as _save_safetensors

from anymodal._version import __version__
from anymodal.config import load_config, to_yaml
from anymodal.errors import ConfigError, PluginError
from anymodal.plugins import get_plugin_manager

if TYPE_CHECKING:
    from anymodal.model import MultiModalModel

__all__ = ["FORMAT_VERSION", "fingerprint", "load_model", "read_manifest", "save_model"]

FORMAT_VERSION = 1
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "anymodal.json"


def _provenance(model: MultiModalModel) -> dict[str, Any]:
    """Which plugin (distribution, version) provided each modality, encoder and objective."""
    manager = get_plugin_manager()

    def entry(kind: str, name: str) -> dict[str, str]:
        info = manager.plugin_for(kind, name)
        return {"name": name, "plugin": info.name, "distribution": info.distribution,
                "version": info.version}

    modalities = {
        key: {"modality": entry("modalities", spec.name),
              "encoder": entry("encoders", model.encoder_names[key])}
        for key, spec in model.modalities.items()
    }
    objective = entry("objectives", model.config.objective.name)
    distributions = {objective["distribution"]: objective["version"]}
    for parts in modalities.values():
        for part in parts.values():
            distributions[part["distribution"]] = part["version"]
    return {"modalities": modalities, "objective": objective, "distributions": distributions}


def save_model(model: MultiModalModel, directory: str | os.PathLike[str]) -> Path:
    """Write the model folder atomically; returns its path."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        (staging / CONFIG_FILE).write_text(to_yaml(model.config))
        _save_safetensors(model, str(staging / WEIGHTS_FILE))
        manifest = {
            "format_version": FORMAT_VERSION,
            "anymodal_version": __version__,
            "torch_version": torch.__version__,
            "fingerprint": fingerprint(model),
            **_provenance(model),
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            backup = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(backup)
            staging.rename(target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def fingerprint(model: MultiModalModel) -> str:
    """A short hash of the config and every weight: equal for a model and its saved copy."""
    digest = hashlib.sha256(to_yaml(model.config).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``anymodal.json`` of a model folder, checked for presence and format."""
    folder = Path(directory)
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a model folder (no such directory)")
    for name in (CONFIG_FILE, WEIGHTS_FILE, MANIFEST_FILE):
        if not (folder / name).is_file():
            raise ConfigError(f"{folder} is not a complete model folder: {name} is missing")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ConfigError(
            f"{path}: format_version {version!r}, this anymodal ({__version__}) reads "
            f"{FORMAT_VERSION}"
        )
    return dict(manifest)


def _check_plugins(manifest: dict[str, Any], folder: Path) -> None:
    manager = get_plugin_manager()
    needed = [("objective", "objectives", manifest["objective"])]
    for key, parts in manifest["modalities"].items():
        needed.append((f"modality {key!r}", "modalities", parts["modality"]))
        needed.append((f"encoder of {key!r}", "encoders", parts["encoder"]))
    for what, kind, part in needed:
        if part["name"] in getattr(manager, kind):
            continue
        dist = part["distribution"]
        failure = manager.failure_for(part["plugin"]) or manager.failure_for(dist)
        why = (f"its plugin failed to load: {failure.reason}" if failure
               else f"install it: pip install {dist}")
        raise PluginError(
            f"{folder} needs {what} {part['name']!r} from plugin {part['plugin']!r} "
            f"(distribution {dist} {part['version']}), which is not available; {why}"
        )


def load_model(directory: str | os.PathLike[str],
               map_location: str | torch.device = "cpu") -> MultiModalModel:
    """Rebuild a model from its folder: plugins checked first, then config and weights."""
    from anymodal.model import MultiModalModel

    folder = Path(directory)
    manifest = read_manifest(folder)
    _check_plugins(manifest, folder)
    config = load_config(folder / CONFIG_FILE)
    model = MultiModalModel(config)
    state = load_file(str(folder / WEIGHTS_FILE), device=str(map_location))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ from what config.yaml builds
        raise ConfigError(f"{folder / WEIGHTS_FILE} does not match {folder / CONFIG_FILE}: "
                          f"{str(exc).splitlines()[-1].strip()}") from None
    # save_model drops tensors that share storage; they come back through their twin.
    missing = [k for k in missing if k not in _shared_names(model)]
    if missing or unexpected:
        raise ConfigError(
            f"{folder / WEIGHTS_FILE} does not match {folder / CONFIG_FILE}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.to(map_location)
    model.eval()
    return model


def _shared_names(model: torch.nn.Module) -> set[str]:
    seen: dict[int, str] = {}
    shared: set[str] = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        ptr = tensor.data_ptr()
        if ptr in seen and ptr != 0:
            shared.add(name)
        seen[ptr] = name
    return shared
