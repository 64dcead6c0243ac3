"""`convperceiver summary` and `benchmark`: parameters, FLOPs, speed and bf16 agreement."""
