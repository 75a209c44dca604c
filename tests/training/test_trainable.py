"""trainer.freeze, trainer.train_only (Frankle et al. 2020) and optimizer.lr_scale: which
parameters move, and by how much."""
import pytest
import torch

from optlab.errors import ConfigError
from optlab.optim.optimizers import set_lr
from optlab.runs.folder import load_checkpoint
from optlab.training.build import build
from optlab.training.api import train
from optlab.training.trainable import matches, norm_parameter_names


def initial_and_final(cfg) -> tuple[dict, dict, dict]:
    """The parameters the run starts from (the same seed builds the same init), its final
    checkpoint and its summary."""
    initial = {k: v.clone() for k, v in build(cfg).model.named_parameters()}
    result = train(cfg)
    return initial, load_checkpoint(result.run_dir / "checkpoint.pt"), result.summary


def test_prefixes_match_at_dots_and_globs_match_anywhere():
    assert matches("features.1.0.weight", "features.1")
    assert matches("features.1.0.weight", "features")
    assert not matches("features.10.0.weight", "features.1")
    assert matches("features.2.0.bias", "features.*.bias")
    assert not matches("head.weight", "features.*")


def test_frozen_parameters_end_bitwise_where_they_started(compose_cfg):
    # adam with weight decay and an L2 penalty: any decay or state on them would move them
    cfg = compose_cfg("trainer.freeze=[features]", "optimizer=adam", "optimizer.weight_decay=0.1",
                      "regularize.l2=0.01", "trainer.epochs=2")
    initial, ckpt, _ = initial_and_final(cfg)
    features = [k for k in initial if k.startswith("features.")]
    assert features and all(torch.equal(ckpt["model"][k], initial[k]) for k in features)
    assert not torch.equal(ckpt["model"]["head.weight"], initial["head.weight"])
    # the optimizer never saw them: state for the head's two tensors only
    assert len(ckpt["optimizer"]["state"]) == 2
    assert sum(len(g["params"]) for g in ckpt["optimizer"]["param_groups"]) == 2


def test_frozen_parameters_have_no_gradient(compose_cfg):
    parts = build(compose_cfg("trainer.freeze=[features.1, head.bias]"))
    frozen = {k for k, p in parts.model.named_parameters() if not p.requires_grad}
    assert frozen == {"features.1.0.weight", "features.1.0.bias", "head.bias"}
    assert len(parts.params) == len(list(parts.model.parameters())) - 3


def test_a_pattern_that_matches_nothing_names_the_prefixes(compose_cfg):
    with pytest.raises(ConfigError, match=r"trainer.freeze: featurs matches no parameter; the parameters are "
                                          r"under: features.1.0, features.2.0, head$"):
        build(compose_cfg("trainer.freeze=[featurs]"))
    with pytest.raises(ConfigError, match="every parameter is frozen"):
        build(compose_cfg("trainer.freeze=[features, head]"))


def test_train_only_norm_without_norm_layers_exits_2(compose_cfg):
    with pytest.raises(ConfigError, match=r"trainer.train_only=norm: norm=none gives the model no normalization"):
        build(compose_cfg("trainer.train_only=norm"))


def test_train_only_norm_plus_head_trains_the_head_too(compose_cfg):
    parts = build(compose_cfg("norm=batch", "trainer.train_only=norm+head"))
    trained = {k for k, p in parts.model.named_parameters() if p.requires_grad}
    assert trained == set(norm_parameter_names(parts.model)) | {"head.weight", "head.bias"}
    assert trained - {"head.weight", "head.bias"} == {"features.1.1.weight", "features.1.1.bias",
                                                      "features.2.1.weight", "features.2.1.bias"}


