"""convperceiver: video action recognition, a truncated R(2+1)D-18 read by Perceiver attention."""

__version__ = "0.1.0"
