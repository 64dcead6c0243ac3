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
