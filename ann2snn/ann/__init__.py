"""The ANN side: the shared quantizer, QCFS / matched activations, λ initialisation, training and
loading ANN checkpoints."""
