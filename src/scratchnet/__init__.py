"""scratchnet: neural networks from scratch in NumPy, and the CIFAR-10 study built on them.

The NumPy-only core (needs numpy, pyyaml, tqdm, pillow, threadpoolctl):

    scratchnet.nn          layers, losses, models, initialisation, gradient checks, SGD
    scratchnet.data        CIFAR-10 sources, safe archive readers, preprocessing
    scratchnet.training    the mini-batch loop
    scratchnet.fitting     part 1: fitting by gradient descent
    scratchnet.attacks     input gradients, targeted PGD, robustness sweeps
    scratchnet.files       all-or-nothing file writes, JSON

The study layer, `scratchnet.study`, needs the `pipeline` extras (MLflow, pandas, matplotlib).
"""
