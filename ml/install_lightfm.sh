#!/bin/sh
# Installs LightFM 1.17 into the environment of the given pip (default: pip), or builds its wheel into a directory.
#   sh ml/install_lightfm.sh .venv/bin/pip           install (make install)
#   sh ml/install_lightfm.sh pip --wheel-dir /wheels build the wheel only (deploy/Dockerfile's build stage)
#
# Why a script: LightFM 1.17 is an sdist with a setup.py and no pyproject.toml, and that setup.py sets
# `__builtins__.__LIGHTFM_SETUP__`, which fails under PEP 517 (`'dict' object has no attribute
# '__LIGHTFM_SETUP__'`, lightfm#687). It builds only through pip's legacy `setup.py bdist_wheel` path, which pip
# removed in 25.3, with setuptools < 70, and without build isolation, so numpy, scipy, wheel and Cython must be
# installed first. Needs a C compiler.
set -eu
PIP="${1:-pip}"
"$PIP" install --quiet 'pip<25.3' 'setuptools>=65,<70' wheel cython 'numpy>=2.0' 'scipy>=1.13'
if [ "${2:-}" = "--wheel-dir" ]; then
    "$PIP" wheel --quiet --no-deps --no-build-isolation --wheel-dir "$3" 'lightfm==1.17'
else
    "$PIP" install --quiet --no-build-isolation 'lightfm==1.17'
fi
