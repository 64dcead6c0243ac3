"""`convperceiver export` and `demo`: a trained model outside this package."""
