"""Which run folders a study reuses: the same name and the same learned config."""
from optlab.study.execute import learned_config, option_defaults, same_learning


def test_bookkeeping_keys_do_not_count_and_learned_ones_do(compose_cfg):
    a = learned_config(compose_cfg("trainer.progress=false", "trainer.out_dir=/x"))
    assert a == learned_config(compose_cfg("trainer.progress=true"))
    assert a != learned_config(compose_cfg("optimizer.lr=0.05"))


def test_a_key_added_after_a_run_counts_as_its_default(compose_cfg):
    cfg = compose_cfg("data=digits")
    new, defaults = learned_config(cfg), option_defaults(cfg)
    assert defaults["data.standardize"] == "true" and defaults["optimizer.lr"] == "0.1"
    old = {k: v for k, v in new.items() if k != "data.standardize"}  # a run made before the key existed
    assert same_learning(old, new, defaults)
    raw = learned_config(compose_cfg("data=digits", "data.standardize=false"))
    assert not same_learning(old, raw, defaults)  # the new run asks for what the old one never did
    assert not same_learning({**new, "data.gone": "1"}, new, defaults)  # a key optlab no longer has
    assert not same_learning({**new, "optimizer.lr": "0.2"}, new, defaults)
