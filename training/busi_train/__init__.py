"""Training, quantization-aware training and export of the BUSI network."""
