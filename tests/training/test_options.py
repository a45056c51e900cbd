"""Each format 2 option of the reference model against a computation written out here."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from training import safetensors_io
from training.checkpoint import load_model
from training.config import FFN, Attention, LMHead, Memory, Positions
from training.export import export
from training.families import FAMILIES, _config, build
from training.model import Attention as AttentionModule
from training.model import FeedForward, Norm as NormModule, PKMTransformer, apply_rope, rope_tables
from training.pkm import MemoryPlus, ProductKeyMemory


def randomized(model: PKMTransformer) -> PKMTransformer:
    """Biases and norm weights away from 0 and 1, so that a dropped one shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
    return model.eval()


def tiny(seed=0, **kw) -> PKMTransformer:
    torch.manual_seed(seed)
    return randomized(PKMTransformer(_config(**kw)))


def mem(layer, placement, **kw) -> Memory:
    return Memory(**{**dict(layer=layer, placement=placement, heads=2, knn=3, n_keys=6, k_dim=8, v_dim=32), **kw})


# ---- norms and FFNs ----

def test_rmsnorm():
    norm = NormModule("rmsnorm", 16, 1e-6, bias=False)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 16) * 5
    expected = torch.stack([row / math.sqrt((row ** 2).sum().item() / 16 + 1e-6) for row in x]) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    assert norm.bias is None


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_with_and_without_bias(bias):
    norm = NormModule("layernorm", 16, 1e-5, bias=bias)
    with torch.no_grad():
        norm.weight.normal_()
        if bias:
            norm.bias.normal_()
    x = torch.randn(3, 16) * 5 + 2
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased
    expected = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight + (norm.bias if bias else 0)
    torch.testing.assert_close(norm(x), expected)


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


@pytest.mark.parametrize("kind,act", [("gelu", lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))),
                                      ("gelu_tanh", gelu_tanh), ("relu", lambda x: x.clamp(min=0))])
@pytest.mark.parametrize("bias", [True, False])
def test_ffn_kinds(kind, act, bias):
    torch.manual_seed(0)
    ffn = FeedForward(_config(ffn=FFN(kind, 40, bias)))
    x = torch.randn(5, 32) * 3
    w1, w2 = ffn.w1.weight, ffn.w2.weight
    b1, b2 = (ffn.w1.bias, ffn.w2.bias) if bias else (0, 0)
    torch.testing.assert_close(ffn(x), act(x @ w1.t() + b1) @ w2.t() + b2)
    assert ffn.w3 is None and (ffn.w1.bias is None) == (not bias)


def test_swiglu():
    torch.manual_seed(0)
    ffn = FeedForward(_config(ffn=FFN("swiglu", 40, False)))
    x = torch.randn(5, 32)
    a, b = x @ ffn.w1.weight.t(), x @ ffn.w3.weight.t()
    torch.testing.assert_close(ffn(x), (a * torch.sigmoid(a) * b) @ ffn.w2.weight.t())


# ---- attention ----

def naive_attention(attn: AttentionModule, x: torch.Tensor, rope_theta=None) -> torch.Tensor:
    """One sequence x [T, d], head by head: query head h reads kv head h // (n_heads // n_kv_heads)."""
    T, hd = x.shape[0], attn.head_dim
    group = attn.n_heads // attn.n_kv_heads
    q, k, v = attn.wq(x), attn.wk(x), attn.wv(x)
    out = []
    for h in range(attn.n_heads):
        g = h // group
        qh, kh, vh = q[:, h * hd:(h + 1) * hd], k[:, g * hd:(g + 1) * hd], v[:, g * hd:(g + 1) * hd]
        if rope_theta is not None:
            cos, sin = rope_tables(hd, torch.arange(T), rope_theta)
            qh, kh = apply_rope(qh, cos, sin), apply_rope(kh, cos, sin)
        scores = torch.full((T, T), float("-inf"))
        for i in range(T):
            for j in range(i + 1):
                scores[i, j] = (qh[i] @ kh[j]) / math.sqrt(hd)
        out.append(scores.softmax(-1) @ vh)
    return attn.wo(torch.cat(out, dim=-1))


@pytest.mark.parametrize("n_heads,n_kv_heads,head_dim", [(4, 4, 8), (4, 2, 8), (4, 1, 8), (2, 2, 12), (6, 3, 4)])
@pytest.mark.parametrize("positions", ["rope", "none"])
def test_attention_heads_and_gqa(n_heads, n_kv_heads, head_dim, positions):
    torch.manual_seed(1)
    pos = Positions("rope", theta=100.0) if positions == "rope" else Positions("none")
    attn = AttentionModule(_config(attention=Attention(n_heads, n_kv_heads, head_dim, True), positions=pos))
    x = torch.randn(1, 7, 32)
    got = attn(x, torch.arange(7))[0]
    torch.testing.assert_close(got, naive_attention(attn, x[0], 100.0 if positions == "rope" else None),
                               rtol=1e-5, atol=1e-5)
    assert attn.wk.weight.shape == (n_kv_heads * head_dim, 32) and attn.wo.weight.shape == (32, n_heads * head_dim)


