"""explain: cross-attention maps and Grad-CAM on real and synthetic clips, drawn as GIF and PNG."""

from pathlib import Path

import pytest
import torch
from conftest import tiny_model_config
from data_fixtures import shared_videos
from PIL import Image

from convperceiver.cli import main
from convperceiver.data.eval_clips import eval_clip_spec, middle_clip
from convperceiver.data.transforms import normalize_clips
from convperceiver.explain.explain import (
    ExplainError,
    cross_attention_map,
    cross_attention_weights,
    explain_video,
    grad_cam,
    most_peaked_latents,
)
from convperceiver.models import build_model
from convperceiver.models.backbone import MAX_BLOCKS, output_grid

# tiny_overrides: 4 frames, a 28-pixel crop and 2 CNN blocks.
FRAMES, CROP, CNN_BLOCKS = 4, 28, 2
GRID = output_grid(CNN_BLOCKS, FRAMES, CROP, CROP)


def video_for(source: str, tiny_run) -> Path:
    return shared_videos()[0] if source == "shared" else tiny_run[1]


@pytest.mark.parametrize("source", ["shared", "synthetic"])
def test_explain_writes_a_gif_and_a_contact_sheet(source, tiny_run, trained, tmp_path):
    model, config, class_names = trained
    video = video_for(source, tiny_run)
    result = explain_video(model, config, class_names, video, out=tmp_path, latents=2)
    assert result.method == "cross-attention"
    assert result.paths == [tmp_path / f"{video.stem}_explain.gif", result.sheet]
    with Image.open(result.gif) as gif:
        assert gif.n_frames == FRAMES
        # clip, mean attention and 2 latents side by side, enlarged to at least 224 pixels high
        scale = -(-224 // CROP)
        assert gif.size == ((4 * CROP + 3 * 2) * scale, CROP * scale)
    with Image.open(result.sheet) as sheet:
        assert sheet.format == "PNG"
    assert result.attention.shape == GRID
    assert len(result.latents) == 2 and result.class_name == ""
    probabilities = [p for _, p in result.top]
    assert len(result.top) == len(class_names)  # 4 classes, fewer than the top-5
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)


def test_cross_attention_weights_sum_to_one_per_latent(tiny_run, trained):
    model, config, _ = trained
    pixels, _ = middle_clip(tiny_run[1], eval_clip_spec(config.data, config.eval))
    clip = normalize_clips(pixels[None], config.data.mean, config.data.std)[0]
    weights = cross_attention_weights(model, clip)
    assert weights.shape == (1, model.latents.shape[0], *GRID)  # (heads, N, T', H', W')
    assert torch.allclose(weights.sum(dim=(2, 3, 4)), torch.ones(1, 8), atol=1e-5)
    attention = cross_attention_map(model, clip)
    assert attention.shape == GRID
    assert torch.allclose(attention, weights.mean(dim=(0, 1)))
    assert attention.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_most_peaked_latents_come_first():
    weights = torch.full((2, 3, 1, 2, 2), 0.25)  # (heads, N, T', H', W'): uniform latents
    weights[:, 1] = torch.tensor([0.97, 0.01, 0.01, 0.01]).view(1, 2, 2)
    weights[:, 2] = torch.tensor([0.7, 0.1, 0.1, 0.1]).view(1, 2, 2)
    assert most_peaked_latents(weights, 2) == [1, 2]
    assert most_peaked_latents(weights, 0) == []


@pytest.mark.parametrize(
    ("variant", "blocks"),
    [({"arch": "baseline"}, MAX_BLOCKS), ({"cross_blocks": 0}, CNN_BLOCKS)],
    ids=["baseline", "self_only"],
)
def test_grad_cam_is_a_non_negative_map_on_the_grid(variant, blocks):
    torch.manual_seed(0)
    # A frozen CNN must still give the features a gradient.
    model = build_model(tiny_model_config(freeze_cnn_blocks=-1, **variant), num_classes=5).eval()
    clip = torch.randn(3, FRAMES, 32, 32)
    cams = [grad_cam(model, clip, index) for index in (0, 1)]
    for cam in cams:
        assert cam.shape == output_grid(blocks, FRAMES, 32, 32)
        assert torch.isfinite(cam).all() and (cam >= 0).all()
    assert any(cam.sum() > 0 for cam in cams)
    assert all(p.grad is None for p in model.parameters())  # no side effects on the model


def test_explain_falls_back_to_grad_cam_without_cross_attention(tiny_run, trained, tmp_path):
    _, config, class_names = trained
    torch.manual_seed(0)
    model = build_model(tiny_model_config(cross_blocks=0), num_classes=len(class_names))
    result = explain_video(
        model, config, class_names, tiny_run[1], out=tmp_path, class_name="moving_up"
    )
    assert result.method == "grad-cam" and result.class_name == "moving_up"
    assert result.attention.shape == GRID and (result.attention >= 0).all()
    assert result.gif.is_file() and result.sheet.is_file() and result.latents == []


def test_bad_requests_are_explain_errors(tiny_run, trained, tmp_path):
    model, config, class_names = trained
    with pytest.raises(ExplainError, match="unknown class 'jumping'"):
        explain_video(model, config, class_names, tiny_run[1], out=tmp_path, class_name="jumping")
    with pytest.raises(ExplainError, match="latents=-1"):
        explain_video(model, config, class_names, tiny_run[1], out=tmp_path, latents=-1)


def test_cli_explain_prints_the_files_and_the_top_classes(tiny_run, tmp_path, capsys):
    checkpoint, video = tiny_run
    argv = ["explain", "--checkpoint", str(checkpoint), str(video), "--out", str(tmp_path)]
    code = main([*argv, "--latents", "1", "eval.num_frames=6"])
    out = capsys.readouterr().out
    assert code == 0
    gif = tmp_path / f"{video.stem}_explain.gif"
    assert str(gif) in out and str(tmp_path / f"{video.stem}_explain.png") in out
    assert "cross-attention" in out and "moving_" in out
    with Image.open(gif) as animation:
        assert animation.n_frames == 6  # the override's clip, not the checkpoint's 4 frames


def test_cli_explain_on_an_unreadable_video_is_one_line(tiny_run, tmp_path, capsys):
    broken = tmp_path / "broken.avi"
    broken.write_text("not a video")
    code = main(["explain", "--checkpoint", str(tiny_run[0]), str(broken), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "broken.avi" in err
    assert not list(tmp_path.glob("*.gif"))
