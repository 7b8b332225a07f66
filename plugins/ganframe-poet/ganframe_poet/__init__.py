"""ganframe-poet: an LSTM that writes classical Chinese poems, trained by maximum likelihood,
SeqGAN policy gradient or Gumbel-softmax GAN, scored with BLEU and self-BLEU.

Importing this package is cheap; the torch code lives in the modules the plugin's lazy
references point to.
"""

__version__ = "0.1.0"