@torch.no_grad()
def test_gqa_equals_mha_with_repeated_kv_heads():
    gqa = tiny(attention=Attention(4, 2, 8, True))
    mha = PKMTransformer(_config(attention=Attention(4, 4, 8, True))).eval()
    state = gqa.state_dict()
    for name, t in list(state.items()):
        if ".attn.wk." in name or ".attn.wv." in name:  # kv head g serves query heads 2g and 2g+1
            state[name] = t.view(2, 8, *t.shape[1:]).repeat_interleave(2, dim=0).reshape(32, *t.shape[1:])
    mha.load_state_dict(state)
    tokens = torch.randint(0, 96, (2, 9))
    torch.testing.assert_close(gqa(tokens), mha(tokens), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_no_positions_sees_the_past_as_a_set():
    # One block: the last token's keys and values each come from one token alone.
    model = tiny(n_layers=1, positions=Positions("none"))
    a = torch.tensor([[5, 9, 13, 21, 7]])
    b = torch.tensor([[13, 5, 21, 9, 7]])  # same past, reordered
    torch.testing.assert_close(model(a)[0, -1], model(b)[0, -1], rtol=1e-5, atol=1e-5)
    rope = tiny(n_layers=1)
    assert not torch.allclose(rope(a)[0, -1], rope(b)[0, -1], atol=1e-4)


@torch.no_grad()
def test_learned_positions_and_embedding_norm():
    model = tiny(positions=Positions("learned", max_positions=70), embedding_norm=True)
    seen = []
    model.layers[0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    tokens = torch.tensor([[3, 3, 8]])
    model(tokens)
    e = model.tok_embeddings.weight[tokens[0]] + model.pos_embeddings.weight[:3]
    mean, var = e.mean(-1, keepdim=True), e.var(-1, unbiased=False, keepdim=True)
    expected = (e - mean) / torch.sqrt(var + 1e-5) * model.emb_norm.weight + model.emb_norm.bias
    torch.testing.assert_close(seen[0][0], expected)
    assert model.pos_embeddings.weight.shape == (70, 32)


@torch.no_grad()
@pytest.mark.parametrize("final_norm", [True, False])
@pytest.mark.parametrize("tied,bias", [(True, False), (True, True), (False, True), (False, False)])
def test_head_final_norm_tying_and_bias(final_norm, tied, bias):
    model = tiny(final_norm=final_norm, lm_head=LMHead(tied, bias))
    seen = []
    model.layers[-1].register_forward_hook(lambda _, __, out: seen.append(out))
    tokens = torch.randint(0, 96, (1, 6))
    logits = model(tokens)[0]
    x = seen[0][0]
    if final_norm:
        x = F.layer_norm(x, (32,), model.norm.weight, model.norm.bias, 1e-5)
    else:
        assert model.norm is None
    head = model.tok_embeddings.weight if tied else model.lm_head.weight
    torch.testing.assert_close(logits, x @ head.t() + (model.lm_head.bias if bias else 0))
    names = set(model.named_tensors())
    assert ("lm_head.weight" in names) == (not tied) and ("lm_head.bias" in names) == bias


# ---- blocks and placements ----

def block_input_output(model, layer, tokens):
    seen = {}
    block = model.layers[layer]
    block.register_forward_hook(lambda _, args, out: seen.update(x=args[0], out=out))
    model(tokens)
    return block, seen["x"][0], seen["out"][0]


@torch.no_grad()
@pytest.mark.parametrize("block_kind", ["pre_norm", "post_norm"])
@pytest.mark.parametrize("placement", [None, "replace", "parallel"])
@pytest.mark.parametrize("after", [False, True])
def test_block_order_and_placements(block_kind, placement, after):
    memories = ([mem(1, placement)] if placement else []) + ([mem(1, "after", n_keys=5)] if after else [])
    model = tiny(block=block_kind, memories=memories)
    block, x, out = block_input_output(model, 1, torch.randint(0, 96, (1, 8)))
    pos = torch.arange(8)
    attn = lambda t: block.attn(t.unsqueeze(0), pos)[0]

    def f(h):  # F(h): FFN, memory (replace) or both (parallel)
        ffn = block.ffn(h) if placement != "replace" else 0
        return ffn + (block.pkm(h) if placement else 0)

    if block_kind == "pre_norm":
        x = x + attn(block.attn_norm(x))
        x = x + f(block.ffn_norm(x))
    else:
        x = block.attn_norm(x + attn(x))
        x = block.ffn_norm(x + f(x))
    if after:
        x = x + block.pkm_after(x)
    torch.testing.assert_close(out, x, rtol=1e-5, atol=1e-5)
    assert (block.ffn is None) == (placement == "replace")
    assert (block.pkm is None) == (placement is None) and (block.pkm_after is None) == (not after)


@torch.no_grad()
def test_lookups_come_in_memory_order():
    model = tiny(n_layers=3, memories=[mem(2, "replace", heads=3), mem(0, "after", knn=2), mem(0, "parallel")])
    lookups = []
    model(torch.randint(0, 96, (2, 5)), lookups=lookups)
    assert [(l, p) for l, p, _ in model.memories()] == [(0, "parallel"), (0, "after"), (2, "replace")]
    assert [tuple(ids.shape) for ids, _ in lookups] == [(2, 5, 2, 3), (2, 5, 2, 2), (2, 5, 3, 3)]


# ---- memory variants ----

def naive_bag(values, ids, w):
    """Σ_heads Σ_knn w · values[id] for one token, in fp32."""
    return sum(w[h, j] * values[ids[h, j]].float() for h in range(ids.shape[0]) for j in range(ids.shape[1]))


@torch.no_grad()
def test_memory_plus_output():
    torch.manual_seed(0)
    m = MemoryPlus(32, 2, 3, 6, 8, 20, output_bias=True).eval()
    for lin in (m.swilu, m.value_proj):
        lin.bias.normal_()
    x = torch.randn(4, 32)
    out, ids, w = m(x, return_lookup=True)
    for t in range(4):
        bag = naive_bag(m.values, ids[t], w[t])
        gate = x[t] @ m.swilu.weight.t() + m.swilu.bias
        expected = (bag * gate * torch.sigmoid(gate)) @ m.value_proj.weight.t() + m.value_proj.bias
        torch.testing.assert_close(out[t], expected, rtol=1e-5, atol=1e-6)
    assert m.values.shape == (36, 20) and m.swilu.weight.shape == (20, 32) and m.value_proj.weight.shape == (32, 20)


@torch.no_grad()
def test_memory_plus_without_bias():
    m = MemoryPlus(32, 2, 3, 6, 8, 20, output_bias=False)
    assert m.swilu.bias is None and m.value_proj.bias is None


@torch.no_grad()
def test_query_layernorm_per_sub_query_and_no_query_bias():
    torch.manual_seed(0)
    m = ProductKeyMemory(32, 3, 4, 7, 10, 32, query_bias=False, query_norm="layernorm", query_norm_eps=1e-5).eval()
    m.query_norm.weight.normal_()
    m.query_norm.bias.normal_()
    assert m.query.bias is None and m.query_norm.weight.shape == (5,)
    x = torch.randn(4, 32)
    q = (x @ m.query.weight.t()).view(4, 3, 2, 5)  # [token, head, half, k_dim/2]
    mean, var = q.mean(-1, keepdim=True), q.var(-1, unbiased=False, keepdim=True)
    normed = ((q - mean) / torch.sqrt(var + 1e-5) * m.query_norm.weight + m.query_norm.bias).view(4, 3, 10)
    torch.testing.assert_close(m.project_query(x), normed, rtol=1e-5, atol=1e-6)
    # And the lookup scores those normed halves against the sub-keys.
    _, ids, w = m(x, return_lookup=True)
    for t in range(4):
        for h in range(3):
            s1 = m.keys[h, 0] @ normed[t, h, :5]
            s2 = m.keys[h, 1] @ normed[t, h, 5:]
            full = (s1[:, None] + s2[None, :]).flatten()
            best = sorted(range(49), key=lambda i: (-full[i].item(), i))[:4]
            assert ids[t, h].tolist() == best
            torch.testing.assert_close(w[t, h], full[best].softmax(0))


@torch.no_grad()
def test_bf16_values_are_widened_and_summed_in_fp32():
    model = tiny(memories=[mem(1, "replace", values_dtype="bfloat16")])
    pkm = model.layers[1].pkm
    assert pkm.values.dtype == torch.bfloat16 and pkm.keys.dtype == torch.float32
    x = torch.randn(5, 32)
    out, ids, w = pkm(x, return_lookup=True)
    assert out.dtype == torch.float32
    for t in range(5):
        torch.testing.assert_close(out[t], naive_bag(pkm.values, ids[t], w[t]), rtol=1e-6, atol=1e-6)


def shared_model():
    return tiny(n_layers=3, memories=[mem(0, "replace", values="memory.values", values_dtype="bfloat16"),
                                      mem(2, "parallel", values="memory.values", values_dtype="bfloat16"),
                                      mem(1, "after")])


def test_shared_table_is_one_parameter_stored_once(tmp_path):
    model = shared_model()
    table = model.layers[0].pkm.values
    assert model.layers[2].pkm.values is table and model.layers[1].pkm_after.values is not table
    assert sum(p is table for p in model.parameters()) == 1
    export(model, None, tmp_path / "m")
    stored = safetensors_io.load(tmp_path / "m" / "model.safetensors")
    assert "memory.values" in stored and stored["memory.values"].dtype == torch.bfloat16
    assert [n for n in stored if n.endswith("values")] == ["layers.1.pkm_after.values", "memory.values"]
    loaded = load_model(tmp_path / "m")
    assert loaded.layers[0].pkm.values is loaded.layers[2].pkm.values
    assert torch.equal(loaded.layers[2].pkm.values, table)
    tokens = torch.randint(0, 96, (1, 7))
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), model(tokens), rtol=1e-6, atol=1e-6)


