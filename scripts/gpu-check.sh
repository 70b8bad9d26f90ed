#!/usr/bin/env bash
# One run of Sori's CUDA build on a machine with an NVIDIA GPU, from the folder
# `make cuda-bundle` made (it needs nothing else there but python3, nvidia-smi
# and the CUDA 13 runtime and cuBLAS): finds those libraries, then runs
# gpu_check.py, which starts Sori on the GPU and on the CPU and writes Sori's
# figures beside nvidia-smi's, and the transcripts, into the output folder.
#
#   ./gpu-check.sh [OUT_FOLDER]    (default: $OUT, else ./gpu-check-out)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-${OUT:-$here/gpu-check-out}}"
mkdir -p "$out"

# cudart and cuBLAS 13: a CUDA toolkit's lib64, or the nvidia-* wheels in a Python's site-packages.
found=()
for dir in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64; do
  if [ -e "$dir/libcublas.so.13" ] || [ -e "$dir/libcudart.so.13" ]; then found+=("$dir"); fi
done
while read -r site; do
  for dir in "$site"/nvidia/cu13/lib "$site"/nvidia/*/lib; do
    if [ -e "$dir/libcublas.so.13" ] || [ -e "$dir/libcudart.so.13" ]; then found+=("$dir"); fi
  done
done < <(python3 -c 'import site; print("\n".join(site.getsitepackages()))')
LD_LIBRARY_PATH="$(IFS=:; echo "${found[*]:-}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

bin="$(mktemp -d)/sori"
python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
  "$here/sori.xz" "$bin"
chmod +x "$bin"
ldd "$bin" | tee "$out/ldd.txt"
if grep -q "not found" "$out/ldd.txt"; then
  echo "gpu-check: libraries are missing (above); point CUDA_HOME at a CUDA 13 toolkit" >&2
  exit 2
fi
"$bin" --version
exec python3 "$here/gpu_check.py" --sori "$bin" --model "$(ls "$here"/ggml-*.bin)" \
  --audio "$here/jfk.wav" --expected "$here/expected.json" --out "$out"
