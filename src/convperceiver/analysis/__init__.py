"""Reports on models and runs: summaries, benchmarks, ablation tables and plots."""