def test_shared_table_gets_both_memories_gradients():
    """The shared table's gradient is the sum of the gradients two separate copies would get."""
    shared = shared_model()
    split = copy.deepcopy(shared)
    split.layers[2].pkm.values = torch.nn.Parameter(split.layers[0].pkm.values.detach().clone())
    tokens = torch.randint(0, 96, (2, 6))
    for model in (shared, split):
        model(tokens).square().mean().backward()
    expected = split.layers[0].pkm.values.grad.float() + split.layers[2].pkm.values.grad.float()
    assert split.layers[2].pkm.values.grad.abs().sum() > 0
    torch.testing.assert_close(shared.layers[0].pkm.values.grad.float(), expected, rtol=2e-2, atol=1e-4)


def test_table_name_may_not_be_another_tensor():
    with pytest.raises(ValueError, match=r"memories\[0\].values.*another tensor"):
        tiny(memories=[mem(1, "replace", values="layers.0.attn.wq.weight")])


@torch.no_grad()
def test_query_batchnorm_folds_into_every_memory():
    model = tiny(memories=[mem(0, "replace", query_batchnorm=True), mem(1, "after", query_batchnorm=True)])
    for _, pkm in model.pkm_modules():
        pkm.query_bn.running_mean.normal_()
        pkm.query_bn.running_var.uniform_(0.5, 2.0)
        pkm.query_bn.weight.normal_()
    tokens = torch.randint(0, 96, (2, 7))
    before = model(tokens)
    model.fold_batchnorm()
    assert all(pkm.query_bn is None for _, pkm in model.pkm_modules())
    assert not any("query_bn" in n for n in model.named_tensors())
    torch.testing.assert_close(model(tokens), before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_tensors_are_the_documented_names(name):
    """Every tensor name of docs/model-format.md's table, and only those."""
    model = build(name)
    model.fold_batchnorm()  # what export writes
    cfg = model.cfg
    names = set(model.named_tensors())
    expected = {"tok_embeddings.weight"}
    norm = lambda p: {p + "weight"} | ({p + "bias"} if cfg.norm.bias else set())
    if cfg.positions.kind == "learned":
        expected.add("pos_embeddings.weight")
    if cfg.embedding_norm:
        expected |= norm("emb_norm.")
    if cfg.final_norm:
        expected |= norm("norm.")
    if not cfg.lm_head.tied:
        expected.add("lm_head.weight")
    if cfg.lm_head.bias:
        expected.add("lm_head.bias")
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        expected |= norm(p + "attn_norm.") | norm(p + "ffn_norm.")
        for w in ("wq", "wk", "wv", "wo"):
            expected |= {f"{p}attn.{w}.weight"} | ({f"{p}attn.{w}.bias"} if cfg.attention.bias else set())
        if not any(m.layer == i and m.placement == "replace" for m in cfg.memories):
            for w in ("w1", "w2") + (("w3",) if cfg.ffn.kind == "swiglu" else ()):
                expected |= {f"{p}ffn.{w}.weight"} | ({f"{p}ffn.{w}.bias"} if cfg.ffn.bias else set())
    for m in cfg.memories:
        p = m.prefix
        expected |= {p + "query.weight", p + "keys", m.values_name}
        expected |= {p + "query.bias"} if m.query_bias else set()
        expected |= {p + "query_norm.weight", p + "query_norm.bias"} if m.query_norm == "layernorm" else set()
        if m.output == "memory_plus":
            for lin in ("swilu", "value_proj"):
                expected |= {f"{p}{lin}.weight"} | ({f"{p}{lin}.bias"} if m.output_bias else set())
    assert names == expected
    t = model.named_tensors()
    for m in cfg.memories:
        assert t[m.prefix + "keys"].shape == (m.heads, 2, m.n_keys, m.k_dim // 2)
        assert t[m.values_name].shape == (m.n_keys ** 2, m.v_dim)
