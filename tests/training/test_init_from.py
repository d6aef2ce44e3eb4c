"""``train.init_from``: a trained two-modality space gains a third modality.

The old modalities embed the same inputs bit for bit afterwards, only the new modality's
parameters reach the optimiser, the new modality retrieves the old ones on held-out rows,
contradicting recipes are refused naming the key, and a killed run resumes exactly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import anymodal.training.loop as loop_module
from anymodal.config import load_config
from anymodal.data.synthetic import SyntheticDataset
from anymodal.errors import ArtifactError, ConfigError
from anymodal.model import MultiModalModel, load_model, save_model
from anymodal.model.core import DEFAULT_LOGIT_SCALE
from anymodal.retrieval.evaluation import EmbeddedRows, evaluate_retrieval
from anymodal.training import train
from anymodal.training.checkpoint import latest_checkpoint
from anymodal.training.init_from import initial_model
from tests.conftest import PYTHON, REPO, vector_overrides

# Tiny and quick: 512 synthetic rows of 16 classes, batch 32, 50 steps.
DATA = ["data.train.size=512", "data.batch_size=32", "train.max_steps=50", "optim.lr=3e-3",
        "data.val.kind=synthetic", "data.val.size=128", "data.val.seed=1",
        "train.log_every=50", "logging.progress=false"]
# The new modality: another vector view of the same classes, with its own random map.
NEW = ["modalities.c.modality=vector", "modalities.c.options.view_seed=3",
       "modalities.c.params.width=32", "modalities.c.params.hidden=32"]
HELD_OUT_SEED = 7  # neither the training rows (seed 0) nor the validation rows (seed 1)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained two-modality (a, b) model folder."""
    tmp = tmp_path_factory.mktemp("init_from_base")
    train(load_config(None, [*vector_overrides(tmp), *DATA, f"train.output_dir={tmp / 'base'}"]))
    return tmp / "base" / "model"


def _new_run(base: Path, out: Path, *extra: str) -> list[str]:
    """Overrides of a recipe that names only the new modality c."""
    return [*NEW, *DATA, "model.embed_dim=16", f"train.init_from={base}",
            f"train.output_dir={out}", *extra]


def _held_out(model: MultiModalModel, size: int = 256) -> tuple[dict[str, list[Any]],
                                                                  torch.Tensor]:
    """Items of every modality of ``model`` and their labels, from rows no run saw."""
    rows = [SyntheticDataset(model.modalities, size, seed=HELD_OUT_SEED)[i] for i in range(size)]
    items = {key: [row["items"][key] for row in rows] for key in model.modalities}
    return items, torch.tensor([row["label"] for row in rows])


def _retrieval(model: MultiModalModel, items: dict[str, list[Any]], labels: torch.Tensor,
               tasks: str) -> dict[str, dict[str, float]]:
    """The library's retrieval metrics of ``tasks`` on the held-out rows (label positives)."""
    model.eval()
    embeddings = {key: model.embed(key, values, progress=False) for key, values in items.items()}
    present = {key: torch.ones(len(labels), dtype=torch.bool) for key in items}
    rows = EmbeddedRows(embeddings, present, labels, name="held-out rows")
    return evaluate_retrieval(model, rows, tasks, positives="label")


def test_the_old_modalities_stay_bit_identical_and_the_new_one_binds(
        base_model: Path, tmp_path: Path) -> None:
    config = load_config(None, _new_run(base_model, tmp_path / "new"))
    _, untrained = initial_model(config)  # the run's model at step 0
    train(config)
    before, after = load_model(base_model), load_model(tmp_path / "new" / "model")
    assert list(after.modalities) == ["a", "b", "c"]
    items, labels = _held_out(after)
    for key in ("a", "b"):
        assert torch.equal(before.embed(key, items[key], progress=False),
                           after.embed(key, items[key], progress=False)), key
    old = before.state_dict()
    new = after.state_dict()
    for name, tensor in old.items():
        if not name.startswith("objective."):
            assert torch.equal(tensor, new[name]), name  # includes the frozen logit scale

    trained = _retrieval(after, items, labels, "c->a,c->b")
    fresh = _retrieval(untrained, items, labels, "c->a,c->b")
    for task in ("c->a", "c->b"):
        chance = trained[task]["chance_R@1"]
        print(f"{task}: R@1 {trained[task]['R@1']:.3f} after training, "
              f"{fresh[task]['R@1']:.3f} untrained, chance {chance:.3f}")
        assert 0.04 < chance < 0.1  # 16 classes
        assert trained[task]["R@1"] > 0.8 and trained[task]["R@1"] > 8 * chance
        assert fresh[task]["R@1"] < 3 * chance  # what training added, not the data alone


