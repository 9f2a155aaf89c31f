import copy
import json
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import deberta_common.rules
import deberta_pt
from deberta_common.checkpoints import CheckpointError
from variants import HEADS, VARIANTS, build_pt, make_batch, make_config, make_labels


def torch_batch(config, **kwargs):
    return {k: torch.from_numpy(v) for k, v in make_batch(config, **kwargs).items()}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("head", HEADS)
def test_output_shapes(head, variant):
    config = make_config(variant, num_labels=3)
    model = build_pt(head, config)
    batch = torch_batch(config)
    labels = {k: torch.from_numpy(v) for k, v in make_labels(head, config, make_batch(config)).items()}
    out = model(**batch, **labels, output_hidden_states=True, output_attentions=True)
    b, length, h = 3, 11, config.hidden_size
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert all(x.shape == (b, length, h) for x in out.hidden_states)
    assert len(out.attentions) == config.num_hidden_layers
    assert all(a.shape == (b, config.num_attention_heads, length, length) for a in out.attentions)
    expected = {
        "Model": {"last_hidden_state": (b, length, h)},
        "ForMaskedLM": {"logits": (b, length, config.vocab_size)},
        "ForSequenceClassification": {"logits": (b, 3)},
        "ForTokenClassification": {"logits": (b, length, 3)},
        "ForQuestionAnswering": {"start_logits": (b, length), "end_logits": (b, length)},
    }[head]
    for field, shape in expected.items():
        assert tuple(out[field].shape) == shape
        assert torch.isfinite(out[field]).all()
    if head != "Model":
        assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    # return_dict=False: the same values as a tuple in the documented order, None entries left out; to float32
    # rounding, since without output_attentions the attention is the fused one
    as_tuple = model(**batch, **labels, return_dict=False)
    names = [n for n in type(out)._fields if n not in ("hidden_states", "attentions")]
    assert len(as_tuple) == len(names)
    for value, name in zip(as_tuple, names):
        torch.testing.assert_close(value, out[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", ["absolute", "relative", "short_span", "talking_head", "token_types"])
def test_masked_probabilities_are_exactly_zero(variant):
    config = make_config(variant)
    model = build_pt("Model", config)
    batch = torch_batch(config)
    out = model(**batch, output_attentions=True)
    mask = batch["attention_mask"].bool()
    pair = mask[:, None, :, None] & mask[:, None, None, :]
    for probs in out.attentions:
        if not config.talking_head:  # talking heads mix heads after softmax: only padded rows stay zero
            assert (probs.masked_select(~pair) == 0).all()
            torch.testing.assert_close(probs.sum(-1)[mask[:, None, :].expand_as(probs.sum(-1))],
                                       torch.ones_like(probs.sum(-1)[mask[:, None, :].expand_as(probs.sum(-1))]))
        padded_rows = ~mask[:, None, :, None].expand_as(probs)
        assert (probs.masked_select(padded_rows) == 0).all()


@pytest.mark.parametrize("variant", ["absolute", "relative", "both_positions", "short_span", "p2c", "none"])
def test_fused_attention_equals_plain_attention(variant):
    config = make_config(variant)
    model = build_pt("ForMaskedLM", config)
    batch = torch_batch(config)
    fused = model(**batch, output_hidden_states=True)
    config.attn_implementation = "eager"
    plain = build_pt("ForMaskedLM", config)
    plain.load_state_dict(model.state_dict())
    reference = plain(**batch, output_hidden_states=True)
    for a, b in zip(fused.hidden_states, reference.hidden_states):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # every position, padded ones included
    torch.testing.assert_close(fused.logits, reference.logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", ["absolute", "relative", "short_span", "token_types", "talking_head"])
def test_padded_batch_equals_each_sequence_alone(variant):
    config = make_config(variant)
    model = build_pt("Model", config)
    batch = torch_batch(config)
    together = model(**batch).last_hidden_state
    for row in range(3):
        n = int(batch["attention_mask"][row].sum())
        alone = model(**{k: v[row : row + 1, :n] for k, v in batch.items()}).last_hidden_state
        torch.testing.assert_close(together[row, :n], alone[0], rtol=0, atol=1e-5)


def test_relative_rows_follow_the_original_clamping():
    # L = 5 with R = 3: span s = 3; distance i - j uses row clamp(i - j + 3, 0, 5) + R - s
    rows = deberta_pt.modeling.build_relative_position(5, 3, 3, torch.device("cpu"))
    assert rows.tolist() == [min(max(d + 3, 0), 5) for d in range(-5, 5)]
    # L = 4 with R = 10: s = 4, rows R - s + (d + s) = 10 + d, no clamping
    rows = deberta_pt.modeling.build_relative_position(4, 4, 10, torch.device("cpu"))
    assert rows.tolist() == [10 + d for d in range(-4, 4)]


@pytest.mark.parametrize("rows", [1, 4, 6])
def test_relative_band_equals_a_gather(rows):
    length = 6
    scores = torch.randn(2, 3, rows, rows + length)
    a, j = torch.meshgrid(torch.arange(rows), torch.arange(length), indexing="ij")
    band = deberta_pt.modeling.relative_band(scores, length, transposed=False)
    assert torch.equal(band, scores[:, :, a, rows - 1 - a + j])
    band = deberta_pt.modeling.relative_band(scores, length, transposed=True)
    assert torch.equal(band, scores[:, :, a, rows + j - a].transpose(-1, -2))


def autograd_nodes(tensor: torch.Tensor) -> set:
    """The names of the backward nodes that `tensor` depends on."""
    seen, names, todo = set(), set(), [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        todo.extend(next_node for next_node, _ in node.next_functions)
    return names


@pytest.mark.parametrize("recorded", [False, True])  # scores into one buffer; the same through RelativeScores
@pytest.mark.parametrize("block", [256, 2, 3])  # one block; blocks of 2 and 3 positions (uneven last block)
def test_attention_against_a_direct_computation(block, recorded):
    """One relative-attention layer written out from the formulas, score by score; where autograd records the
    layer, also the gradients of its input and of every weight it reads."""
    config = make_config("relative", num_hidden_layers=1, max_relative_positions=3)
    model = build_pt("Model", config, std=0.1)
    att = model.encoder.layer[0].attention.self
    att.relative_block = block
    x = torch.randn(1, 5, config.hidden_size, requires_grad=True)
    H, d = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    rel = model.encoder.rel_embeddings.weight  # (2R, hidden), R = 3, span = min(5, 3) = 3
    scale = math.sqrt(d * 3)

    def direct() -> torch.Tensor:
        w = att.in_proj.weight.view(H, 3 * d, config.hidden_size)  # per-head interleaved q, k, v rows
        kr = (rel @ att.pos_proj.weight.T).view(6, H, d)
        qr = (rel @ att.pos_q_proj.weight.T + att.pos_q_proj.bias).view(6, H, d)
        heads = []
        for h in range(H):
            q = x[0] @ w[h, :d].T + att.q_bias.view(H, d)[h]
            k = x[0] @ w[h, d : 2 * d].T
            v = x[0] @ w[h, 2 * d :].T + att.v_bias.view(H, d)[h]
            scores = torch.stack([torch.stack([
                q[i] @ k[j] + q[i] @ kr[min(max(i - j + 3, 0), 5), h] + k[j] @ qr[min(max(i - j + 3, 0), 5), h]
                for j in range(5)]) for i in range(5)]) / scale
            heads.append(torch.softmax(scores, -1) @ v)
        return torch.cat(heads, -1)[None]

    mask = torch.ones(1, 1, 5, 5, dtype=torch.bool)
    rows = deberta_pt.modeling.build_relative_position(5, 3, 3, x.device)
    with torch.set_grad_enabled(recorded):
        got, _ = att(x, mask, rel_embeddings=rel[rows])
    expected = direct()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    if recorded:
        # the scores of several blocks, with positions beyond the span: one node, not writes into slices
        assert "RelativeScoresBackward" in autograd_nodes(got) and "CopySlices" not in autograd_nodes(got)
        inputs = [x, rel, *att.parameters()]
        probe = torch.randn_like(got)
        for a, b in zip(torch.autograd.grad((got * probe).sum(), inputs),
                        torch.autograd.grad((expected * probe).sum(), inputs)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("transposed", [False, True])  # c2p, p2c
@pytest.mark.parametrize("block", [256, 2, 3])
def test_relative_scores_gradients(block, transposed):
    """`RelativeScores`' backward, and the backward of its backward (second derivatives, which the plain attention
    supports), against numerical derivatives (float64): batch 2, 2 heads, 7 positions, span 3, so that blocks of
    2 or 3 have scores beyond the span on both sides."""
    length, span = 7, 3
    windows = deberta_common.rules.relative_windows(length, span, transposed, block)
    assert block > length or (any(w[2] > 0 for w in windows) and any(w[3] < length for w in windows))
    content = torch.randn(2, 2, length, 4, dtype=torch.float64, requires_grad=True)
    positions = torch.randn(2, 2 * length, 4, dtype=torch.float64, requires_grad=True)
    score = torch.randn(2, 2, length, length, dtype=torch.float64, requires_grad=True)

    def function(c, p, s=None):  # into a new buffer, or added in place into a copy of s
        return deberta_pt.modeling.RelativeScores.apply(None if s is None else s * 1, c, p, windows, transposed, None)

    for inputs in ((content, positions), (content, positions, score)):
        # fast mode: the Jacobians against random directions, not every entry (a minute less for the six cases)
        assert torch.autograd.gradcheck(function, inputs, fast_mode=True)
        assert torch.autograd.gradgradcheck(function, inputs, fast_mode=True)
    # and the same scores as without autograd
    with torch.no_grad():
        expected = deberta_pt.modeling.add_relative_scores(None, content, positions, windows, transposed)
    torch.testing.assert_close(function(content, positions), expected, rtol=0, atol=0)
    torch.testing.assert_close(function(content, positions, score), score + expected, rtol=0, atol=1e-12)
    # a new buffer starting from a mask's bias: the same scores plus the bias, and the same gradients (the bias
    # is a constant; gradcheck cannot see through it, as its -9e307 swallows any change of the scores)
    for mask in (torch.rand(2, 1, 1, length) > 0.3, torch.rand(2, 1, length, length) > 0.3):
        bias = deberta_pt.modeling.mask_bias(mask, torch.float64)
        masked = deberta_pt.modeling.RelativeScores.apply(None, content, positions, windows, transposed, mask)
        torch.testing.assert_close(masked, expected + bias, rtol=0, atol=0)
        probe = torch.randn(masked.shape, dtype=torch.float64)
        for a, b in zip(torch.autograd.grad((masked * probe).sum(), (content, positions)),
                        torch.autograd.grad((function(content, positions) * probe).sum(), (content, positions))):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    # under autocast, with float32 queries (q + q_bias) and bfloat16 position keys, as in the model: gradients in
    # the inputs' dtypes, close to autograd's own of the writes into slices
    content = content.detach().float().requires_grad_()
    positions = positions.detach().bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = function(content, positions)
        expected = deberta_pt.modeling.add_relative_scores(None, content, positions, windows, transposed)
    probe = torch.randn(got.shape)
    got = torch.autograd.grad((got.float() * probe).sum(), (content, positions))
    expected = torch.autograd.grad((expected.float() * probe).sum(), (content, positions))
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2 * b.abs().max().item())


@pytest.mark.parametrize("transposed", [False, True])  # c2p, p2c
@pytest.mark.parametrize("length, span", [(7, 3), (101, 512), (1030, 512)])
def test_relative_windows_rows_aligned(length, span, transposed):
    """Each block's window of position rows is widened to a multiple of `ROW_ALIGNMENT` rows where the 2L-row
    table has them (cuBLAS's fast kernels), and the widened products give the scores of one window of all rows."""
    windows = deberta_common.rules.relative_windows(length, span, transposed, 3 if length == 7 else 256)
    align = deberta_common.rules.ROW_ALIGNMENT
    for start, stop, inner_start, inner_stop, lo, hi in windows:
        assert hi - lo >= stop - start + inner_stop - inner_start and hi <= 2 * length
        assert (hi - lo) % align == 0 or hi - lo + align - (hi - lo) % align > 2 * length - lo
    if length == 1030:  # every window has the rows (its blocks need 1023, 1279, 1284, 1028 and 522 of them)
        assert all((hi - lo) % 8 == 0 for *_, lo, hi in windows)  # 16 bytes of bfloat16, what cuBLAS needs
    content = torch.randn(1, 2, length, 4, dtype=torch.float64)
    # the table's rows beyond the span repeat its first and last, as `build_relative_position` lays them out
    relative_span = deberta_common.rules.relative_span(length, length, span)
    rows = deberta_pt.modeling.build_relative_position(length, relative_span, relative_span, torch.device("cpu"))
    positions = torch.randn(2, 2 * relative_span, 4, dtype=torch.float64)[:, rows]
    whole = [(0, length, 0, length, 0, 2 * length)]
    got = deberta_pt.modeling.add_relative_scores(None, content, positions, windows, transposed)
    expected = deberta_pt.modeling.add_relative_scores(None, content, positions, whole, transposed)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_vocab_logits_padded_to_alignment():
    """The masked-LM heads' logits with the vocabulary padded to an alignment (as on a GPU): the same logits and
    gradients as without, as a view whose rows skip the padding; on a CPU no padding by default."""
    hidden = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(13, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(13, dtype=torch.float64, requires_grad=True)
    got = deberta_pt.modeling.vocab_logits(hidden, weight, bias, alignment=8)
    expected = hidden @ weight.T + bias
    assert got.shape == (2, 3, 13) and got.stride(-2) == 16
    torch.testing.assert_close(got.view(-1, 13), expected.view(-1, 13), rtol=0, atol=1e-12)
    probe = torch.randn(expected.shape, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad((got * probe).sum(), (hidden, weight, bias)),
                    torch.autograd.grad((expected * probe).sum(), (hidden, weight, bias))):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert deberta_pt.modeling.vocab_logits(hidden, weight, bias).is_contiguous()


@pytest.mark.parametrize("variant", ["relative", "c2p", "p2c"])
def test_layers_share_their_buffers_only_without_autograd(variant, monkeypatch):
    """Without autograd every layer writes its relative scores into one buffer and every block's position products
    into another (each is dead once read), with the same outputs as buffers of their own; with autograd, which may
    keep them for the backward, each layer gets its own scores and the products are new tensors."""
    model = build_pt("Model", make_config(variant, num_hidden_layers=3)).eval()
    batch = torch_batch(model.config)
    buffers, shared = [], deberta_pt.modeling.workspace_buffer

    def record(shape, like, workspace, name="scores"):
        buffers.append((name, shared(shape, like, workspace if sharing else None, name)))
        return buffers[-1][1]

    def run(share: bool, grad: bool):
        nonlocal sharing
        buffers.clear()
        sharing = share
        with torch.set_grad_enabled(grad):
            hidden_states = model(**batch, output_hidden_states=True).hidden_states
        return hidden_states, {name: (sum(n == name for n, _ in buffers),
                                      len({b.data_ptr() for n, b in buffers if n == name}))
                               for name in ("scores", "products")}

    sharing = True
    monkeypatch.setattr(deberta_pt.modeling, "workspace_buffer", record)
    blocks = 3 * len(model.config.pos_att_type)  # one block of queries (keys) per direction at this length
    got, counts = run(share=True, grad=False)
    assert counts == {"scores": (3, 1), "products": (blocks, 1)}
    expected, counts = run(share=False, grad=False)
    assert counts == {"scores": (3, 3), "products": (blocks, blocks)}
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # under autocast the products are not written into a buffer: matmul(out=...) would bypass it
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, counts = run(share=True, grad=False)
    assert counts == {"scores": (3, 1), "products": (0, 0)}
    # autograd on, and only the last layer's value bias trained: every layer builds its scores outside
    # `RelativeScores` (their queries, keys and positions need no gradient), the last one's attention keeps them
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name == "encoder.layer.2.attention.self.v_bias")
    assert sum(p.requires_grad for p in model.parameters()) == 1
    _, counts = run(share=True, grad=True)
    assert counts == {"scores": (3, 3), "products": (0, 0)}


@pytest.mark.parametrize("variant", ["relative", "c2p", "p2c", "p2p", "short_span"])
def test_inference_keeps_position_projections_until_a_weight_changes(variant, monkeypatch):
    """Without autograd, in eval mode, on CPU, each layer projects the whole relative-position table once and keeps
    it between calls (`WeightCache`): the same outputs as projecting each call's rows, at every length, and a new
    projection exactly when its weights or the table changed, however they were changed, or after train()."""
    model = build_pt("Model", make_config(variant, num_hidden_layers=3)).eval()
    table_rows = len(model.encoder.rel_embeddings.weight)
    projected, original = [], deberta_pt.modeling.DisentangledSelfAttention.position_layers
    monkeypatch.setattr(deberta_pt.modeling.DisentangledSelfAttention, "position_layers",
                        lambda self, rows: projected.append(len(rows)) or original(self, rows))

    def check(length: int, rows_per_layer: list):
        batch = torch_batch(model.config, length=length)
        projected.clear()
        expected = model(**batch).last_hidden_state  # autograd on: each call projects its 2L rows
        assert projected == [2 * length] * 3
        projected.clear()
        with torch.no_grad():
            got = model(**batch).last_hidden_state
        assert projected == rows_per_layer
        torch.testing.assert_close(got, expected)

    check(11, [table_rows] * 3)
    check(11, [])
    check(6, [])  # another length reads other rows of the same projections
    copied = copy.deepcopy(model)  # and pickled models: a copy starts empty
    assert all(layer.attention.self.position_cache.entry is None for layer in copied.encoder.layer)
    attention = [layer.attention.self for layer in model.encoder.layer]
    weight = attention[1].pos_q_proj.bias if "p2c" in model.config.pos_att_type else attention[1].pos_proj.weight
    weight.data.add_(0.5)  # no version counter sees this
    check(11, [table_rows])
    model.encoder.rel_embeddings.weight.data[0].mul_(-1)
    check(11, [table_rows] * 3)
    model.train()
    assert all(a.position_cache.entry is None for a in attention)  # nothing held while training
    assert model.encoder.table_version.entry is None
    model.eval()
    check(11, [table_rows] * 3)


def test_relative_rows_are_a_slice_where_no_distance_is_clamped():
    """The rows of the relative-position table for a length: `build_relative_position`'s, as a slice (a view, no
    gather) wherever L <= R leaves every distance unclamped."""
    encoder = build_pt("Model", make_config("short_span")).encoder
    table = torch.arange(2 * encoder.max_relative_positions)
    for length in range(1, 2 * encoder.max_relative_positions + 3):
        rows = encoder.relative_index(length, table.device)
        span = deberta_common.rules.relative_span(length, length, encoder.max_relative_positions)
        expected = deberta_pt.modeling.build_relative_position(length, span, encoder.max_relative_positions, "cpu")
        assert isinstance(rows, slice) == (length <= encoder.max_relative_positions), length
        assert torch.equal(table[rows], expected), length


def test_in_projection_calls_an_in_proj_that_is_hooked_or_replaced(monkeypatch):
    """q, k, v with their biases (per head interleaved, as in_proj's rows), the biases inside the product; a hooked
    in_proj, or a module in its place (an adapter), is called as it is."""
    model = build_pt("Model", make_config("relative"))
    att = model.encoder.layer[0].attention.self
    H, d = att.num_attention_heads, att.attention_head_size
    x = torch.randn(2, 5, model.config.hidden_size)
    plain = (x @ att.in_proj.weight.T).view(2, 5, H, 3, d)
    biases = torch.stack([att.q_bias.view(H, d), torch.zeros(H, d), att.v_bias.view(H, d)], dim=1)
    expected = (plain + biases).view(2, 5, -1)
    with torch.no_grad():
        calls = []
        with monkeypatch.context() as patch:  # a plain in_proj: one product with the biases, not the module's
            patch.setattr(torch.nn.Linear, "forward", lambda self, hidden: calls.append(self) or F.linear(
                hidden, self.weight, self.bias))
            torch.testing.assert_close(att.in_projection(x), expected)
        assert calls == []
        with torch.autocast("cpu", dtype=torch.bfloat16):  # a bfloat16 product plus the float32 biases, as before
            assert att.in_projection(x).dtype == torch.float32
        seen = []
        handle = att.in_proj.register_forward_hook(lambda module, args, output: seen.append(output))
        torch.testing.assert_close(att.in_projection(x), expected)
        handle.remove()
        assert len(seen) == 1
        torch.testing.assert_close(seen[0], plain.view(2, 5, -1))

        class Adapter(torch.nn.Linear):
            def forward(self, hidden):
                return super().forward(hidden) + 1.0

        adapter = Adapter(model.config.hidden_size, 3 * model.config.hidden_size, bias=False)
        adapter.weight = att.in_proj.weight
        att.in_proj = adapter
        torch.testing.assert_close(att.in_projection(x), expected + 1.0)


def test_in_place_activations_equal_the_activations():
    modeling = deberta_pt.modeling
    assert modeling.ACT2FN_INPLACE.keys() == modeling.ACT2FN.keys()
    x = torch.randn(4, 37) * 3
    for name, activation in modeling.ACT2FN.items():
        y = x.clone()
        assert modeling.ACT2FN_INPLACE[name](y).data_ptr() == y.data_ptr(), name
        torch.testing.assert_close(y, activation(x), rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("variant", ["relative", "relu", "tanh"])
def test_feed_forward_activation_in_place_only_where_nothing_else_sees_the_linear(variant, monkeypatch):
    """Without autograd the feed-forward activation runs in place on its linear's output, with the same values;
    not where a forward hook may hold that output (or expects the activation module to run)."""
    monkeypatch.setenv("DEBERTA_ZOO_ONEDNN", "0")  # the product as with autograd, so that the values are equal
    model = build_pt("Model", make_config(variant)).eval()
    intermediate = model.encoder.layer[0].intermediate
    hidden = torch.randn(2, 5, model.config.hidden_size)
    expected = intermediate(hidden)  # autograd on
    in_place = []
    monkeypatch.setattr(deberta_pt.modeling, "ACT2FN_INPLACE", {
        name: (lambda x, f=f, name=name: in_place.append(name) or f(x))
        for name, f in deberta_pt.modeling.ACT2FN_INPLACE.items()})
    with torch.no_grad():
        got = intermediate(hidden)
    assert in_place == [model.config.hidden_act]
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    kept = []
    handle = intermediate.dense.register_forward_hook(lambda module, args, output: kept.append(output))
    in_place.clear()
    with torch.no_grad():
        got = intermediate(hidden)
    handle.remove()
    assert in_place == []
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(kept[0], F.linear(hidden, intermediate.dense.weight, intermediate.dense.bias))
    for handle in (torch.nn.modules.module.register_module_forward_hook(lambda module, args, output: None),
                   intermediate.intermediate_act_fn.register_forward_pre_hook(lambda module, args: None)):
        with torch.no_grad():
            intermediate(hidden)
        handle.remove()
        assert in_place == []


def test_losses_against_direct_computation():
    config = make_config("relative", num_labels=3)
    batch = torch_batch(config)
    mask = batch["attention_mask"]

    mlm = build_pt("ForMaskedLM", config)
    labels = torch.from_numpy(make_labels("ForMaskedLM", config, make_batch(config))["labels"])
    out = mlm(**batch, labels=labels)
    logp = torch.log_softmax(out.logits, -1)
    picked = [-logp[b, i, labels[b, i]] for b in range(3) for i in range(11) if labels[b, i] != -100]
    torch.testing.assert_close(out.loss, torch.stack(picked).mean())

    tok = build_pt("ForTokenClassification", config)
    labels = torch.from_numpy(make_labels("ForTokenClassification", config, make_batch(config))["labels"])
    out = tok(**batch, labels=labels)
    logp = torch.log_softmax(out.logits, -1)
    picked = [-logp[b, i, labels[b, i]] for b in range(3) for i in range(11) if mask[b, i]]
    torch.testing.assert_close(out.loss, torch.stack(picked).mean())

    seq = build_pt("ForSequenceClassification", config)
    logits = seq(**batch).logits
    logp = torch.log_softmax(logits, -1)
    # single label, the negative label ignored
    out = seq(**batch, labels=torch.tensor([2, -1, 0]))
    torch.testing.assert_close(out.loss, -(logp[0, 2] + logp[2, 0]) / 2)
    # no labelled example: zero, not NaN
    assert seq(**batch, labels=torch.tensor([-1, -1, -1])).loss.item() == 0
    # soft labels
    soft = torch.softmax(torch.randn(3, 3), -1)
    torch.testing.assert_close(seq(**batch, labels=soft).loss, -(logp * soft).sum(-1).mean())
    # multi-label through problem_type
    seq.config.problem_type = "multi_label_classification"
    multi = torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 0]])
    p = torch.sigmoid(logits)
    bce = -(multi * torch.log(p) + (1 - multi) * torch.log(1 - p)).mean()
    torch.testing.assert_close(seq(**batch, labels=multi).loss, bce)
    seq.config.problem_type = "single_label_classification"
    torch.testing.assert_close(seq(**batch, labels=torch.tensor([2, 1, 0])).loss,
                               -(logp[0, 2] + logp[1, 1] + logp[2, 0]) / 3)
    # regression with one label
    reg = build_pt("ForSequenceClassification", make_config("relative", num_labels=1))
    target = torch.tensor([0.5, -1.0, 2.0])
    pred = reg(**batch).logits.view(-1)
    torch.testing.assert_close(reg(**batch, labels=target).loss, ((pred - target) ** 2).mean())

    qa = build_pt("ForQuestionAnswering", config)
    out = qa(**batch)
    start, end = torch.tensor([1, -4, 30]), torch.tensor([3, 2, 4])
    ls, le = torch.log_softmax(out.start_logits, -1), torch.log_softmax(out.end_logits, -1)
    # start -4 clamps to 0; start 30 is past L = 11: ignored
    expected_start = -(ls[0, 1] + ls[1, 0]) / 2
    expected_end = -(le[0, 3] + le[1, 2] + le[2, 4]) / 3
    torch.testing.assert_close(qa(**batch, start_positions=start, end_positions=end).loss,
                               (expected_start + expected_end) / 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cross_entropy_over_several_blocks_of_rows(dtype):
    """The loss keeps float32 to a block of rows at a time (333 rows at the deberta-base vocabulary, so 700 rows
    are three blocks) and computes the softmax again in the backward: loss and gradient as F.cross_entropy's on
    the float32 logits, over the labels that are not -100."""
    torch.manual_seed(0)
    logits = (torch.randn(2, 350, 50265) * 4).to(dtype).requires_grad_()
    labels = torch.randint(0, 50265, (2, 350))
    labels[0, ::3] = -100
    loss = deberta_pt.modeling.masked_cross_entropy(logits, labels, -100)
    (grad,) = torch.autograd.grad(loss, logits)
    kept = labels != -100
    expected = F.cross_entropy(logits.float()[kept], labels[kept])
    (expected_grad,) = torch.autograd.grad(expected, logits)
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    # in bfloat16 the two may round a gradient to neighbouring values
    torch.testing.assert_close(grad, expected_grad, rtol=0 if dtype == torch.float32 else 2**-7, atol=1e-9)
    if dtype == torch.float32:  # the backward is differentiable too: second derivatives as F.cross_entropy's
        direction = torch.randn_like(logits)
        second = [torch.autograd.grad((torch.autograd.grad(f, logits, create_graph=True)[0] * direction).sum(),
                                      logits)[0]
                  for f in (deberta_pt.modeling.masked_cross_entropy(logits, labels, -100),
                            F.cross_entropy(logits.float()[kept], labels[kept]))]
        torch.testing.assert_close(second[0], second[1], rtol=1e-5, atol=1e-6 * second[1].abs().max().item())


@pytest.mark.parametrize("safe", [True, False])
@pytest.mark.parametrize("head", HEADS)
def test_save_load_round_trip_is_exact(tmp_path, head, safe):
    config = make_config("relative")
    model = build_pt(head, config)
    files = model.save_pretrained(tmp_path, safe_serialization=safe)
    assert [f.split("/")[-1] for f in files] == ["model.safetensors" if safe else "pytorch_model.bin"]
    loaded, info = getattr(deberta_pt, "Deberta" + head).from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["Deberta" + head]
    batch = torch_batch(config)
    first = model(**batch)
    second = loaded(**batch)
    for k in first:
        assert torch.equal(first[k], second[k])


def test_tied_embeddings_saved_once(tmp_path):
    config = make_config("relative")
    model = build_pt("ForMaskedLM", config)
    model.tie_weights()
    assert model.cls.predictions.decoder.weight is model.deberta.embeddings.word_embeddings.weight
    model.save_pretrained(tmp_path)
    from deberta_common.checkpoints import CheckpointReader

    keys = CheckpointReader(str(tmp_path)).keys()
    assert "cls.predictions.decoder.weight" not in keys
    assert "deberta.embeddings.word_embeddings.weight" in keys
    loaded = deberta_pt.DebertaForMaskedLM.from_pretrained(tmp_path)
    assert loaded.cls.predictions.decoder.weight is loaded.deberta.embeddings.word_embeddings.weight
    # training the embeddings moves the decoder with them
    loaded.train()
    opt = torch.optim.SGD(loaded.parameters(), lr=1.0)
    batch = torch_batch(config)
    loaded(**batch, labels=batch["input_ids"]).loss.backward()
    opt.step()
    assert torch.equal(loaded.cls.predictions.decoder.weight, loaded.deberta.embeddings.word_embeddings.weight)


def test_non_legacy_mlm_head_scores_against_the_word_embeddings():
    config = make_config("non_legacy_mlm")
    model = build_pt("ForMaskedLM", config)
    names = [n for n, _ in model.named_parameters()]
    assert "lm_predictions.lm_head.dense.weight" in names and "lm_predictions.lm_head.bias" in names
    assert not any(n.startswith("cls.") for n in names)
    batch = torch_batch(config)
    out = model(**batch)
    head = model.lm_predictions.lm_head
    h = model.deberta(**batch).last_hidden_state
    h = F.layer_norm(F.gelu(h @ head.dense.weight.T + head.dense.bias), (config.hidden_size,),
                     head.LayerNorm.weight, head.LayerNorm.bias, config.layer_norm_eps)
    expected = h @ model.deberta.embeddings.word_embeddings.weight.T + head.bias
    torch.testing.assert_close(out.logits, expected, rtol=0, atol=1e-5)
    # with an embedding projection the dense maps hidden -> embedding_size, so the product is defined
    proj = build_pt("ForMaskedLM", make_config("embedding_projection", legacy=False))
    assert proj(**torch_batch(proj.config)).logits.shape == (3, 11, config.vocab_size)


def test_base_checkpoint_into_head_model_and_back(tmp_path):
    config = make_config("relative", num_labels=3)
    base = build_pt("Model", config)
    base.save_pretrained(tmp_path / "base")
    head, info = deberta_pt.DebertaForSequenceClassification.from_pretrained(
        tmp_path / "base", output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight", "pooler.dense.bias",
                                            "pooler.dense.weight"]
    assert info["unexpected_keys"] == []
    batch = torch_batch(config)
    torch.testing.assert_close(head.deberta(**batch).last_hidden_state, base(**batch).last_hidden_state,
                               rtol=0, atol=0)
    head.save_pretrained(tmp_path / "head")
    again, info = deberta_pt.DebertaModel.from_pretrained(tmp_path / "head", output_loading_info=True)
    assert info["missing_keys"] == []
    assert sorted(info["unexpected_keys"]) == ["classifier.bias", "classifier.weight", "pooler.dense.bias",
                                               "pooler.dense.weight"]
    torch.testing.assert_close(again(**batch).last_hidden_state, base(**batch).last_hidden_state, rtol=0, atol=0)


def test_sharded_save_and_load(tmp_path):
    config = make_config("relative")
    model = build_pt("ForMaskedLM", config)
    files = model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(files) > 3
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(model.state_dict()) - {"cls.predictions.decoder.weight"}
    assert not (tmp_path / "model.safetensors").exists()
    loaded = deberta_pt.DebertaForMaskedLM.from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    # .bin shards too
    model.save_pretrained(tmp_path / "bin", safe_serialization=False, max_shard_size="20KB")
    assert (tmp_path / "bin" / "pytorch_model.bin.index.json").exists()
    loaded = deberta_pt.DebertaForMaskedLM.from_pretrained(tmp_path / "bin")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_shape_mismatch_is_an_error_unless_ignored(tmp_path, caplog):
    build_pt("ForSequenceClassification", make_config("relative", num_labels=3)).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"classifier.weight.*\(3, 32\).*\(5, 32\)"):
        deberta_pt.DebertaForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    with caplog.at_level(logging.WARNING, logger="deberta_pt"):
        model, info = deberta_pt.DebertaForSequenceClassification.from_pretrained(
            tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True)
    assert {m[0] for m in info["mismatched_keys"]} == {"classifier.weight", "classifier.bias"}
    assert model.classifier.weight.shape == (5, 32)
    assert "re-initialised" in caplog.text


def test_missing_and_unexpected_are_reported(tmp_path, caplog):
    from deberta_common.checkpoints import write_safetensors

    config = make_config("absolute")
    model = build_pt("Model", config)
    model.save_pretrained(tmp_path)
    state = {k: v.numpy() for k, v in model.state_dict().items() if "layer.1.output" not in k}
    state["some.other.weight"] = np.zeros(3, dtype=np.float32)
    state["embeddings.position_ids"] = np.arange(64)  # a buffer older checkpoints carry: ignored quietly
    write_safetensors(str(tmp_path / "model.safetensors"), [(k, v, str(v.dtype)) for k, v in state.items()])
    with caplog.at_level(logging.WARNING, logger="deberta_pt"):
        _, info = deberta_pt.DebertaModel.from_pretrained(tmp_path, output_loading_info=True)
    assert sorted(info["missing_keys"]) == sorted(k for k in model.state_dict() if "layer.1.output" in k)
    assert info["unexpected_keys"] == ["some.other.weight"]
    assert "newly initialised" in caplog.text and "some.other.weight" in caplog.text


def test_torch_dtype(tmp_path):
    model = build_pt("Model", make_config("relative"))
    model.to(torch.bfloat16).save_pretrained(tmp_path)
    assert deberta_pt.DebertaModel.from_pretrained(tmp_path, torch_dtype="auto").embeddings.LayerNorm.weight.dtype \
        == torch.bfloat16
    f16 = deberta_pt.DebertaModel.from_pretrained(tmp_path, torch_dtype=torch.float16)
    assert all(p.dtype == torch.float16 for p in f16.parameters())
    f32 = deberta_pt.DebertaModel.from_pretrained(tmp_path)
    assert torch.equal(f32.encoder.rel_embeddings.weight, model.encoder.rel_embeddings.weight.float())


@pytest.mark.parametrize("variant", ["relative", "absolute"])
def test_gradient_checkpointing_gives_the_same_gradients(variant):
    config = make_config(variant)
    batch = torch_batch(config)
    labels = torch.from_numpy(make_labels("ForMaskedLM", config, make_batch(config))["labels"])
    grads = []
    for checkpointing in (False, True):
        model = build_pt("ForMaskedLM", config).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        model(**batch, labels=labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6, msg=name)


def assert_fused_training_equals_plain(variant: str, dropout: float) -> None:
    """One masked-LM training step with the fused and with the plain attention, from the same weights and seed:
    same loss, same gradients."""
    results = []
    for implementation in ("eager", "sdpa"):
        config = make_config(variant, attention_probs_dropout_prob=dropout, hidden_dropout_prob=dropout,
                             attn_implementation=implementation)
        batch = torch_batch(config)
        labels = torch.from_numpy(make_labels("ForMaskedLM", config, make_batch(config))["labels"])
        model = build_pt("ForMaskedLM", config).train()
        torch.manual_seed(1)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        results.append((loss, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (plain_loss, plain), (fused_loss, fused) = results
    torch.testing.assert_close(fused_loss, plain_loss, rtol=1e-6, atol=0)
    assert fused.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("variant", ["relative", "short_span", "p2p"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_attention_training_equals_plain_attention(variant, dropout):
    """Training with relative attention on CPU runs `SavedProbabilitiesAttention`, which draws the same dropout
    as the plain softmax path under the same seed."""
    assert_fused_training_equals_plain(variant, dropout)


def test_sdpa_training_with_a_bias_that_needs_a_gradient(monkeypatch):
    """The GPU path of training (SDPA limited to the kernels that differentiate the bias), run here through
    SDPA's math kernel (whose dropout differs from the plain path's: none here)."""
    monkeypatch.setattr(deberta_pt.modeling, "SAVED_PROBABILITIES_DEVICES", ())
    assert_fused_training_equals_plain("relative", 0.0)


def test_second_derivatives_are_refused_not_wrong():
    """CPU training's fused attention saves the probabilities, not how they were made: differentiating twice
    raises instead of leaving out terms. The plain attention path takes second derivatives."""
    config = make_config("relative")
    batch = torch_batch(config)
    labels = torch.from_numpy(make_labels("ForMaskedLM", config, make_batch(config))["labels"])
    for implementation in ("sdpa", "eager"):
        config.attn_implementation = implementation
        model = build_pt("ForMaskedLM", config).train()
        loss = model(**batch, labels=labels).loss
        grads = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
        penalty = sum((g**2).sum() for g in grads)
        if implementation == "sdpa":
            with pytest.raises(RuntimeError, match="differentiate twice"):
                penalty.backward()
        else:
            penalty.backward()


def test_inputs_embeds_and_position_ids():
    config = make_config("both_positions")
    model = build_pt("Model", config)
    batch = torch_batch(config)
    by_ids = model(**batch).last_hidden_state
    embeds = model.embeddings.word_embeddings(batch["input_ids"])
    by_embeds = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(by_ids, by_embeds, rtol=0, atol=1e-6)
    explicit = model(**batch, position_ids=torch.arange(11)[None].expand(3, 11)).last_hidden_state
    torch.testing.assert_close(by_ids, explicit, rtol=0, atol=1e-6)
    shifted = model(**batch, position_ids=torch.arange(5, 16)[None].expand(3, 11)).last_hidden_state
    assert not torch.allclose(by_ids, shifted)


def test_get_set_and_resize_token_embeddings():
    config = make_config("relative")
    model = build_pt("ForMaskedLM", config)
    old = model.get_input_embeddings().weight.detach().clone()
    new = model.resize_token_embeddings(120)
    assert new.weight.shape == (120, 32) and model.config.vocab_size == 120
    assert torch.equal(new.weight[:99], old)
    assert model.cls.predictions.bias.shape == (120,)
    assert model.cls.predictions.decoder.weight is new.weight
    batch = torch_batch(config)
    batch["input_ids"][0, 0] = 110
    assert model(**batch).logits.shape == (3, 11, 120)
    other = build_pt("ForMaskedLM", make_config("non_legacy_mlm"))
    other.resize_token_embeddings(90)
    assert other.lm_predictions.lm_head.bias.shape == (90,)
    assert other(**{k: v.clamp(max=89) for k, v in batch.items()}).logits.shape == (3, 11, 90)
    emb = torch.nn.Embedding(99, 32)
    model2 = build_pt("Model", config)
    model2.set_input_embeddings(emb)
    assert model2.get_input_embeddings() is emb


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(input_ids=torch.tensor([[1, 2, 99]])), ValueError, ["input_ids", "[0, 99)", "99"]),
        (dict(input_ids=torch.tensor([[1, -2, 3]])), ValueError, ["input_ids", "-2"]),
        (dict(input_ids=torch.tensor([[1.0, 2.0]])), TypeError, ["input_ids", "float"]),
        (dict(input_ids=torch.tensor([1, 2])), ValueError, ["(batch, length)"]),
        (dict(input_ids=torch.ones(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 4)), ValueError,
         ["attention_mask", "(2, 4)", "(2, 3)"]),
        (dict(input_ids=torch.ones(1, 70, dtype=torch.long)), ValueError, ["70", "max_position_embeddings"]),
        (dict(), ValueError, ["input_ids", "inputs_embeds"]),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, error, words):
    model = build_pt("Model", make_config("absolute"))
    with pytest.raises(error) as err:
        model(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_token_type_ids_out_of_range():
    model = build_pt("Model", make_config("token_types"))
    with pytest.raises(ValueError, match=r"token_type_ids must be in \[0, 2\)"):
        model(input_ids=torch.ones(1, 3, dtype=torch.long), token_type_ids=torch.tensor([[0, 1, 2]]))


def test_not_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="local folders only"):
        deberta_pt.DebertaModel.from_pretrained("microsoft/deberta-base")
    (tmp_path / "config.json").write_text(make_config("absolute").to_json_string())
    with pytest.raises(FileNotFoundError, match="no weight file"):
        deberta_pt.DebertaModel.from_pretrained(tmp_path)


def test_matches_transformers_when_installed(tmp_path):
    """Optional: compare with the established implementation where it happens to be installed."""
    transformers = pytest.importorskip("transformers")
    for variant in ("absolute", "relative", "short_span", "talking_head", "embedding_projection"):
        config = make_config(variant)
        reference = transformers.DebertaForMaskedLM(transformers.DebertaConfig(**config.to_dict())).eval()
        with torch.no_grad():
            for p in reference.parameters():
                p.normal_(0, 0.2)
        reference.save_pretrained(tmp_path / variant)
        ours = deberta_pt.DebertaForMaskedLM.from_pretrained(tmp_path / variant)
        batch = torch_batch(config)
        mask = batch["attention_mask"].bool()
        with torch.no_grad():
            a, b = reference(**batch).logits, ours(**batch).logits
        torch.testing.assert_close(a[mask], b[mask], rtol=0, atol=1e-5)