def test_training_only_batch_norm_learns_digits_from_random_features(compose_cfg):
    """Frankle et al. 2020: a depth-4 MLP whose weights stay at their random init, only batch
    norm's scale and shift trained, is far above chance (0.1) on the 10 digits."""
    cfg = compose_cfg("model.depth=4", "norm=batch", "trainer.train_only=norm", "optimizer=adam",
                      "optimizer.lr=0.03", "trainer.epochs=5")
    initial, ckpt, summary = initial_and_final(cfg)
    norms = set(norm_parameter_names(build(cfg).model))
    assert len(norms) == 8  # 4 layers x (scale, shift)
    assert all(torch.equal(ckpt["model"][k], initial[k]) for k in initial if k not in norms)
    assert all(not torch.equal(ckpt["model"][k], initial[k]) for k in norms)
    assert summary["final_val_acc"] > 0.6


def test_lr_scale_makes_the_heads_step_ten_times_larger(compose_cfg):
    """Plain SGD, one step: w1 = w0 - lr * scale * g, with scale 10 for the head and 1 elsewhere,
    also after the schedule sets another lr."""
    parts = build(compose_cfg("optimizer.lr_scale={head: 10}"))
    model, opt = parts.model, parts.optimizer
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 10.0]
    set_lr(opt, 0.05)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.05 * 10]
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    parts.loss(model(parts.data.x_train[:64]), parts.data.y_train[:64]).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    opt.step()
    for name, p in model.named_parameters():
        lr = 0.5 if name.startswith("head.") else 0.05
        assert torch.equal(p.detach(), before[name].add(grads[name], alpha=-lr)), name
    step = {k: (before[k] - p.detach()).abs().sum() / grads[k].abs().sum() for k, p in model.named_parameters()}
    assert step["head.weight"] / step["features.1.0.weight"] == pytest.approx(10, rel=1e-4)


def test_lr_scale_groups_save_and_load_in_torch_optims_format(compose_cfg):
    parts = build(compose_cfg("optimizer=momentum", "optimizer.lr_scale={head: 10, features.1: 0.5}"))
    model, opt = parts.model, parts.optimizer
    parts.loss(model(parts.data.x_train[:64]), parts.data.y_train[:64]).backward()
    opt.step()
    saved = opt.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2, 3], [4, 5]]  # features.2, head, features.1
    torch_opt = torch.optim.SGD([{"params": g["params"]} for g in opt.param_groups], lr=0.1, momentum=0.9)
    torch_opt.load_state_dict(saved)
    assert [g["lr_scale"] for g in torch_opt.param_groups] == [1.0, 10.0, 0.5]
    again = build(compose_cfg("optimizer=momentum", "optimizer.lr_scale={head: 10, features.1: 0.5}")).optimizer
    again.load_state_dict(saved)
    assert [len(g["params"]) for g in again.param_groups] == [2, 2, 2]
    with pytest.raises(ValueError, match="in 3 group"):
        build(compose_cfg("optimizer=momentum")).optimizer.load_state_dict(saved)


def test_an_unknown_lr_scale_prefix_exits_2(compose_cfg):
    with pytest.raises(ConfigError, match=r"optimizer.lr_scale.hed: hed matches no parameter; .*: features.1.0, "):
        build(compose_cfg("optimizer.lr_scale={hed: 10}"))


def test_a_resumed_run_continues_the_groups_and_the_noise_exactly(optlab, tmp_path):
    """Param groups, frozen parameters and the noisy norm's generator go through a checkpoint:
    2 epochs extended to 4 (a resume from the checkpoint) equal a 4-epoch run."""
    import csv

    def table(folder):
        with open(tmp_path / folder / "metrics.csv") as f:
            return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "samples_per_s")} for r in csv.DictReader(f)]

    setting = ["trainer.progress=false", "norm=batch", "norm.noise=true", "optimizer=momentum",
               "optimizer.lr_scale={head: 3}", "trainer.freeze=[features.1.0]"]
    short = optlab("train", *setting, "trainer.epochs=2").stdout.strip().splitlines()[-1]
    resumed = optlab("train", "--resume", short, "trainer.epochs=4")
    assert resumed.returncode == 0, resumed.stderr
    straight = optlab("train", *setting, "trainer.epochs=4").stdout.strip().splitlines()[-1]
    assert table(short) == table(straight) and len(table(straight)) == 4
