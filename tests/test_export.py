"""export: ONNX and TorchScript files that match PyTorch, at any batch size, or fail loudly."""

import pytest
import torch

from convperceiver.cli import main
from convperceiver.deploy import export
from convperceiver.deploy.export import ExportError, export_model, run_exported

FRAMES, CROP = 4, 28  # tiny_overrides' clip: 4 frames, a 28-pixel crop


def needs_onnx(fmt: str) -> None:
    if fmt == "onnx":
        for name in export.ONNX_PACKAGES:
            pytest.importorskip(name, reason=f"ONNX export needs {name} (the export extra)")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_matches_pytorch_at_any_batch_size(fmt, trained, tmp_path):
    needs_onnx(fmt)
    model, config, class_names = trained
    result = export_model(model, config, fmt=fmt, out=tmp_path / f"model.{fmt}")
    assert result.path.is_file() and result.max_abs_diff <= export.TOLERANCE
    torch.manual_seed(0)
    for batch in (1, 3):
        clips = torch.randn(batch, 3, FRAMES, CROP, CROP)
        with torch.no_grad():
            expected = model(clips)
        logits = run_exported(result.path, clips, fmt=fmt)
        assert logits.shape == (batch, len(class_names))
        assert (logits - expected).abs().max().item() <= export.TOLERANCE


def test_cli_export_checks_parity_on_a_video_at_the_asked_length(tiny_run, tmp_path, capsys):
    needs_onnx("onnx")
    import onnx

    checkpoint, video = tiny_run
    out = tmp_path / "six.onnx"
    argv = ["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)]
    code = main([*argv, "--frames", "6", "--video", str(video)])
    printed = capsys.readouterr().out
    assert code == 0
    assert str(out) in printed and "max abs diff" in printed
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 6, CROP, CROP]


def test_a_failed_parity_check_deletes_the_file_and_exits_2(tiny_run, monkeypatch, capsys):
    def wrong_logits(path, clips, *, fmt):
        return torch.full((len(clips), 4), 100.0)

    monkeypatch.setattr(export, "run_exported", wrong_logits)
    checkpoint = tiny_run[0]
    code = main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "parity check failed" in err
    assert not checkpoint.with_suffix(export.SUFFIXES["torchscript"]).exists()


def test_missing_onnx_packages_are_named(trained, tmp_path, monkeypatch):
    model, config, _ = trained
    monkeypatch.setattr(export, "ONNX_PACKAGES", ("onnx", "no_such_onnx_package"))
    with pytest.raises(ExportError, match="no_such_onnx_package"):
        export_model(model, config, fmt="onnx", out=tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
