"""ganframe-dcgan: MNIST digits, DCGAN networks and a digit-classifier FID for ganframe.

The package root stays empty on purpose: the entry point (:mod:`ganframe_dcgan.plugin`) must
import without torch, and ``importlib.resources`` imports this module to find the recipes.
"""

__version__ = "0.1.0"
