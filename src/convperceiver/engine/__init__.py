"""Runs with Lightning: training, pretraining, evaluation and prediction.

`train.py` and `pretrain.py` build a run (folder, Trainer, checkpoints) around a LightningModule
(`module.py`, `pretrain_module.py`); `metrics.py` scores whole videos, `predict.py` single files,
and `reports.py` and `reconstructions.py` draw what a run leaves behind.
"""
