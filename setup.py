"""Build script: metadata lives in pyproject.toml.

The C interface (the cffi-embedded libmlscam) is added to this build by the
C/Fortran interface work; until then this is a plain setuptools build.
"""
from setuptools import setup

setup()
