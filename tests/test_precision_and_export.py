"""Low precision (PyTorch half / bfloat16 / autocast, Keras mixed precision) and export (torch.compile,
torch.export, ONNX, TensorFlow SavedModel)."""

import numpy as np
import pytest
import torch

import deberta_pt
from variants import HEADS, build_pt, make_batch, make_config, make_labels

# Largest |difference| from float32, relative to the largest |float32 output|, documented in docs/pytorch.md.
TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 6e-2}


def long_batch(config, length=512):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, config.vocab_size, size=(2, length))
    mask = np.ones((2, length), dtype=np.int64)
    mask[1, length // 3 :] = 0
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inference_on_long_inputs(dtype):
    config = make_config("relative", max_position_embeddings=512, num_labels=3)
    model = build_pt("ForMaskedLM", config, std=0.05)
    with torch.no_grad():  # large activations: embeddings far from unit scale
        model.deberta.embeddings.word_embeddings.weight.mul_(40)
    batch = long_batch(config)
    reference = model(**batch, output_hidden_states=True)
    low = build_pt("ForMaskedLM", config, std=0.05)
    low.load_state_dict(model.state_dict())
    low.to(dtype)
    out = low(**batch, output_hidden_states=True)
    for ref, got in zip(reference.hidden_states + (reference.logits,), out.hidden_states + (out.logits,)):
        assert torch.isfinite(got).all()  # padded rows included
        scale = ref.abs().max().item()
        assert (got.float() - ref).abs().max().item() <= TOLERANCE[dtype] * max(scale, 1.0)


def test_autocast_inference_and_the_attention_paths():
    config = make_config("relative", max_position_embeddings=512)
    model = build_pt("Model", config, std=0.05)
    batch = long_batch(config)
    reference = model(**batch).last_hidden_state
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = model(**batch).last_hidden_state
        plain = model(**batch, output_attentions=True).last_hidden_state
    for got in (fused, plain):
        assert torch.isfinite(got).all()
        assert (got.float() - reference).abs().max() <= TOLERANCE[torch.bfloat16] * reference.abs().max()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_training_with_grad_scaler_keeps_the_loss_finite(dtype):
    config = make_config("relative", num_labels=3)
    model = build_pt("ForSequenceClassification", config, std=0.05).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu")
    batch = {k: torch.from_numpy(v) for k, v in make_batch(config).items()}
    labels = torch.tensor([0, 1, 2])
    losses = []
    for _ in range(12):  # the scaler may skip the first steps while it finds its scale
        with torch.autocast("cpu", dtype=dtype):
            loss = model(**batch, labels=labels).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


# ----------------------------------------------------------------------------- compile and export
@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS + ("ForMultipleChoice",))
def test_torch_compile_fullgraph_dynamic(head):
    """Every head traces into one graph with symbolic lengths, which a second length runs without recompiling.
    Through AOTAutograd (functionalisation, the decompositions) but not Inductor's code generation, which the tests
    below cover: Inductor compiles about 1.5 s of C++ per kernel on a 2-core machine, minutes for the six heads."""
    config = make_config("relative", num_labels=3, num_hidden_layers=1)  # Dynamo unrolls the layers
    model = build_pt(head, config, std=0.2)
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend="aot_eager")
    for length, stance in ((11, "default"), (7, "fail_on_recompile")):
        arrays = make_batch(config, length=length)  # contiguous: Dynamo guards on strides
        batch = {k: torch.from_numpy(v) for k, v in arrays.items()}
        labels = {k: torch.from_numpy(v) for k, v in make_labels(head, config, arrays).items()}
        if head == "ForMultipleChoice":
            batch = {k: v[:2, None].expand(2, 2, -1) for k, v in batch.items()}
            labels = {"labels": torch.tensor([1, 0])}
        with torch.no_grad(), torch.compiler.set_stance(stance):
            eager, graph = model(**batch, **labels), compiled(**batch, **labels)
        for key in eager:
            torch.testing.assert_close(graph[key], eager[key], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_inference_in_blocks_matches_eager():
    """Compiled inference (the relative scores concatenated, `concatenated_relative_scores`) gives eager's outputs
    with the scores in blocks of 3, scores beyond the span, and a padded batch and a packed (pair) mask."""
    config = make_config("short_span")
    model = build_pt("ForMaskedLM", config, std=0.2)
    for module in model.modules():
        if isinstance(module, deberta_pt.modeling.DisentangledSelfAttention):
            module.relative_block = 3
    batch = {k: torch.from_numpy(v) for k, v in make_batch(config).items()}
    pairs = batch["attention_mask"][:, :, None] * batch["attention_mask"][:, None, :]
    pairs[0, :5, 5:] = pairs[0, 5:, :5] = 0  # row 0 packs two sequences
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        for mask in (batch["attention_mask"], pairs):
            inputs = {**batch, "attention_mask": mask}
            torch.testing.assert_close(compiled(**inputs).logits, model(**inputs).logits, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("block, backend", [(3, "aot_eager"), (None, "inductor")])
def test_torch_compile_training_matches_eager(block, backend):
    """A compiled masked-LM step gives eager's gradients, with scores beyond the span (`RelativeScores` and its
    backward under the compiler): in blocks of 3 traced by AOTAutograd, and in one block through Inductor (whose
    C++ for blocks of 3 takes minutes to compile on a 2-core machine)."""
    config = make_config("short_span", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = build_pt("ForMaskedLM", config, std=0.2).train()
    for module in model.modules():
        if isinstance(module, deberta_pt.modeling.DisentangledSelfAttention):
            module.relative_block = block or module.relative_block
    batch = {k: torch.from_numpy(v) for k, v in make_batch(config).items()}
    labels = torch.from_numpy(make_labels("ForMaskedLM", config, make_batch(config))["labels"])

    def gradients(fn) -> dict:
        model.zero_grad()
        fn(**batch, labels=labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    eager, graph = gradients(model), gradients(torch.compile(model, fullgraph=True, backend=backend))
    for name in eager:
        torch.testing.assert_close(graph[name], eager[name], rtol=0, atol=1e-5, msg=name)


def test_torch_export_matches_eager():
    config = make_config("relative", num_labels=3)
    model = build_pt("ForSequenceClassification", config, std=0.2)
    batch = {k: torch.from_numpy(v) for k, v in make_batch(config).items()}
    batch_dim, length_dim = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("length", min=2, max=64)
    program = torch.export.export(model, (), batch, dynamic_shapes={
        "input_ids": {0: batch_dim, 1: length_dim}, "attention_mask": {0: batch_dim, 1: length_dim}})
    for rows, length in ((3, 11), (2, 5)):
        part = {k: v[:rows, :length] for k, v in batch.items()}
        torch.testing.assert_close(program.module()(**part).logits, model(**part).logits, rtol=0, atol=1e-6)


class LogitsOf(torch.nn.Module):
    """ONNX takes positional tensors and returns tensors."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out.logits if "logits" in out else out.last_hidden_state


@pytest.mark.slow
@pytest.mark.parametrize("head", ["Model", "ForSequenceClassification"])
def test_onnx_export_runs_in_onnxruntime(tmp_path, head):
    ort = pytest.importorskip("onnxruntime")  # a test extra; installed by `make test`
    config = make_config("relative", num_labels=3)
    wrapped = LogitsOf(build_pt(head, config, std=0.2)).eval()
    batch = make_batch(config)
    args = (torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"]))
    path = str(tmp_path / "model.onnx")
    torch.onnx.export(wrapped, args, path, dynamo=True, input_names=["input_ids", "attention_mask"],
                      dynamic_shapes={"input_ids": {0: "batch", 1: "length"},
                                      "attention_mask": {0: "batch", 1: "length"}})
    session = ort.InferenceSession(path)
    rng = np.random.default_rng(5)
    for rows, length in ((3, 11), (1, 4), (5, 23)):
        ids = rng.integers(1, config.vocab_size, size=(rows, length))
        mask = np.ones((rows, length), dtype=np.int64)
        mask[0, length // 2 :] = 0
        got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        expected = wrapped(torch.from_numpy(ids), torch.from_numpy(mask)).detach().numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("head", ["Model", "ForSequenceClassification", "ForMultipleChoice"])
def test_tensorflow_saved_model_reloads_and_matches(tmp_path, head):
    import tensorflow as tf

    import deberta_tf

    config = make_config("relative", num_labels=3)
    model = getattr(deberta_tf, "TFDeberta" + head)(config)
    tf.saved_model.save(model, str(tmp_path / "saved"))  # the default signature: int32 ids and mask
    serve = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    batch = make_batch(config)
    field = "last_hidden_state" if head == "Model" else "logits"
    for rows, length in ((3, 11), (2, 6)):
        inputs = {k: tf.constant(batch[k][:rows, :length], tf.int32) for k in ("input_ids", "attention_mask")}
        if head == "ForMultipleChoice":
            inputs = {k: tf.stack([v, v[::-1]], axis=1) for k, v in inputs.items()}
        expected = model(inputs, training=False)[field].numpy()
        np.testing.assert_allclose(serve(**inputs)[field].numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_keras_mixed_precision_on_long_inputs(tmp_path, policy):
    import keras

    import deberta_tf

    config = make_config("relative", max_position_embeddings=512)
    model = build_pt("ForMaskedLM", config, std=0.05)
    with torch.no_grad():  # large activations, as in the PyTorch test
        model.deberta.embeddings.word_embeddings.weight.mul_(40)
    model.save_pretrained(tmp_path)
    batch = {k: v.numpy() for k, v in long_batch(config).items()}
    reference = deberta_tf.TFDebertaForMaskedLM.from_pretrained(tmp_path)(batch, output_hidden_states=True)
    keras.mixed_precision.set_global_policy(policy)
    try:
        low = deberta_tf.TFDebertaForMaskedLM.from_pretrained(tmp_path)
        out = low(batch, output_hidden_states=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    tolerance = TOLERANCE[torch.float16 if policy == "mixed_float16" else torch.bfloat16]
    for ref, got in zip(reference.hidden_states + (reference.logits,), out.hidden_states + (out.logits,)):
        got = np.asarray(got, dtype=np.float32)
        assert np.isfinite(got).all()  # padded rows included
        scale = float(np.abs(ref.numpy()).max())
        assert np.abs(got - ref.numpy()).max() <= tolerance * max(scale, 1.0)
