"""Videos to batches: decoding, clip times, transforms, dataset layouts, the synthetic set, the
cache and the LightningDataModule. Import the module you need (`convperceiver.data.video`, ...):
this package imports nothing, so `convperceiver --help` does not load torch or PyAV.
"""
