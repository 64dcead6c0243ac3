"""`convperceiver benchmark --pretrain`: the fields of its report, and FLOP counts that show the
encoder reading the visible tokens only.

Timings depend on whoever else uses the machine, so no test asserts on a speed.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json

import pytest
import torch
import torch.nn.functional as F

from convperceiver.cli import main
from convperceiver.config import load_config
from convperceiver.models import build_model
from convperceiver.profiling.flops import training_flops
from convperceiver.profiling.pretrain_cost import format_pretrain_cost, pretrain_cost, step_flops

TINY = [
    "model.cnn_blocks=2",
    "model.weights=none",
    "model.num_latents=8",
    "model.latent_dim=32",
    "model.self_heads=2",
    "model.self_head_dim=16",
    "model.cross_head_dim=16",
    "data.num_frames=4",
    "data.crop_size=32",
    "pretrain.decoder_dim=32",
]
FAST = dict(batch_size=2, repeats=1, warmup=1, threads=1, device="cpu")
FAST_ARGS = ["--batch-size", "2", "--repeats", "1", "--warmup", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def result() -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["benchmark", "--pretrain", "--json", "--device", "cpu", *TINY, *FAST_ARGS])
    assert code == 0
    return json.loads(out.getvalue())


def test_json_has_both_steps_their_ratio_and_the_mask(result):
    for name in ("pretrain", "train"):
        step = result[name]
        for key in ("ms_per_clip", "clips_per_s", "step_gflops"):
            assert step[key] > 0, (name, key)
        assert step["clips_per_s"] * step["ms_per_clip"] == pytest.approx(1000)
        parts = step["forward_gflops"]
        assert parts["cnn"] > 0 and parts["encoder"] > 0
        # A training step is a forward and a backward of about twice its cost.
        assert 2 < step["step_gflops"] / sum(parts.values()) < 3.5
        assert "peak_memory_mb" in step
    ratio = result["ratio"]
    assert ratio["time"] == pytest.approx(
        result["pretrain"]["ms_per_clip"] / result["train"]["ms_per_clip"]
    )
    assert ratio["gflops"] == pytest.approx(
        result["pretrain"]["step_gflops"] / result["train"]["step_gflops"]
    )
    settings = result["settings"]
    assert (settings["batch_size"], settings["threads"], settings["repeats"]) == (2, 1, 1)
    assert settings["clip"] == [3, 4, 32, 32]
    assert settings["optimizer"] == "adamw"
    mask = result["mask"]
    assert mask["grid"] == [4, 16, 16]  # the stem halves space; layer1 keeps it
    assert mask["tokens"] == 4 * 16 * 16
    assert mask["visible_fraction"] == mask["visible_tokens"] / mask["tokens"]
    assert result["train"]["forward_gflops"]["decoder"] == 0
    assert result["pretrain"]["forward_gflops"]["decoder"] > 0


def test_training_step_flops_are_the_summary_training_flops(result):
    config = load_config(None, TINY)
    torch.manual_seed(0)
    model = build_model(config.model, num_classes=10)
    assert result["train"]["step_gflops"] == pytest.approx(
        training_flops(model, (1, 3, 4, 32, 32)) / 1e9
    )


def test_step_flops_with_real_tensors_equal_the_meta_count():
    """The pretraining step is counted with real tensors: the count must not depend on it."""
    model = build_model(load_config(None, TINY).model, num_classes=10).train()
    meta = copy.deepcopy(model).to("meta")
    real_clip, label = torch.randn(1, 3, 4, 32, 32), torch.zeros(1, dtype=torch.long)
    real, counts = step_flops(model, [real_clip], lambda logits: F.cross_entropy(logits, label))
    meta_label = label.to("meta")
    meta_clip = torch.zeros(1, 3, 4, 32, 32, device="meta")
    counted, _ = step_flops(meta, [meta_clip], lambda out: F.cross_entropy(out, meta_label))
    assert real == counted
    assert sum(counts["ConvPerceiver.cross_blocks.0.attend.to_kv"].values()) > 0


@pytest.mark.parametrize("mask_ratio", [0.75, 0.5])
def test_cross_attention_flops_shrink_to_the_visible_fraction(result, mask_ratio):
    if mask_ratio != result["mask"]["ratio"]:
        config = load_config(None, [*TINY, f"pretrain.mask_ratio={mask_ratio}"])
        result = pretrain_cost(config, **FAST)
    mask, cross = result["mask"], result["cross_attention"]
    cells = mask["grid"][1] * mask["grid"][2]
    assert mask["visible_fraction"] == pytest.approx(1 - mask_ratio, abs=0.5 / cells)
    # Counted per module: an encoder that read every token would give 1.0 here.
    assert cross["token_flop_ratio"] == pytest.approx(mask["visible_fraction"], rel=1e-6)
    # The latents' projections and feed-forward do not shrink with the tokens.
    assert mask["visible_fraction"] < cross["block_flop_ratio"] < 1


def test_text_report_states_the_ratio_and_the_saving(result):
    text = format_pretrain_cost(result)
    assert "pretrain/train" in text
    assert f"{result['ratio']['time']:.2f}" in text
    visible = result["mask"]["visible_fraction"]
    token_ratio = result["cross_attention"]["token_flop_ratio"]
    assert f"cross-attention reads {visible:.0%} of the tokens: {token_ratio:.2f}x" in text


@pytest.mark.parametrize("flag", [["--checkpoint", "x.ckpt"], ["--compile"]])
def test_pretrain_with_a_checkpoint_or_compile_is_one_line_and_exit_code_2(flag, capsys):
    code = main(["benchmark", "--pretrain", *flag, *TINY])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip().count("\n") == 0
    assert flag[0] in err


def test_a_self_attention_only_model_cannot_be_pretrained(capsys):
    code = main(["benchmark", "--pretrain", "--device", "cpu", *TINY, "model.cross_blocks=0"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "cross_blocks" in err


def test_forward_parts_put_a_teacher_apart_from_the_encoder():
    from convperceiver.models.backbone import build_backbone
    from convperceiver.models.pretraining import build_pretraining_model
    from convperceiver.profiling.pretrain_cost import forward_parts

    config = load_config(None, TINY)
    teacher = build_backbone(cnn_blocks=config.model.cnn_blocks, weights="none")
    model = build_pretraining_model(config.model, decoder_dim=32, teacher=teacher).train()
    clip = torch.randn(1, 3, 4, 32, 32)
    _, counts = step_flops(model, [clip, model.random_mask(clip)], lambda output: output.loss)
    parts = forward_parts(counts, model)
    # The teacher is the student's CNN unmasked: the same convolutions on the same clip.
    assert parts["teacher"] == pytest.approx(parts["cnn"])
    assert parts["decoder"] > 0
    assert 0 < parts["encoder"] < parts["cnn"]
