"""demo: what the page does with a video, the `demo` command, and the page in a real browser.

The browser test drives Debian's Chromium (`/usr/bin/chromium`) with Playwright's Python
package; it and the command's test skip, with the reason, where chromium, playwright or
gradio is not installed.
"""

import dataclasses
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.request import urlopen

import pytest
from data_fixtures import write_tiny

from convperceiver.cli import main
from convperceiver.deploy import demo as demo_module
from convperceiver.deploy.demo import PROMPT, ClassifyVideo, DemoError, example_videos
from convperceiver.explain.explain import ExplainError
from convperceiver.models import build_model

SHARED_CLIP = (
    Path(__file__).resolve().parents[2]
    / "shared/data/videos/kinetics_armwrestling_340x256_28fps.mp4"
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 60_000


def require(package: str, why: str) -> None:
    # The distribution, not the import: an uninstalled gradio can leave an importable folder.
    try:
        importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{package} is not installed ({why})")


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
    """The tiny run's best checkpoint, and a synthetic mp4 clip."""
    clip = write_tiny(tmp_path_factory.mktemp("clips") / "square.mp4", codec="libx264")
    return tiny_run[0], clip


@pytest.fixture(scope="module")
def classify(trained):
    return ClassifyVideo(*trained)


@pytest.fixture
def not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n")
    return path


def test_a_video_gets_its_top_classes_an_overlay_and_a_summary(classify, trained, run):
    top, overlay, message = classify(str(run[1]))
    class_names = trained[2]
    assert sorted(top) == sorted(class_names)  # 4 classes, fewer than the top-5
    assert list(top.values()) == sorted(top.values(), reverse=True)
    assert sum(top.values()) == pytest.approx(1.0, abs=1e-5)
    assert Path(overlay).suffix == ".gif" and Path(overlay).is_file()
    best = next(iter(top))
    assert message.startswith(f"**{best}**") and "clips of `square.mp4`" in message
    assert "cross-attention" in message


@pytest.mark.parametrize("content", [b"this is not a video\n", b""], ids=["text", "empty"])
def test_an_unreadable_upload_is_one_sentence_naming_the_file(classify, tmp_path, content):
    path = tmp_path / "upload.mp4"
    path.write_bytes(content)
    top, overlay, message = classify(str(path))
    assert top is None and overlay is None
    assert message.startswith("**Cannot classify `upload.mp4`**: cannot open")
    assert str(tmp_path) not in message and "Traceback" not in message


def test_no_video_asks_for_one(classify):
    assert classify(None) == (None, None, PROMPT)


def test_a_model_without_cross_attention_gets_grad_cam(trained, run):
    _, config, class_names = trained
    self_only = dataclasses.replace(config.model, cross_blocks=0)
    classify = ClassifyVideo(
        build_model(self_only, num_classes=len(class_names)), config, class_names
    )
    top, overlay, message = classify(str(run[1]))
    assert len(top) == len(class_names) and Path(overlay).is_file()
    assert f"Grad-CAM of the last CNN block for **{next(iter(top))}**" in message


def test_an_overlay_that_fails_leaves_the_classes_and_a_note(classify, run, monkeypatch):
    def refuse(*args, **kwargs):
        raise ExplainError("no map for this variant")

    monkeypatch.setattr(demo_module, "explain_video", refuse)
    top, overlay, message = classify(str(run[1]))
    assert top and overlay is None
    assert message.endswith("No overlay for this model: no map for this variant")


def test_examples_must_be_a_folder_with_videos(tmp_path):
    with pytest.raises(DemoError, match="examples folder not found"):
        example_videos(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("no video here\n")
    with pytest.raises(DemoError, match="no videos in"):
        example_videos(tmp_path)
    clip = write_tiny(tmp_path / "b.avi", num_frames=4)
    assert example_videos(tmp_path) == [clip]


def test_the_command_without_gradio_is_one_line(run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    assert main(["demo", "--checkpoint", str(run[0])]) == 2
    error = capsys.readouterr().err
    assert error == (
        "convperceiver demo: error: the demo needs gradio: pip install 'convperceiver[demo]'\n"
    )


def test_the_command_serves_on_localhost_and_prints_the_address(run):
    require("gradio", "pip install 'convperceiver[demo]'")
    port = free_port()
    command = [sys.executable, "-m", "convperceiver.cli", "demo", "--checkpoint", str(run[0])]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl+C must reach it even where the test runs with SIGINT ignored (a background job).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        output = ""
        for line in process.stdout:
            output += line
            if "demo running at" in line:
                break
        assert f"demo running at http://127.0.0.1:{port}/ " in output, output
        with urlopen(f"http://127.0.0.1:{port}/config", timeout=30) as answer:
            page = json.load(answer)
        assert page["title"] == "convperceiver" and page["analytics_enabled"] is False
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0


def test_a_taken_port_is_one_line(trained):
    require("gradio", "pip install 'convperceiver[demo]'")
    from convperceiver.deploy.demo import build_demo, launch_demo

    page_demo = build_demo(*trained)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DemoError, match=f"cannot serve on 127.0.0.1:{port}: the port is taken"):
            launch_demo(page_demo, port=port)


def artifacts() -> Path:
    folder = Path(os.environ.get("CI_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_page_in_a_browser(trained, run, not_a_video, tmp_path):
    require("gradio", "pip install 'convperceiver[demo]'")
    require("playwright", "pip install playwright; it drives Debian's chromium")
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    from convperceiver.deploy.demo import build_demo, launch_demo

    examples = tmp_path / "examples"
    examples.mkdir()
    shutil.copy(run[1], examples / "example_square.mp4")
    video = SHARED_CLIP if SHARED_CLIP.is_file() else run[1]
    model, config, class_names = trained
    page_demo = build_demo(model, config, class_names, examples=examples)
    url = launch_demo(page_demo, port=free_port())
    requested: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            page.on("request", lambda request: requested.append(request.url))
            status, upload = page.locator("#status"), page.locator("#video input[type=file]")

            page.goto(url)
            upload.set_input_files(video)
            expect(status).to_contain_text(f"clips of {video.name}")
            for name in class_names:  # all 4: fewer than the top-5
                expect(page.locator("#top")).to_contain_text(name)
            expect(page.locator("#overlay img")).to_have_attribute("src", re.compile(r"\.gif$"))
            page.screenshot(path=artifacts() / "demo.png", full_page=True)

            page.goto(url)  # a fresh page rather than the video's Clear button, which moves
            upload.set_input_files(not_a_video)
            expect(status).to_contain_text("Cannot classify notes.mp4: cannot open")
            assert "Traceback" not in page.inner_text("body")
            page.screenshot(path=artifacts() / "demo_bad_upload.png", full_page=True)

            page.goto(url)
            page.locator(".gallery-item").first.click()
            expect(status).to_contain_text("clips of example_square.mp4")
            browser.close()
    finally:
        page_demo.close()
    # No analytics, fonts or scripts from elsewhere: the page only talks to its own server.
    assert [u for u in requested if not u.startswith((url, "data:", "blob:"))] == []
