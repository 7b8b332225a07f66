"""ganframe-images: image folders, CIFAR-10/100 and ResNet (SNGAN-style) GANs for ganframe.

The package root stays empty: the entry point (:mod:`ganframe_images.plugin`) must import
without torch, and ``importlib.resources`` imports this module to find the recipes.
"""

__version__ = "0.1.0"
