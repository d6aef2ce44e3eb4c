"""The training loop: resume after a SIGKILL, two processes, bad rows, accumulation."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from anymodal.config import load_config
from anymodal.errors import AnymodalError, DataError
from anymodal.training import train
from anymodal.training.checkpoint import latest_checkpoint
from tests.conftest import PYTHON, REPO, vector_overrides
from tests.training.interrupted_runs import (
    HOOK_PLUGIN,
    cli_train,
    final_weights,
    sigkill_then_resume,
)
from tests.training.vector_files import manifest_config, vector_rows, write_manifest

# Every objective, with its own randomness: Symile's shuffled negatives (a generator the
# objective holds), and modality dropout (on by default for symile and gram).
RESUME_CASES = {
    "clip": ["objective.name=clip"],
    "siglip": ["objective.name=siglip"],
    "symile_n": ["objective.name=symile", "objective.params.negatives=n"],
    "symile_n_squared": ["objective.name=symile", "objective.params.negatives=n_squared"],
    "gram": ["objective.name=gram"],
    "mv_infonce": ["objective.name=mv_infonce"],
    "mv_dhel": ["objective.name=mv_dhel"],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_sigkill_then_resume_gives_the_same_weights(tmp_path: Path, cli_env: dict[str, str],
                                                    case: str) -> None:
    # 40 rows / batch 8 = 5 batches per epoch: the resumed part crosses an epoch boundary.
    common = [*RESUME_CASES[case], "data.train.size=40", "data.batch_size=8",
              "train.max_steps=8", "train.checkpoint_every=3", "train.deterministic=true",
              "logging.progress=false", "train.eval_every=0", "data.val=null"]
    a, b = sigkill_then_resume(tmp_path, cli_env, common, kill_at=5, checkpoint=3, steps=8)
    for key in a:  # bit-identical
        assert torch.equal(a[key], b[key]), (case, key, float((a[key] - b[key]).abs().max()))


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_before_exiting(tmp_path: Path, cli_env: dict[str, str]
                                                   ) -> None:
    (tmp_path / "stop_hook.py").write_text(HOOK_PLUGIN)
    run = tmp_path / "run"
    result = cli_train([f"train.output_dir={run}", "train.max_steps=20", "data.val=null",
                         "logging.progress=false"], cli_env, tmp_path,
                        {"STOP_AT_STEP": "2", "STOP_SIGNAL": "SIGTERM"})
    assert result.returncode == 130, result.stderr[-3000:]
    assert latest_checkpoint(run) == run / "checkpoints" / "step_2"


@pytest.mark.slow
def test_two_gloo_processes_train_together(tmp_path: Path, cli_env: dict[str, str]) -> None:
    overrides = ["train.max_steps=2", "train.log_every=1", "logging.progress=false",
                 "data.val=null", "train.eval_every=0"]
    two = tmp_path / "two"
    launched = subprocess.run(
        [str(Path(PYTHON).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes",
         "2", "-m", "anymodal", "train", "recipes/smoke_clip.yaml", *overrides,
         "data.batch_size=16", f"train.output_dir={two}"],
        cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
    one = tmp_path / "one"
    single = cli_train([*overrides, "data.batch_size=32", f"train.output_dir={one}"], cli_env)
    assert single.returncode == 0, single.stderr[-3000:]
    first_two = json.loads((two / "metrics.jsonl").read_text().splitlines()[0])
    first_one = json.loads((one / "metrics.jsonl").read_text().splitlines()[0])
    assert first_two["train/world_size"] == 2 and first_one["train/world_size"] == 1
    # Same global batch (rows 0..31 of the same shuffled order), negatives gathered with
    # gradient across the two processes: the same loss as one process holding all of it.
    assert first_two["train/loss"] == pytest.approx(first_one["train/loss"], abs=1e-5)


def _write_manifest(tmp_path: Path) -> Path:
    rows = vector_rows(tmp_path, 24, keys="ab", labels=True)
    for row in rows[::5]:
        row["b"] = None  # a missing modality, not an error
    (tmp_path / "a3.npy").write_bytes(b"this is not a numpy file")  # corrupt
    rows[7]["a"] = "does_not_exist.npy"  # missing file
    return write_manifest(tmp_path, rows)


def _manifest_config(tmp_path: Path, manifest: Path, *extra: str):
    return manifest_config(tmp_path, manifest, "data.max_bad_fraction=0.5", "train.max_steps=6",
                           *extra)


def test_bad_rows_are_skipped_and_reported(tmp_path: Path) -> None:
    manifest = _write_manifest(tmp_path)
    result = train(_manifest_config(tmp_path, manifest))
    assert result.step == 6
    bad = [json.loads(line) for line in
           (tmp_path / "run" / "bad_samples.jsonl").read_text().splitlines()]
    reasons = {b["id"]: b["reason"] for b in bad}
    assert set(reasons) == {"r3", "r7"}
    assert "no .npy header" in reasons["r3"]
    assert "not found" in reasons["r7"]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_bad_rows_raise_when_asked(tmp_path: Path) -> None:
    manifest = _write_manifest(tmp_path)
    config = _manifest_config(tmp_path, manifest, "data.on_error=raise")
    with pytest.raises(DataError, match=r"(a3\.npy|does_not_exist\.npy)"):
        train(config)


def test_too_many_bad_rows_stop_the_run(tmp_path: Path) -> None:
    manifest = _write_manifest(tmp_path)
    config = _manifest_config(tmp_path, manifest, "data.max_bad_fraction=0.01")
    with pytest.raises(AnymodalError, match="max_bad_fraction"):
        train(config)


def test_checkpoints_rotate_and_model_folder_loads(tmp_path: Path) -> None:
    import anymodal

    config = load_config(None, [*vector_overrides(tmp_path), "train.max_steps=6",
                                "train.checkpoint_every=2", "train.keep=2"])
    train(config)
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step_4", "step_6"]
    model = anymodal.load_model(tmp_path / "run" / "model")
    assert set(model.modalities) == {"a", "b"}
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n")
               if x]
    assert [r["step"] for r in records if "train/loss" in r] == [1, 2, 3, 4, 5, 6]
    assert any("val/a->b/R@1" in r for r in records)
    assert (tmp_path / "run" / "metrics.csv").is_file()


def test_frozen_encoder_and_lr_multiplier(tmp_path: Path) -> None:
    import anymodal

    config = load_config(None, [*vector_overrides(tmp_path), "modalities.a.freeze=true",
                                "modalities.b.lr_mult=0.0", "train.max_steps=3"])
    torch.manual_seed(0)
    before = anymodal.MultiModalModel(config).state_dict()
    train(config)
    after = final_weights(tmp_path / "run")
    for key in after:
        if key.startswith("encoders.a.") or key.startswith("encoders.b.") \
                or key.startswith("heads.b."):
            torch.testing.assert_close(after[key], before[key], msg=key)
    assert not torch.equal(after["heads.a.net.weight"], before["heads.a.net.weight"])


def test_nonfinite_losses_stop_with_step_and_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from anymodal.model import MultiModalModel

    real = MultiModalModel.compute_loss

    def poisoned(self, batch):
        out = real(self, batch)
        return {**out, "loss": out["loss"] * float("nan")}

    monkeypatch.setattr(MultiModalModel, "compute_loss", poisoned)
    config = load_config(None, [*vector_overrides(tmp_path), "train.max_nonfinite=3",
                                "data.val=null"])
    with pytest.raises(AnymodalError, match=r"3 non-finite losses in a row; stopped at step 0 "
                                            r"\(batch ids \['syn-0-"):
        train(config)
    skipped = [r for r in caplog.records if "non-finite loss at step 1" in r.getMessage()]
    assert len(skipped) == 3 and all(r.name == "anymodal.training" for r in skipped)


def test_gradient_accumulation_is_the_mean_of_micro_batch_gradients(tmp_path: Path) -> None:
    """Accumulating 4 micro-batches of B must step on the mean of their gradients.

    Why not "equal to one batch of 4B": a contrastive loss takes its negatives from the batch,
    so a row of a micro-batch of B sees B-1 negatives where it would see 4B-1 in a batch of
    4B: the losses (and gradients) differ in general; accumulation is exact only for the
    mean of per-micro-batch losses, which is what is checked here. The second part shows the
    difference for clip, so that nobody takes one for the other.
    """
    import anymodal
    from anymodal.data.build import build_dataloader, build_dataset

    overrides = [*vector_overrides(tmp_path), "data.val=null", "train.max_steps=1",
                 "optim.warmup_steps=0", "optim.grad_clip=0", "optim.weight_decay=0",
                 "train.grad_accum=4", "data.batch_size=4", "data.train.size=64"]
    config = load_config(None, overrides)
    torch.manual_seed(config.train.seed)
    reference = anymodal.MultiModalModel(config)
    train(config)
    trained = final_weights(tmp_path / "run")

    # The same 16 rows, in the order the loop's seeded sampler gives them.
    dataset = build_dataset(config.data.train, reference.modalities, True, "raise")
    loader = build_dataloader(dataset, reference.modalities, 4, shuffle=True,
                              seed=config.train.seed)
    from accelerate import Accelerator, DataLoaderConfiguration

    loader = Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(
        use_seedable_sampler=True)).prepare(loader)
    loader.set_epoch(0)
    micro = [b for _, b in zip(range(4), loader)]
    params = {n: p for n, p in reference.named_parameters() if p.requires_grad}
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    for batch in micro:
        reference.zero_grad()
        (reference(batch, return_loss=True)["loss"] / 4).backward()
        for n, p in params.items():
            if p.grad is not None:
                grads[n] += p.grad
    optimizer = torch.optim.AdamW(params.values(), lr=config.optim.lr,
                                  betas=tuple(config.optim.betas), eps=config.optim.eps,
                                  weight_decay=0.0)
    for n, p in params.items():
        p.grad = grads[n]
    optimizer.step()
    for n, p in params.items():
        torch.testing.assert_close(trained[n], p.detach(), atol=1e-6, rtol=1e-5, msg=n)

    # One batch of 16 rows gives a different gradient for clip (more negatives).
    from anymodal.data.collate import collate_rows

    rows = [dataset[i] for i in range(16)]
    whole = collate_rows(rows, reference.modalities)
    quarter = collate_rows(rows[:4], reference.modalities)
    with torch.no_grad():
        big = reference(whole, return_loss=True)["loss"]
        small = reference(quarter, return_loss=True)["loss"]
    assert abs(float(big) - float(small)) > 1e-3


def test_smoke_recipes_train(tmp_path: Path) -> None:
    for recipe in sorted((REPO / "recipes").glob("smoke_*.yaml")):
        run = tmp_path / recipe.stem
        config = load_config(recipe, [f"train.output_dir={run}", "train.max_steps=3",
                                      "logging.progress=false", "train.eval_every=3",
                                      "data.train.size=64", "data.val.size=32"])
        result = train(config)
        assert result.step == 3, recipe
        assert (run / "model" / "model.safetensors").is_file()
        assert "val/loss" in result.metrics, recipe

