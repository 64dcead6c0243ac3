"""A local web page to try a trained model: upload a video, see its top-5 classes and attention.

video file -> VideoPredictor (every view over the whole video) -> top-5 classes -> gr.Label
           -> explain_video (the middle clip)                  -> overlay GIF    -> gr.Image

Gradio is an optional dependency (`pip install 'convperceiver[demo]'`), imported only when a
page is built, so the rest of the package works without it. The page stays on this machine:
it listens on 127.0.0.1 unless told otherwise, makes no share link and sends no analytics.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from convperceiver.config import Config
from convperceiver.data.records import VIDEO_SUFFIXES
from convperceiver.engine.predict import VideoPredictor
from convperceiver.errors import ConvPerceiverError, DemoError
from convperceiver.explain.explain import CROSS_ATTENTION, explain_video
from convperceiver.models import FreezableClassifier

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
TOP_K = 5
PROMPT = "Upload a video, or pick one of the example clips."

# The values of the page's three outputs: top-k {class: probability}, overlay file, message.
Outputs = tuple[dict[str, float] | None, str | None, str]


def _gradio() -> ModuleType:
    # Gradio and huggingface_hub read these when they are imported and when a page is built.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        import gradio
    except ImportError as error:
        raise DemoError("the demo needs gradio: pip install 'convperceiver[demo]'") from error
    return gradio


def example_videos(folder: str | Path) -> list[Path]:
    """The video files directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DemoError(f"examples folder not found: {folder}")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise DemoError(f"no videos in {folder} (suffixes {', '.join(sorted(VIDEO_SUFFIXES))})")
    return videos


@dataclass
class ClassifyVideo:
    """What the page does with one video: top-k classes, an overlay GIF and a line of Markdown.

    Plain values in and out, so it works, and is tested, without a browser or gradio.
    """

    model: FreezableClassifier
    config: Config
    class_names: list[str]
    topk: int = TOP_K
    # Every request's overlay lands here; the folder goes with this object, or at exit.
    workdir: tempfile.TemporaryDirectory = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="convperceiver-demo-")
    )

    def __post_init__(self) -> None:
        self.predictor = VideoPredictor.from_config(self.model, self.config, self.class_names)

    def __call__(self, video: str | None) -> Outputs:
        if not video:
            return None, None, PROMPT
        name = Path(video).name
        prediction = self.predictor.predict(video, topk=self.topk)
        if prediction.error:
            # The upload's path is a temporary one the user never chose: name the file only.
            reason = prediction.error.removeprefix(f"{video}: ").replace(str(video), name)
            return None, None, f"**Cannot classify `{name}`**: {reason}."
        top = dict(zip(prediction.labels, prediction.probabilities, strict=True))
        best, probability = prediction.labels[0], prediction.probabilities[0]
        views = prediction.num_views
        crops = f" ({views} views)" if views != prediction.num_clips else ""
        summary = (
            f"**{best}** ({probability:.1%}), from {prediction.num_clips} clips{crops} of `{name}`."
        )
        overlay, note = self.overlay(video)
        return top, overlay, f"{summary} {note}"

    def overlay(self, video: str) -> tuple[str | None, str]:
        """The middle clip's overlay GIF and a sentence on what it shows, or why it is absent."""
        out = Path(tempfile.mkdtemp(dir=self.workdir.name))
        try:
            result = explain_video(self.model, self.config, self.class_names, video, out=out)
        # The top-k already answered the user; an overlay a model variant cannot draw is a note.
        except (ConvPerceiverError, RuntimeError, ValueError) as error:
            log.warning("no attention overlay for %s: %s", video, error)
            return None, f"No overlay for this model: {error}"
        if result.method == CROSS_ATTENTION:
            shown = "the first cross-attention block's weights, mean over heads and latents"
        else:
            shown = f"Grad-CAM of the last CNN block for **{result.class_name}**"
        return str(result.gif), f"Overlay on the middle clip: {shown}."


def build_demo(
    model: FreezableClassifier,
    config: Config,
    class_names: list[str],
    *,
    examples: str | Path | None = None,
) -> gr.Blocks:
    """The page: a video upload (and example clips from the `examples` folder), the top-5
    classes with their probabilities, the attention overlay and a status line."""
    gr = _gradio()
    classify = ClassifyVideo(model, config, class_names)
    clips = example_videos(examples) if examples is not None else []
    with gr.Blocks(title="convperceiver", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# convperceiver\nVideo action recognition with {len(class_names)} classes: "
            "the top-5 come from clips spread over the whole video; the overlay shows "
            "where the model looks in the middle clip."
        )
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Video", sources=["upload"], elem_id="video")
                if clips:
                    gr.Examples([[str(p)] for p in clips], inputs=video, label="Example clips")
            with gr.Column():
                status = gr.Markdown(PROMPT, elem_id="status")
                top = gr.Label(num_top_classes=TOP_K, label="Top-5 classes", elem_id="top")
                overlay = gr.Image(
                    label="Attention on the middle clip",
                    type="filepath",
                    interactive=False,
                    buttons=["download", "fullscreen"],  # "share" posts to Hugging Face
                    elem_id="overlay",
                )
        video.change(classify, inputs=video, outputs=[top, overlay, status])
    return demo


def launch_demo(demo: gr.Blocks, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """Serve the page from a background thread and return its address.

    The caller keeps the process alive (`demo.block_thread()`) and stops it with
    `demo.close()`. Errors are shown on the page without their traceback.
    """
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=False,
            prevent_thread_lock=True,
            quiet=True,
            show_error=False,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
        )
    except OSError as error:  # gradio's words name its own settings, not ours
        raise DemoError(
            f"cannot serve on {host}:{port}: the port is taken or the address is not this machine's"
        ) from error
    return demo.local_url