@pytest.fixture
def optimisers(monkeypatch: pytest.MonkeyPatch) -> list[torch.optim.Optimizer]:
    """The optimisers the training loop builds (the real ones, recorded)."""
    built: list[torch.optim.Optimizer] = []
    real = loop_module.build_optimizer

    def recording(model: MultiModalModel, config: Any) -> torch.optim.AdamW:
        built.append(real(model, config))
        return built[-1]

    monkeypatch.setattr(loop_module, "build_optimizer", recording)
    return built


def _optimised(optimiser: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for group in optimiser.param_groups for p in group["params"]]


def test_only_the_new_modality_reaches_the_optimiser(
        base_model: Path, tmp_path: Path, optimisers: list[torch.optim.Optimizer],
        capsys: pytest.CaptureFixture[str]) -> None:
    # The recipe restates a and b exactly as saved (vector_overrides), encoder named.
    overrides = [*vector_overrides(tmp_path), "modalities.a.encoder=vector_mlp",
                 *_new_run(base_model, tmp_path / "new", "train.max_steps=3")]
    train(load_config(None, overrides))
    model = load_model(tmp_path / "new" / "model")
    new_params = [*model.encoders["c"].parameters(), *model.heads["c"].parameters(),
                  model.missing["c"]]
    in_optimiser = _optimised(optimisers[0])
    assert len(in_optimiser) == len(new_params)
    assert sum(p.numel() for p in in_optimiser) == sum(p.numel() for p in new_params)
    table = capsys.readouterr().out
    for key in ("a", "b"):
        assert any(line.startswith(key) and line.rstrip().endswith("all (init_from)")
                   for line in table.splitlines()), table
    assert any(line.startswith("c ") and line.rstrip().endswith("no")
               for line in table.splitlines()), table
    assert "logit scale frozen" in table


def test_the_logit_scale_trains_when_asked(base_model: Path, tmp_path: Path,
                                           optimisers: list[torch.optim.Optimizer]) -> None:
    train(load_config(None, _new_run(base_model, tmp_path / "new", "train.max_steps=3",
                                     "train.init_from_logit_scale=train")))
    saved = load_file(str(base_model / "model.safetensors"))["log_logit_scale"]
    trained = load_file(str(tmp_path / "new" / "model" / "model.safetensors"))
    new_tensors = 1 + 1 + len(list(load_model(tmp_path / "new" / "model")
                                   .encoders["c"].parameters()))  # + head + missing
    assert [len(_optimised(o)) for o in optimisers] == [new_tensors + 1]  # the scale too
    assert not torch.equal(trained["log_logit_scale"], saved)


