#!/usr/bin/env bash
# Installs the CUDA 13.0 toolkit that a CUDA build of Sori needs (nvcc, its
# compiler back ends, the runtime and cuBLAS headers and libraries) from
# NVIDIA's wheels on PyPI into a private folder, and lays it out as a toolkit
# CMake accepts. Prints the toolkit's root (CUDAToolkit_ROOT) on its last line.
#
#   scripts/cuda-toolkit.sh [FOLDER]   (default: $SORI_CUDA_HOME, else ~/.cache/sori/cuda-13.0)
#
# Pinned to 13.0: a binary built with a newer toolkit needs a newer driver than
# the 580 series (CUDA 13.0) that GPU machines commonly run.
set -euo pipefail

folder="${1:-${SORI_CUDA_HOME:-$HOME/.cache/sori/cuda-13.0}}"
root="$folder/nvidia/cu13"
wheels=(
  nvidia-cuda-nvcc==13.0.88    # nvcc, ptxas, nvlink, fatbinary, cudafe++
  nvidia-nvvm==13.0.88         # cicc and libnvvm, nvcc's device compiler
  nvidia-cuda-crt==13.0.88     # nvcc's crt headers
  nvidia-cuda-runtime==13.0.96 # cudart: headers and libcudart.so.13
  nvidia-cuda-cccl==13.0.85    # CUB, Thrust, libcu++ headers
  nvidia-cublas==13.0.2.14     # cuBLAS: headers and libcublas(Lt).so.13
)

if [ ! -x "$root/bin/nvcc" ] || [ ! -e "$root/lib/libcublas.so.13" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
    --target "$folder" "${wheels[@]}"
fi

# nvcc's profile looks for libraries in lib64; the wheels put them in lib.
ln -sfn lib "$root/lib64"
# The linker takes unversioned names; the wheels ship only the .so.13 files.
for name in cudart cublas cublasLt; do
  ln -sf "lib$name.so.13" "$root/lib/lib$name.so"
done
# whisper-rs-sys asks the linker for libcuda (the driver) and libculibos (a
# static helper of static cuBLAS). Neither is used by this build: the CUDA
# runtime opens the driver itself at run time (the wheels ship no driver stub,
# hence GGML_CUDA_NO_VMM, which keeps ggml off the driver API), and cuBLAS is
# linked dynamically. Empty stand-ins satisfy the linker; --as-needed leaves
# them out of the binary.
stubs="$root/lib/stubs"
mkdir -p "$stubs"
[ -e "$stubs/libcuda.so" ] || gcc -shared -o "$stubs/libcuda.so" -x c /dev/null
[ -e "$stubs/libculibos.a" ] || ar rc "$stubs/libculibos.a"

"$root/bin/nvcc" --version | tail -n 2 >&2
echo "$root"
