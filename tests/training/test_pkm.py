"""The product-key lookup against a naive scan of all n_keys**2 slots, on random weights."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from training.pkm import ProductKeyMemory, topk_ordered


def naive_memory(pkm: ProductKeyMemory, x: torch.Tensor):
    """Scores every slot s1[i] + s2[j], takes the top-k by (score desc, slot asc), per head."""
    q = pkm.project_query(x).float()
    half, n, k = pkm.k_dim // 2, pkm.n_keys, pkm.knn
    ids = torch.empty(x.shape[0], pkm.heads, k, dtype=torch.int64)
    weights = torch.empty(x.shape[0], pkm.heads, k)
    out = torch.zeros(x.shape[0], pkm.v_dim)
    for t, h in itertools.product(range(x.shape[0]), range(pkm.heads)):
        s1 = pkm.keys[h, 0].float() @ q[t, h, :half]
        s2 = pkm.keys[h, 1].float() @ q[t, h, half:]
        slots = [((s1[i] + s2[j]).item(), i * n + j) for i in range(n) for j in range(n)]
        best = sorted(slots, key=lambda s: (-s[0], s[1]))[:k]
        ids[t, h] = torch.tensor([s for _, s in best])
        weights[t, h] = F.softmax(torch.tensor([v for v, _ in best], dtype=torch.float32), dim=0)
        out[t] += (weights[t, h].unsqueeze(1) * pkm.values[ids[t, h]].float()).sum(0)
    return out, ids, weights


def make_pkm(d=24, heads=3, knn=5, n_keys=11, k_dim=10, seed=0, query_batchnorm=False):
    torch.manual_seed(seed)
    pkm = ProductKeyMemory(d, heads, knn, n_keys, k_dim, d, query_batchnorm=query_batchnorm)
    return pkm.eval()


@pytest.mark.parametrize("heads,knn,n_keys,k_dim", [(3, 5, 11, 10), (1, 1, 7, 4), (4, 32, 32, 16), (2, 8, 8, 6)])
@torch.no_grad()
def test_product_lookup_equals_full_scan(heads, knn, n_keys, k_dim):
    pkm = make_pkm(heads=heads, knn=knn, n_keys=n_keys, k_dim=k_dim)
    x = torch.randn(6, 24)
    out, ids, w = pkm(x, return_lookup=True)
    ref_out, ref_ids, ref_w = naive_memory(pkm, x)
    assert torch.equal(ids, ref_ids)
    torch.testing.assert_close(w, ref_w, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_k_equal_to_n_keys_reads_every_slot():
    pkm = make_pkm(heads=2, knn=6, n_keys=6, k_dim=8)
    x = torch.randn(3, 24)
    _, ids, w = pkm(x, return_lookup=True)
    _, ref_ids, ref_w = naive_memory(pkm, x)
    assert torch.equal(ids, ref_ids)
    torch.testing.assert_close(w, ref_w)


@torch.no_grad()
def test_ties_break_by_lower_index():
    # Integer-valued keys and queries make many scores exactly equal in fp32.
    pkm = make_pkm(heads=2, knn=7, n_keys=9, k_dim=4)
    pkm.keys.copy_(torch.randint(-1, 2, pkm.keys.shape).float())
    pkm.query.weight.zero_()
    pkm.query.bias.copy_(torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]))
    x = torch.randn(2, 24)
    _, ids, _ = pkm(x, return_lookup=True)
    _, ref_ids, _ = naive_memory(pkm, x)
    assert torch.equal(ids, ref_ids)
    for row in ids.view(-1, 7):
        assert len(set(row.tolist())) == 7, "a slot was selected twice"


def test_topk_ordered_rule():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0]])
    index = torch.tensor([[10, 4, 8, 0, 2]])
    values, idx = topk_ordered(scores, index, 4)
    assert values.tolist() == [[3.0, 3.0, 3.0, 2.0]]
    assert idx.tolist() == [[2, 4, 8, 0]]


@torch.no_grad()
def test_training_mode_selects_same_slots_without_ties():
    pkm = make_pkm(heads=2, knn=4, n_keys=16, k_dim=8)
    x = torch.randn(5, 24)
    _, eval_ids, eval_w = pkm(x, return_lookup=True)
    pkm.train()
    _, train_ids, train_w = pkm(x, return_lookup=True)
    assert torch.equal(train_ids, eval_ids)
    torch.testing.assert_close(train_w, eval_w)


@torch.no_grad()
def test_batchnorm_folding_preserves_output():
    pkm = make_pkm(query_batchnorm=True)
    bn = pkm.query_bn
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.normal_()
    bn.bias.normal_()
    x = torch.randn(7, 24)
    before = pkm(x)
    pkm.fold_batchnorm()
    assert pkm.query_bn is None
    torch.testing.assert_close(pkm(x), before, rtol=1e-5, atol=1e-5)
