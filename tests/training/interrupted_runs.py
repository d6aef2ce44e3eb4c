"""Training runs stopped by a signal from a hook plugin, and the kill-then-resume check.

Shared by the loop's resume tests (``tests/training/test_training_loop.py``) and the
mixture's (``tests/data/test_mixture.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file

from anymodal.config import load_config
from anymodal.training import train
from anymodal.training.checkpoint import latest_checkpoint
from tests.conftest import PYTHON, REPO

# A plugin module (``stop_hook``) that sends STOP_SIGNAL to its own process at STOP_AT_STEP.
HOOK_PLUGIN = '''
import os, signal
from anymodal import hookimpl

@hookimpl
def anymodal_on_step_end(step, metrics, state):
    if step == int(os.environ.get("STOP_AT_STEP", "-1")):
        os.kill(os.getpid(), getattr(signal, os.environ["STOP_SIGNAL"]))
'''
SMOKE = REPO / "recipes" / "smoke_clip.yaml"


def cli_train(overrides: list[str], env: dict[str, str], plugin_dir: Path | None = None,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``anymodal train`` of the smoke recipe in a subprocess.

    Args:
        overrides: ``key=value`` overrides of the recipe.
        env: the subprocess's environment.
        plugin_dir: a folder holding ``stop_hook.py`` (:data:`HOOK_PLUGIN`), loaded as a
            plugin module; ``None``: no hook.
        extra_env: more variables (``STOP_AT_STEP``, ``STOP_SIGNAL``).
    """
    env = dict(env)
    if plugin_dir is not None:
        env["PYTHONPATH"] = f"{plugin_dir}{os.pathsep}{env.get('PYTHONPATH', '')}"
        env["ANYMODAL_PLUGIN_MODULES"] = "stop_hook"
    env.update(extra_env or {})
    return subprocess.run([PYTHON, "-m", "anymodal", "train", "recipes/smoke_clip.yaml",
                           *overrides], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``run``'s saved model."""
    return load_file(str(run / "model" / "model.safetensors"))


def sigkill_then_resume(tmp_path: Path, env: dict[str, str], common: list[str], *,
                        kill_at: int, checkpoint: int, steps: int
                        ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The final weights of a straight run and of one SIGKILLed, then resumed.

    The straight and resumed parts train in this process; the killed part runs under the CLI
    (a SIGKILL leaves no chance to clean up). Asserts that the kill left the last checkpoint
    at step ``checkpoint`` and no model, and that the resumed run reached ``steps``.

    Args:
        tmp_path: the folder of both runs and of the hook plugin.
        env: the CLI run's environment.
        common: overrides of the smoke recipe both runs share (``train.max_steps`` =
            ``steps``, a ``train.checkpoint_every`` that saves ``checkpoint``).
        kill_at: the step whose end the CLI run is killed at.
        checkpoint: the last checkpoint before ``kill_at``.
        steps: the runs' ``train.max_steps``.
    """
    (tmp_path / "stop_hook.py").write_text(HOOK_PLUGIN)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train(load_config(SMOKE, [*common, f"train.output_dir={straight}"]))
    first = cli_train([*common, f"train.output_dir={killed}"], env, tmp_path,
                      {"STOP_AT_STEP": str(kill_at), "STOP_SIGNAL": "SIGKILL"})
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert not (killed / "model").exists()
    assert latest_checkpoint(killed) == killed / "checkpoints" / f"step_{checkpoint}"
    resumed = train(load_config(SMOKE, [*common, f"train.output_dir={killed}",
                                        "train.resume=auto"]))
    assert resumed.step == steps
    a, b = final_weights(straight), final_weights(killed)
    assert a.keys() == b.keys()
    return a, b