def _lora_model(folder: Path) -> Path:
    """A saved a, b model whose encoder a carries LoRA adapters (non-zero, so they count)."""
    config = load_config(None, [*vector_overrides(folder), "modalities.a.lora.r=2",
                                "modalities.a.lora.alpha=4",
                                "modalities.a.lora.target_modules=[net.0,net.3]"])
    torch.manual_seed(0)
    model = MultiModalModel(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    return save_model(model, folder / "lora_model")


def test_a_saved_lora_modality_is_loaded_with_its_adapters_and_frozen(
        tmp_path: Path, optimisers: list[torch.optim.Optimizer]) -> None:
    saved = _lora_model(tmp_path)
    train(load_config(None, _new_run(saved, tmp_path / "new", "train.max_steps=3",
                                     "data.val=null")))
    before = load_file(str(saved / "model.safetensors"))
    after = load_file(str(tmp_path / "new" / "model" / "model.safetensors"))
    assert any("lora_" in name for name in before)
    for name, tensor in before.items():
        if not name.startswith("objective."):
            assert torch.equal(tensor, after[name]), name
    model = load_model(tmp_path / "new" / "model")
    new_params = [*model.encoders["c"].parameters(), *model.heads["c"].parameters()]
    assert len(_optimised(optimisers[0])) == len(new_params) + 1  # + c's missing embedding
    with pytest.raises(ConfigError, match=r"modalities\.a\.lora\.r: the recipe says 4"):
        train(load_config(None, [*vector_overrides(tmp_path), "modalities.a.lora.r=4",
                                 "modalities.a.lora.alpha=4",
                                 "modalities.a.lora.target_modules=[net.0,net.3]",
                                 *_new_run(saved, tmp_path / "other")]))


@pytest.mark.parametrize(("mode", "start", "learned"), [
    ("frozen", "saved", False), ("train", "saved", True), ("recipe", "init", True)])
def test_the_logit_scale_starts_as_asked(base_model: Path, tmp_path: Path, mode: str,
                                         start: str, learned: bool) -> None:
    config = load_config(None, _new_run(base_model, tmp_path / "new",
                                        f"train.init_from_logit_scale={mode}"))
    _, model = initial_model(config)
    saved = load_file(str(base_model / "model.safetensors"))["log_logit_scale"]
    expected = saved if start == "saved" else torch.tensor(
        math.log(float(config.model.logit_scale_init or DEFAULT_LOGIT_SCALE)))
    assert torch.equal(model.log_logit_scale.detach(), expected)
    assert model.log_logit_scale.requires_grad is learned


@pytest.mark.parametrize(("extra", "message"), [
    (["model.embed_dim=32"], r"model\.embed_dim: the recipe says 32, .* trained with 16"),
    (["model.head=mlp"], r"model\.head: the recipe says 'mlp'"),
    (["model.center=true"], r"model\.center: the recipe builds centred heads, but "
                            r"train\.init_from's model has uncentred ones"),
    (["modalities.a.modality=vector", "modalities.a.options.view_seed=1",
      "modalities.a.params.width=32", "modalities.a.params.hidden=64"],
     r"modalities\.a\.params\.hidden: the recipe says 64, .* has 32; its modality 'a' is "
     r"loaded as saved and frozen"),
    (["modalities.b.modality=vector", "modalities.b.options.view_seed=5",
      "modalities.b.params.width=32", "modalities.b.params.hidden=32"],
     r"modalities\.b\.options\.view_seed: the recipe says 5, .* has 2"),
    (["model.logit_scale_max=2.0", "model.logit_scale_init=1.0"],
     r"model\.logit_scale_max is 2\.0, below the frozen logit scale"),
])
def test_a_recipe_that_contradicts_the_saved_model_is_refused(
        base_model: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train(load_config(None, _new_run(base_model, tmp_path / "new", *extra)))
    # Refused from the saved config.yaml before the run claimed its folder (the built
    # heads' centring and the loaded scale are known only once the model is built).
    built = any(key in extra[0] for key in ("center", "logit_scale"))
    assert (tmp_path / "new").exists() is built


def test_a_recipe_that_adds_nothing_is_refused(base_model: Path, tmp_path: Path) -> None:
    overrides = [*vector_overrides(tmp_path), f"train.init_from={base_model}"]
    with pytest.raises(ConfigError, match=r"train\.init_from: the recipe adds no modality to "
                                          r"those of .* \(a, b\)"):
        train(load_config(None, overrides))


def test_a_path_that_is_not_a_model_is_refused(base_model: Path, tmp_path: Path) -> None:
    run_folder = base_model.parent
    with pytest.raises(ConfigError, match=r"train\.init_from: .* is not a model folder \(has "
                                          r"no anymodal\.json\); did you mean its model folder"):
        train(load_config(None, _new_run(run_folder, tmp_path / "one")))
    with pytest.raises(ConfigError, match=r"train\.init_from: .*nowhere is not a model folder "
                                          r"\(does not exist\)"):
        train(load_config(None, _new_run(tmp_path / "nowhere", tmp_path / "two")))
    # nothing written: the corrected command may use the same output folder
    assert not (tmp_path / "one").exists() and not (tmp_path / "two").exists()


def test_a_damaged_model_is_refused_by_its_checksums(base_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(base_model, copy)
    weights = copy / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0x01
    weights.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"train\.init_from: .*model\.safetensors"):
        train(load_config(None, _new_run(copy, tmp_path / "new")))


def test_the_frozen_modalities_features_come_from_the_feature_cache(
        base_model: Path, tmp_path: Path) -> None:
    # Files (the cache keys items by path): 16 rows of random vectors, two epochs of batch 8.
    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        for key in "abc":
            np.save(tmp_path / f"{key}{i}.npy", rng.normal(size=32).astype(np.float32))
        rows.append({"id": f"r{i}", **{key: f"{key}{i}.npy" for key in "abc"}})
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    common = ["data.train.kind=manifest", f"data.train.path={manifest}", "data.batch_size=8",
              "data.val=null", "train.max_steps=4", "train.log_every=1", "train.threads=1",
              "data.num_workers=0"]
    cache = tmp_path / "features"
    train(load_config(None, _new_run(base_model, tmp_path / "plain", *common)))
    train(load_config(None, _new_run(base_model, tmp_path / "cached", *common,
                                     f"data.feature_cache.dir={cache}")))
    # a and b (frozen by init_from) are cached, one entry per item; c trains, uncached
    assert sorted(p.name for p in cache.iterdir()) == ["a", "b"]
    assert len(list(cache.rglob("*.safetensors"))) == 2 * len(rows)

    def losses(run: Path) -> list[float]:
        return [json.loads(line)["train/loss"] for line in
                (run / "metrics.jsonl").read_text().splitlines() if "train/loss" in line]

    assert losses(tmp_path / "cached") == losses(tmp_path / "plain")


STOP_HOOK = '''
import os, signal
from anymodal import hookimpl

@hookimpl
def anymodal_on_step_end(step, metrics, state):
    if step == int(os.environ["STOP_AT_STEP"]):
        os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.mark.slow
def test_a_killed_init_from_run_resumes_exactly(base_model: Path, tmp_path: Path,
                                               cli_env: dict[str, str]) -> None:
    common = _new_run(base_model, tmp_path / "unused", "data.train.size=40",
                      "data.batch_size=8", "train.max_steps=8", "train.checkpoint_every=3",
                      "train.deterministic=true", "data.val=null", "train.log_every=1")
    straight = tmp_path / "straight"
    train(load_config(None, [*common, f"train.output_dir={straight}"]))

    killed = tmp_path / "killed"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: init_from_resume\n")
    (tmp_path / "stop_hook.py").write_text(STOP_HOOK)
    env = {**cli_env, "PYTHONPATH": f"{tmp_path}{os.pathsep}{cli_env.get('PYTHONPATH', '')}",
           "ANYMODAL_PLUGIN_MODULES": "stop_hook", "STOP_AT_STEP": "5"}
    first = subprocess.run([PYTHON, "-m", "anymodal", "train", str(recipe), *common,
                            f"train.output_dir={killed}"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert latest_checkpoint(killed) == killed / "checkpoints" / "step_3"

    resumed = train(load_config(None, [*common, f"train.output_dir={killed}",
                                       "train.resume=auto"]))
    assert resumed.step == 8
    a = load_file(str(straight / "model" / "model.safetensors"))
    b = load_file(str(killed / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:  # bit-identical, the trained new modality included
        assert torch.equal(a[key], b[key]), (key, float((a[key] - b[key]).abs().max()))
    saved = load_file(str(base_model / "model.safetensors"))
    assert all(torch.equal(saved[k], b[k]) for k in saved if not k.startswith("objective."))
