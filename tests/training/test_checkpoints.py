"""The bundled version 1 model and train.py's checkpoints under format 2."""
import dataclasses
import json

import torch
import torch.nn.functional as F

from training import safetensors_io
from training.checkpoint import load_model
from training.config import ModelConfig
from training.export import export, model_from_checkpoint
from training.families import FAMILIES
from training.train import param_groups, read_config


@torch.no_grad()
def test_bundled_model_exports_as_version_2_with_the_same_tensors(root, tmp_path):
    bundled = root / "models/pkm-small"
    model = load_model(bundled)
    export(model, bundled / "tokenizer.model", tmp_path / "m", "float16")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["format_version"] == 2 and cfg["family"] == "pkmserve" and "values" not in cfg["memories"][0]
    assert safetensors_io.metadata(tmp_path / "m" / "model.safetensors")["pkmserve_format_version"] == "2"
    old, new = (safetensors_io.load(d / "model.safetensors") for d in (bundled, tmp_path / "m"))
    assert sorted(old) == sorted(new)
    for name in old:
        assert torch.equal(old[name], new[name]), name
    tokens = torch.randint(0, 8000, (1, 12))
    torch.testing.assert_close(load_model(tmp_path / "m")(tokens), model(tokens), rtol=0, atol=0)


def test_bundled_model_trains(root):
    model = load_model(root / "models/pkm-small").train()
    opt = torch.optim.AdamW(param_groups(model, 1e-3, 1e-3, 0.1), betas=(0.9, 0.95))
    x = torch.randint(0, 8000, (1, 9), generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(model(x[:, :-1]).reshape(-1, 8000), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert len(opt.param_groups[2]["params"]) == 1  # its one value table, in the values group


def train_checkpoint(tmp_path, config_path, query_batchnorm):
    """What train.py saves as best.pt, from the model it builds for that --config."""
    from training.model import PKMTransformer
    cfg, saved = read_config(config_path, query_batchnorm)
    model = PKMTransformer(cfg)
    for _, pkm in model.pkm_modules():
        if pkm.query_bn is not None:
            pkm.query_bn.running_mean.normal_()
    path = tmp_path / "best.pt"
    torch.save({"config": saved, "model": model.state_dict(), "args": {"seq_len": "48"}}, path)
    return model.eval(), path


@torch.no_grad()
def test_version_2_config_trains_to_a_checkpoint_that_exports(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(FAMILIES["xlm"][0].to_json()))
    model, path = train_checkpoint(tmp_path, config, query_batchnorm=True)
    assert all(pkm.query_bn is not None for _, pkm in model.pkm_modules())
    restored = model_from_checkpoint(path)
    assert restored.cfg.max_seq_len == 48
    tokens = torch.randint(0, 64, (1, 9))
    torch.testing.assert_close(restored(tokens), model(tokens))
    export(restored, None, tmp_path / "m")
    torch.testing.assert_close(load_model(tmp_path / "m")(tokens), model(tokens), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_version_1_overrides_still_make_version_1_checkpoints(tmp_path):
    overrides = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=48, pkm_layers=[1], pkm_heads=2,
                     pkm_knn=4, pkm_n_keys=8, pkm_k_dim=8, pkm_v_dim=32)
    config = tmp_path / "overrides.json"
    config.write_text(json.dumps(overrides))
    cfg, saved = read_config(config, query_batchnorm=False)
    assert isinstance(cfg, ModelConfig) and saved == dataclasses.asdict(cfg) and saved["pkm_query_batchnorm"]
    model, path = train_checkpoint(tmp_path, config, query_batchnorm=False)
    restored = model_from_checkpoint(path)
    assert restored.cfg.dtype == "float16"  # export's default for these recipes
    tokens = torch.randint(0, 64, (1, 9))
    torch.testing.assert_close(restored(tokens), model(tokens))
