"""Packaging: everything is in pyproject.toml except one file setuptools cannot declare.

The wheel carries ``jaxgreen-startup.pth`` at the top of site-packages. Python runs it
at start-up; it imports jaxgreen (cheap: no jax), which arranges for jax's start-up to
be quiet on a machine without the accelerators of the ``[gpu]``/``[tpu]`` extras (see
``jaxgreen/_quiet.py``). ``JAXGREEN_QUIET=0`` turns it off.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "jaxgreen-startup.pth"


class BuildPyWithPth(build_py):
  def run(self):
    super().run()
    self.copy_file(PTH, os.path.join(self.build_lib, PTH))

  def get_outputs(self, include_bytecode=True):
    return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]

  def get_output_mapping(self):
    return {**super().get_output_mapping(), os.path.join(self.build_lib, PTH): PTH}


setup(cmdclass={"build_py": BuildPyWithPth})
