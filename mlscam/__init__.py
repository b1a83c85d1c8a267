"""ML-SCAM: the Machine Learning Single Column Atmospheric Model.

Every grid column is encoded into a latent vector; a latent mixer advances each
column from its 3x3 tile of latent neighbours; a decoder returns physical
fields only when output or a loss needs them.  See docs/design.md.
"""
__version__ = "0.1.0"
