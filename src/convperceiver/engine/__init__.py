"""Training and evaluation: the LightningModule, video-level metrics, runs and reports."""
