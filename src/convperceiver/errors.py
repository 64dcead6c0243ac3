"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class ConvPerceiverError(Exception):
    """Base class for every error caused by input the user controls."""


class ConfigError(ConvPerceiverError):
    """A config key, value or file is wrong."""


class WeightsError(ConvPerceiverError):
    """Pretrained weights are missing, unreachable or of another architecture."""


class DatasetError(ConvPerceiverError):
    """A dataset root, split file or annotation file is missing or malformed."""


class VideoError(ConvPerceiverError):
    """A video file cannot be opened or decoded, or holds no frames."""


class CheckpointError(ConvPerceiverError):
    """A checkpoint file is missing or was not written by convperceiver."""


class ExplainError(ConvPerceiverError):
    """An explanation was asked for a class the model does not know, or a negative latent count."""


class ExportError(ConvPerceiverError):
    """An export cannot run here, or its file does not reproduce the model's logits."""


class DemoError(ConvPerceiverError):
    """Gradio is not installed, the examples folder holds no video, or the port is taken."""
