"""Training: binary networks in PyTorch with the MST-distance regulariser, exported bit-exact.

``mstbnn.nn.layers`` (binary layers, sign + STE, BatchNorm), ``models``
(``mlp``, ``cnn``, ``vgg_small``), ``data`` (digits, .npz, MNIST, CIFAR-10),
``regularizer`` (the tree-edge penalty), ``train`` (the loop), ``export``
(to the compiler IR; checkpoints) and ``cli`` (``mstbnn train``).
Import the submodules directly; this package does not import torch itself.
"""
