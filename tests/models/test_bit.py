"""Brain Tokenizer, Cross-Transformer, BIT network and losses (tiny sizes, CPU, seconds)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from brainit_core.features.base import TokenSpec
from brainit_core.models.bit import BITConfig, BrainIT
from brainit_core.models.memory import estimate_memory
from brainit_core.models.losses import info_nce, lowlevel_loss
from brainit_core.models.tokenizer import BrainTokenizer
from brainit_core.models.transformer import CrossTransformer
from tests.factories import tiny_bit_model

C, D = 5, 16


def _tokenizer(V=40, seed=0, empty_last=True):
    torch.manual_seed(seed)
    tok = BrainTokenizer(C, D, init_scale=20.0)  # large init: attention far from uniform
    labels = torch.arange(V) % (C - 1 if empty_last else C)
    tok.add_subject("s", V, labels)
    return tok, labels


def _naive(tok, betas, idx, labels):
    """Per-cluster softmax attention written out with explicit q/k/v (the TransformerConv maths)."""
    x = betas.unsqueeze(-1) * tok.voxel_embeddings["s"][idx]  # (B, N, D)
    q, k, v = tok.query(tok.cluster_embeddings), tok.key(x), tok.value(x)
    out = torch.zeros(betas.shape[0], C, D)
    attn = torch.zeros_like(betas)
    for b in range(betas.shape[0]):
        for c in range(C):
            m = labels[idx[b]] == c
            if m.any():
                a = torch.softmax(k[b, m] @ q[c] / math.sqrt(D), 0)
                out[b, c] = a @ v[b, m]
                attn[b, m] = a
    out = out + tok.skip(tok.cluster_embeddings)
    return tok.norm(torch.relu(out)), attn


def test_tokenizer_equals_naive_graph_attention():
    tok, labels = _tokenizer()
    g = torch.Generator().manual_seed(1)
    betas = torch.randn(3, 25, generator=g)
    idx = torch.stack([torch.randperm(40, generator=g)[:25] for _ in range(3)])
    out, attn = tok(betas, "s", idx, return_attention=True)
    ref, ref_attn = _naive(tok, betas, idx, labels)
    assert out.shape == (3, C, D)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attn, ref_attn, atol=1e-6, rtol=1e-5)
    assert attn.std() > 0.01  # not uniform, so the check above is meaningful


def test_attention_sums_to_one_per_nonempty_cluster_and_empty_cluster_is_finite():
    tok, labels = _tokenizer()
    betas = torch.randn(2, 40)
    out, attn = tok(betas, "s", return_attention=True)
    for c in range(C - 1):
        sums = attn[:, labels == c].sum(1)
        torch.testing.assert_close(sums, torch.ones(2))
    assert torch.isfinite(out).all()
    # the empty cluster C-1 is the constant LN(ReLU(skip(c_k))) token, identical across samples
    expected = tok.norm(torch.relu(tok.skip(tok.cluster_embeddings)))[C - 1]
    torch.testing.assert_close(out[0, C - 1], expected)
    torch.testing.assert_close(out[1, C - 1], expected)


def test_perturbing_a_voxel_changes_only_its_cluster_token():
    tok, labels = _tokenizer()
    betas = torch.randn(1, 40)
    base, _ = tok(betas, "s")
    for v in (0, 7, 13):
        pert = betas.clone()
        pert[0, v] += 3.0
        out, _ = tok(pert, "s")
        changed = (out - base).abs().amax(-1)[0] > 1e-6  # (C,)
        assert changed.tolist() == [c == int(labels[v]) for c in range(C)]


def test_variable_voxel_counts_and_mixed_subject_batch():
    torch.manual_seed(0)
    cfg = BITConfig.preset("ci")
    spec = [TokenSpec("sem", (2, 2), 6)]
    net = BrainIT(cfg, spec, {"a": 30, "b": 17})
    net.set_labels("a", np.arange(30) % cfg.n_clusters)
    net.set_labels("b", np.arange(17) % 3)  # most clusters empty for b
    xa, xb = torch.randn(2, 30), torch.randn(3, 17)
    ya = net(xa, "a").tokens[0]
    yb = net(xb, "b").tokens[0]
    brain, _ = net.tokenize([("a", xa, None), ("b", xb, None)])
    mixed, _ = net.read_out(brain)
    assert ya.shape == (2, 4, 6) and yb.shape == (3, 4, 6)
    torch.testing.assert_close(mixed[0], torch.cat([ya, yb]), atol=1e-5, rtol=1e-5)
    # a random subset of voxels is accepted too
    idx = torch.stack([torch.randperm(30)[:11] for _ in range(2)])
    assert net(torch.gather(xa, 1, idx), "a", idx).tokens[0].shape == (2, 4, 6)


def test_cross_transformer_layout_attention_and_unprojected_queries():
    torch.manual_seed(0)
    ct = CrossTransformer(dim=16, heads=4, n_self_blocks=2)
    assert len(ct.self_blocks) == 2 and len(ct.cross_blocks) == 3
    assert not hasattr(ct.cross_blocks[0].attn, "q")  # queries enter unprojected
    brain, queries = torch.randn(2, 7, 16), torch.randn(2, 9, 16)
    out, maps = ct(brain, queries, return_attention=True)
    assert out.shape == (2, 9, 16) and len(maps) == 3
    for m in maps:
        assert m.shape == (2, 9, 7)
        torch.testing.assert_close(m.sum(-1), torch.ones(2, 9))
    out2, none = ct(brain, queries)  # the fast path gives the same result
    assert none is None
    torch.testing.assert_close(out, out2, atol=1e-5, rtol=1e-5)


def test_sampled_queries_match_full_prediction():
    torch.manual_seed(0)
    cfg = BITConfig.preset("ci")
    specs = [TokenSpec("l0", (4, 4), 3), TokenSpec("l1", (2, 2), 5)]
    net = BrainIT(cfg, specs, {"a": 20})
    net.set_labels("a", np.arange(20) % cfg.n_clusters)
    x = torch.randn(2, 20)
    full = net(x, "a").tokens
    qi = [torch.tensor([[3, 0, 15], [1, 2, 3]]), torch.tensor([[2], [0]])]
    part = net(x, "a", query_idx=qi).tokens
    for f, p, i in zip(full, part, qi):
        torch.testing.assert_close(p, torch.gather(f, 1, i.unsqueeze(-1).expand(-1, -1, f.shape[-1])), atol=1e-5, rtol=1e-5)


def test_info_nce_values():
    t = 3 * torch.eye(8)[:, :8]
    low, acc = info_nce(t, t)  # orthogonal rows, logit gap 9: near zero, perfect accuracy
    assert acc.item() == 1.0 and low.item() < 0.01
    t = torch.randn(8, 4)
    z = torch.zeros(8, 4)
    chance, _ = info_nce(z, t)  # constant logits: exactly log(M)
    assert chance.item() == pytest.approx(math.log(8), abs=1e-5)
    loss, parts = lowlevel_loss([z.view(2, 4, 4)], [t.view(2, 4, 4)], mse_weight=1.0)
    assert parts["mse"] == pytest.approx(float((t ** 2).mean()), rel=1e-5)
    assert loss.item() == pytest.approx(math.log(8) + parts["mse"], rel=1e-5)


def test_model_predict_denormalises_to_feature_units():
    m = tiny_bit_model()
    cfg = m.config
    x = torch.randn(3, 20)
    p0 = m.predict(x, "a", return_attention=True)
    m.set_target_stats((np.full(6, 5.0), np.full(6, 2.0)), [(np.full(3, -1.0), np.full(3, 3.0)), (np.zeros(5), np.ones(5))])
    p1 = m.predict(x, "a")
    torch.testing.assert_close(p1.semantic, p0.semantic * 2 + 5)
    torch.testing.assert_close(p1.lowlevel[0], p0.lowlevel[0] * 3 - 1)
    assert p0.lowlevel[0].shape == (3, 3, 4, 4) and p0.lowlevel[1].shape == (3, 5, 2, 2)
    assert p0.cluster_of_voxel.shape == (20,) and p0.meta == {}
    assert p0.cross_attention["lowlevel"].shape == (3, 20, cfg.n_clusters)
    assert p0.cross_attention_layers["semantic"].shape == (cfg.n_self_blocks + 1, 3, 4, cfg.n_clusters)
    assert p0.cross_attention_layers["lowlevel"].shape == (cfg.n_self_blocks + 1, 3, 20, cfg.n_clusters)
    torch.testing.assert_close(p0.cross_attention_layers["lowlevel"].mean(0), p0.cross_attention["lowlevel"])
    assert p1.tokenizer_attention is None and p1.cross_attention_layers is None


def _run_of(model):
    from types import SimpleNamespace

    from brainit_core.models.run import BrainITRun

    space = SimpleNamespace(semantic_spec=model.semantic_spec, lowlevel_specs=model.lowlevel_specs)
    return BrainITRun("tiny", space, {}, None, model, "0" * 64, torch.device("cpu"))


def test_prediction_carries_both_heads_tokenizer_attention_through_batches():
    m = tiny_bit_model().eval()
    cfg = m.config
    labels = np.arange(20) % 3  # 3 non-empty clusters of the model's n_clusters
    m.set_labels("a", labels)
    x = torch.randn(5, 20)
    whole = m.predict(x, "a", return_attention=True)
    assert set(whole.tokenizer_attention) == {"semantic", "lowlevel"}
    for head, t in whole.tokenizer_attention.items():
        assert t.shape == (5, 20), head
        sums = torch.zeros(5, cfg.n_clusters).index_add_(1, torch.as_tensor(labels), t)
        torch.testing.assert_close(sums[:, :3], torch.ones(5, 3))  # sums to 1 over each non-empty cluster
    assert not torch.allclose(whole.tokenizer_attention["semantic"], whole.tokenizer_attention["lowlevel"])
    torch.testing.assert_close(m.semantic(m.standardize_betas(x, "a"), "a", return_attention=True).tokenizer_attention,
                               whole.tokenizer_attention["semantic"])
    torch.testing.assert_close(m.lowlevel(m.standardize_betas(x, "a"), "a", return_attention=True).tokenizer_attention,
                               whole.tokenizer_attention["lowlevel"])
    batched = _run_of(m).predict(x, "a", return_attention=True, batch_size=2)  # 3 parts, concatenated
    for head in ("semantic", "lowlevel"):
        torch.testing.assert_close(batched.tokenizer_attention[head], whole.tokenizer_attention[head])
        torch.testing.assert_close(batched.cross_attention[head], whole.cross_attention[head])
        torch.testing.assert_close(batched.cross_attention_layers[head], whole.cross_attention_layers[head])
    assert torch.equal(batched.cluster_of_voxel, whole.cluster_of_voxel)
    plain = _run_of(m).predict(x, "a", batch_size=2)
    assert plain.tokenizer_attention is None and plain.cross_attention_layers is None


def test_memory_estimate_grows_with_batch_and_full_preset_fits_a_big_gpu():
    cfg = BITConfig.preset("full")
    a = estimate_memory(cfg, 20_000_000, 256, 64, 15000, 1664, amp=True)
    b = estimate_memory(cfg, 20_000_000, 256, 128, 15000, 1664, amp=True)
    assert b["activations"] == pytest.approx(2 * a["activations"])
    assert 1 * 2**30 < b["total"] < 80 * 2**30


def test_memory_estimate_of_the_infonce_split_by_rows():
    cfg = BITConfig.preset("full")
    args = (cfg, 20_000_000, 256, 8, 15000, 512, True)
    base = estimate_memory(*args)["activations"]
    whole = estimate_memory(*args, contrastive_tokens=32768)["activations"] - base
    split = estimate_memory(*args, contrastive_tokens=32768, contrastive_rows=32768 // 8)["activations"] - base
    assert whole == 16 * 32768**2 and split == 24 * 4096 * 32768  # 16 GiB on every GPU -> 3 GiB on each of 8
