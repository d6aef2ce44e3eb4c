"""The override fuzz list of issue 14: every bad numeric option is a ConfigError naming it."""

from __future__ import annotations

import pytest

from anymodal.config import load_config
from anymodal.errors import ConfigError

BASE = ["modalities.a.modality=vector", "modalities.b.modality=vector",
        "data.val.kind=synthetic"]

# (override, the key the message must name). The first nine were accepted before (a model
# trained with 0 dimensions, gradient ascent, an untrained model saved...), most others
# ended in tracebacks from deep inside torch or the loop.
BAD = [
    ("train.max_steps=-1", "train.max_steps"),
    ("train.max_steps=0", "train.max_steps"),
    ("model.embed_dim=0", "model.embed_dim"),
    ("model.embed_dim=-4", "model.embed_dim"),
    ("modalities.a.lr_mult=-1", "modalities.a.lr_mult"),
    ("optim.weight_decay=-0.1", "optim.weight_decay"),
    ("optim.min_lr_ratio=2", "optim.min_lr_ratio"),
    ("data.max_bad_fraction=1.5", "data.max_bad_fraction"),
    ("train.keep=0", "train.keep"),
    ("data.batch_size=0", "data.batch_size"),
    ("data.batch_size=-8", "data.batch_size"),
    ("optim.lr=-1", "optim.lr"),
    ("optim.lr=0", "optim.lr"),
    ("optim.lr=nan", "optim.lr"),
    ("optim.lr=inf", "optim.lr"),
    ("train.grad_accum=0", "train.grad_accum"),
    ("train.log_every=0", "train.log_every"),
    ("model.logit_scale_init=0", "model.logit_scale_init"),
    ("model.logit_scale_init=-3", "model.logit_scale_init"),
    ("model.logit_scale_init=500", "model.logit_scale_init"),
    ("model.logit_scale_max=0", "model.logit_scale_max"),
    ("optim.eps=0", "optim.eps"),
    ("optim.betas=[0.9,1.0]", "optim.betas"),
    ("optim.betas=[-0.1,0.9]", "optim.betas"),
    ("optim.warmup_steps=-5", "optim.warmup_steps"),
    ("optim.grad_clip=-1", "optim.grad_clip"),
    ("train.checkpoint_every=-2", "train.checkpoint_every"),
    ("train.eval_every=-1", "train.eval_every"),
    ("train.seed=-1", "train.seed"),
    ("train.max_nonfinite=0", "train.max_nonfinite"),
    ("train.threads=0", "train.threads"),
    ("train.modality_dropout.p=1.5", "train.modality_dropout.p"),
    ("train.modality_dropout.min_present=0", "train.modality_dropout.min_present"),
    ("data.num_workers=-1", "data.num_workers"),
    ("data.train.size=0", "data.train.size"),
    ("data.val.size=-3", "data.val.size"),
    ("data.train.seed=-2", "data.train.seed"),
    ("data.train.missing={a: 1.5}", "data.train.missing.a"),
    ("data.batch_size=abc", "data.batch_size"),
    ("optim.lr=fast", "optim.lr"),
]


@pytest.mark.parametrize("override, key", BAD, ids=[o for o, _ in BAD])
def test_a_bad_numeric_override_is_a_config_error_naming_the_key(override: str, key: str
                                                                 ) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [*BASE, override])
    assert key in str(info.value)


def test_the_edges_of_each_range_are_accepted() -> None:
    config = load_config(None, [
        *BASE, "modalities.a.lr_mult=0", "optim.grad_clip=0", "train.checkpoint_every=0",
        "data.num_workers=0", "data.train.missing={a: 1.0}", "optim.min_lr_ratio=1",
        "data.max_bad_fraction=0", "optim.betas=[0.0,0.999]",
        "model.logit_scale_init=100", "train.max_steps=1", "train.seed=0"])
    assert config.train.max_steps == 1
