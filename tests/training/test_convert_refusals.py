"""Every source option format 2 cannot compute is refused, and the message names it."""
import os
import subprocess
import sys

import pytest
import torch

import convert_sources as cs
from training.convert.common import Refused


def _xlm(tmp_path, flat_keys=False, extra_state=None, **params):
    src, _ = cs.xlm_checkpoint(tmp_path / "xlm.pth", params=cs.xlm_params(**params), flat_keys=flat_keys)
    if extra_state:
        ckpt = torch.load(src)
        ckpt["model"].update(extra_state)
        torch.save(ckpt, src)
    return ["xlm", src, "--out", tmp_path / "out"]


XLM_OPTIONS = [("mem_shuffle_indices", dict(mem_shuffle_indices=True)),
               ("mem_modulo_size", dict(mem_modulo_size=16)),
               ("mem_normalize_query", dict(mem_normalize_query=True)),
               ("mem_temperature", dict(mem_temperature=2.0)),
               (r"asm \(adaptive softmax\)", dict(asm=True))]


@pytest.mark.parametrize("option,params", XLM_OPTIONS, ids=[o[0].split(" ")[0] for o in XLM_OPTIONS])
def test_xlm_options(tmp_path, option, params):
    with pytest.raises(Refused, match=f"XLM {option}"):
        cs.convert(_xlm(tmp_path, **params))
    assert not (tmp_path / "out").exists()


def test_xlm_flat_keys(tmp_path):
    with pytest.raises(Refused, match="XLM flat keys"):
        cs.convert(_xlm(tmp_path, flat_keys=True))


def test_xlm_adaptive_softmax_found_by_its_tensors(tmp_path):
    with pytest.raises(Refused, match="adaptive softmax"):
        cs.convert(_xlm(tmp_path, extra_state={"module.pred_layer.proj.head.weight": torch.zeros(4, 32)}))


def _lingua(tmp_path, gating=False, **pk):
    step = tmp_path / "step"
    cs.lingua_checkpoint(step, cs.lingua_params(**pk), gating=gating)
    return ["lingua", step, "--out", tmp_path / "out"]


def test_memory_plus_peer_variant(tmp_path):
    with pytest.raises(Refused, match="Memory\\+ peer_variant"):
        cs.convert(_lingua(tmp_path, peer_variant=True))


def test_memory_plus_gating(tmp_path):
    with pytest.raises(Refused, match="Memory\\+ gating.*gating"):
        cs.convert(_lingua(tmp_path, gating=True))


def _lucidrains(tmp_path, extra_keys=(), **options):
    src, _ = cs.lucidrains_checkpoint(tmp_path / "m.pt", tmp_path / "layout.json", extra_keys=extra_keys,
                                      memory_options=options)
    return ["lucidrains", src, "--layout", tmp_path / "layout.json", "--topk", "4", "--out", tmp_path / "out"]


@pytest.mark.parametrize("option,keys,options", [
    ("concat_values_and_combine", ("values.0.weight",), {}),
    ("concat_values_and_combine", (), {"concat_values_and_combine": True}),
    ("non_competitive_gates", (), {"non_competitive_gates": True}),
    ("pre_layernorm", ("pre_layernorm.weight",), {}),
    ("norm_output", ("output_norm.weight",), {}),
])
def test_lucidrains_options(tmp_path, option, keys, options):
    with pytest.raises(Refused, match=f"lucidrains {option}"):
        cs.convert(_lucidrains(tmp_path, keys, **options))


def test_the_command_exits_2_naming_the_option(tmp_path, root):
    argv = _xlm(tmp_path, mem_shuffle_indices=True)
    run = subprocess.run([sys.executable, "-m", "training.convert", *map(str, argv)], cwd=root, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert run.returncode == 2
    assert "refused" in run.stderr and "mem_shuffle_indices" in run.stderr


def test_xlm_masked_lm_only(tmp_path):
    with pytest.raises(Refused, match="XLM mlm_steps without clm_steps"):
        cs.convert(_xlm(tmp_path, mlm_steps=[("en", None)], clm_steps=[]))


def test_xlm_decoder_with_encoder_attention(tmp_path):
    with pytest.raises(Refused, match="encoder_attn"):
        cs.convert(_xlm(tmp_path, extra_state={"module.encoder_attn.0.q_lin.weight": torch.zeros(32, 32)}))


def test_memory_plus_without_swilu_projection(tmp_path):
    argv = _lingua(tmp_path)
    path = tmp_path / "step/consolidated/consolidated.pth"
    ckpt = torch.load(path)
    for layer in (0, 2):
        for p in ("weight", "bias"):
            del ckpt["model"][f"layers.{layer}.feed_forward.swilu_projection.{p}"]
    torch.save(ckpt, path)
    with pytest.raises(Refused, match="Memory\\+ swilu_projection=false"):
        cs.convert(argv)
