"""convperceiver: a truncated R(2+1)D-18 with a Perceiver attention head for video action recognition."""

__version__ = "0.1.0"
