# setuptools reads the project's metadata from pyproject.toml; this file exists only because
# cffi's build hook is a setup() keyword that pyproject.toml cannot express.
from setuptools import setup

setup(cffi_modules=["aiosys/native/_build_native.py:ffibuilder"])
