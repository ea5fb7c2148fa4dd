#!/bin/sh
# Makes the virtual environment of the modern benchmark peer (tests/peers/torch2_kernels.py):
# a current PyTorch 2.x from PyPI, and JAX (jax[cpu]) when it installs cleanly. Called by
# `make peer-deps`; never by `make deps` or `make test` (the product does not depend on PyPI).
#   tests/peers/peer_venv.sh [VENV]        VENV defaults to $PEER_VENV or /opt/mbpo-peers/venv
# Idempotent: a venv whose torch imports and that carries the stamp file is left alone.
# PyPI has no CPU-only torch for Linux under that name: its wheel pulls the nvidia-* CUDA
# wheels (about 5 GB on disk), which the CPU benchmarks never load.
set -eu
VENV=${1:-${PEER_VENV:-/opt/mbpo-peers/venv}}
PY=/usr/bin/python3
STAMP="$VENV/.mbpo-peer-complete"

if [ -f "$STAMP" ] && "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "make peer-deps: $VENV complete ($(cat "$STAMP"))"
  exit 0
fi

if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "peer-deps: $PY has no venv module (apt-get install python3-venv)" >&2
  exit 1
fi

echo "make peer-deps: making $VENV (PyTorch 2.x from PyPI, several GB)"
if ! mkdir -p "$(dirname "$VENV")" 2>/dev/null || [ ! -w "$(dirname "$VENV")" ]; then
  echo "peer-deps: cannot write $(dirname "$VENV"): run as root or set PEER_VENV=DIR" >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet 'torch>=2,<3' numpy
torch_v=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')

# JAX is optional: keep the venv's torch working whatever happens here
jax_v="jax not installed"
if "$VENV/bin/python" -m pip install --quiet 'jax[cpu]' >"$VENV/jax-install.log" 2>&1 &&
   "$VENV/bin/python" -c 'import jax, jax.numpy as jnp; jnp.ones(2).block_until_ready()' \
     >>"$VENV/jax-install.log" 2>&1; then
  jax_v="jax $("$VENV/bin/python" -c 'import jax; print(jax.__version__)')"
else
  echo "make peer-deps: jax[cpu] did not install cleanly (see $VENV/jax-install.log); skipped"
fi

echo "torch $torch_v, $jax_v" >"$STAMP"
echo "make peer-deps: $VENV ready: $(cat "$STAMP"), $(du -sh "$VENV" | cut -f1) on disk"
