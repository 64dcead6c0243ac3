"""`convperceiver explain`: cross-attention maps or Grad-CAM over a video's frames."""
