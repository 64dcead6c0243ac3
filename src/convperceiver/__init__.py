"""convperceiver: video action recognition, a truncated R(2+1)D-18 read by Perceiver attention.

One folder per command group: models/ (the networks), data/ (videos to batches), engine/ (runs:
train, pretrain, evaluate, predict), profiling/ (summary, benchmark), experiments/ (ablate),
explain/, deploy/ (export, demo). README.md's Layout section says which file to open for which
change. The CLI loads torch and PyAV only once a command runs: `convperceiver --help` is instant.
"""

__version__ = "0.1.0"
