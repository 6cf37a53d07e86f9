#!/usr/bin/env bash
# CI only: a CPU-only SGLang in its own virtual environment, for the tests marked sglang.
# sglang 0.5.23 pins torch 2.14.1 and CUDA packages; none of that exists for these CPU
# machines. So: the wheel without its dependencies, its pure-Python requirements under a
# constraint that keeps the CPU torch, and the two import shims in ./shims copied into the
# environment (see README.md here). Usage: .ci/sglang-cpu/install.sh VENV_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/pip" install -q torch==2.13.0
echo "torch==2.13.0+cpu" > "$work/constraints.txt"
"$venv/bin/pip" download -q --no-deps sglang==0.5.23 -d "$work"
wheel="$(ls "$work"/sglang-0.5.23-*.whl)"
# The wheel's unconditional requirements, minus the GPU-only ones and the torch pins.
unzip -p "$wheel" 'sglang-0.5.23.dist-info/METADATA' \
    | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==' \
    | grep -vE '^(torch==|torchvision|torchaudio|torchcodec|sglang-kernel|flashinfer|cuda-python|nvidia-|nvshmem4py|tilelang|flash-attn-4|sgl-deep-|sgl-flash-mla|humming-kernels|quack-kernels)' \
    > "$work/requirements.txt"
"$venv/bin/pip" install -q -r "$work/requirements.txt" -c "$work/constraints.txt"
"$venv/bin/pip" install -q --no-deps "$wheel"
"$venv/bin/pip" install -q torchvision==0.28.0 -c "$work/constraints.txt"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cp "$here/shims/sitecustomize.py" "$site/"
cp -r "$here/shims/sgl_kernel" "$site/"
"$venv/bin/python" -c "import sglang.launch_server" 
echo "SGLang $("$venv/bin/python" -c 'import sglang; print(sglang.__version__)') ready in $venv"
