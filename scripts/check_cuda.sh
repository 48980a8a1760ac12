#!/usr/bin/env bash
# Compiles every target of the workspace with the `cuda` feature (cargo clippy, warnings denied) on a
# machine with neither a GPU nor a CUDA install, so the GPU code paths cannot rot unnoticed. NVIDIA's
# compiler and headers come from PyPI into target/cuda-toolkit; candle's kernels are compiled to PTX
# for CUDA_COMPUTE_CAP (default 80). Linking and running need the real driver and libraries: on a GPU
# machine, `cargo test --workspace --features swarm-node/cuda` with the toolkit installed.
set -euo pipefail
cd "$(dirname "$0")/.."

toolkit=target/cuda-toolkit
# 13.4 is the newest toolkit the CUDA bindings under candle know; the header library is versioned
# on its own scheme and its newest release works with this compiler.
packages=(
    nvidia-cuda-nvcc==13.4.92
    nvidia-cuda-runtime==13.4.92
    nvidia-cuda-crt==13.4.92
    nvidia-nvvm==13.4.92
    nvidia-cuda-cccl==13.3.5.0.6
)
if [[ ! -x $toolkit/bin/python ]]; then
    python3 -m venv "$toolkit"
fi
"$toolkit/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
cuda=$("$toolkit/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
[[ -x $cuda/bin/nvcc ]] || { echo "error: no nvcc under $cuda after installing ${packages[*]}" >&2; exit 1; }

export CUDA_ROOT=$cuda CUDA_PATH=$cuda PATH=$cuda/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
cargo clippy --workspace --all-targets --features swarm-node/cuda --locked --target-dir target/cuda \
    -- -D warnings
echo "the cuda feature compiles (compute capability $CUDA_COMPUTE_CAP)"
