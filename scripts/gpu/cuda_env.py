"""Finds, on the GPU machine, what tract-cuda loads at run time and prints shell exports for it.

- Libraries: the driver (libcuda.so.1, from the system) and cudart, nvrtc, cuBLAS, cuDNN — from the system
  or from the nvidia-* wheels PyTorch installed (site-packages/nvidia/*/lib): LD_LIBRARY_PATH gets every
  such directory.
- Headers: tract-cuda compiles its kernels with NVRTC at first start and needs the toolkit's cuda_fp16.h
  and math_constants.h and CCCL's cuda/std/cstdint under $CUDA_HOME/include. Taken from $CUDA_HOME,
  /usr/local/cuda or the wheels' nvidia/cu13 tree when complete; else from the two header wheels that
  scripts/gpu/prepare.sh staged (nvidia-cuda-runtime, nvidia-cuda-cccl 13.0), unpacked under STAGE.
Usage: eval "$(python3 cuda_env.py STAGE)"; it also prints what it chose to stderr.
"""

from __future__ import annotations

import glob
import os
import shlex
import site
import sys
import zipfile

LIBS = ("libcudart.so", "libnvrtc.so", "libcublas.so", "libcudnn.so")


def site_dirs() -> list[str]:
    dirs = list(site.getsitepackages()) + [site.getusersitepackages()]
    try:
        import torch  # noqa: F401  (its site-packages, if it lives in another one)

        dirs.append(os.path.dirname(os.path.dirname(torch.__file__)))
    except Exception:  # torch missing: the system's libraries may still do
        pass
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def lib_dirs() -> list[str]:
    found = []
    for base in site_dirs():
        for lib in glob.glob(os.path.join(base, "nvidia", "**", "lib"), recursive=True):
            if any(glob.glob(os.path.join(lib, name + "*")) for name in LIBS):
                found.append(lib)
    return list(dict.fromkeys(found))


def headers_complete(home: str) -> bool:
    inc = os.path.join(home, "include")
    has_cccl = any(
        os.path.exists(os.path.join(inc, sub, "cuda", "std", "cstdint")) for sub in ("cccl", "libcudacxx/include", "")
    )
    return all(os.path.exists(os.path.join(inc, h)) for h in ("cuda_fp16.h", "math_constants.h")) and has_cccl


def cuda_home(stage: str) -> str:
    candidates = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"]
    candidates += [os.path.join(d, "nvidia", "cu13") for d in site_dirs()]
    for home in candidates:
        if home and headers_complete(home):
            return home
    unpacked = os.path.join(stage, "cuda-headers")
    for wheel in sorted(glob.glob(os.path.join(stage, "wheels", "*.whl"))):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(unpacked, [n for n in z.namelist() if "/include/" in n])
    home = os.path.join(unpacked, "nvidia", "cu13")
    if not headers_complete(home):
        sys.exit(f"no CUDA headers for NVRTC: none of {candidates} is complete, and the staged wheels lack them")
    return home


def main() -> None:
    stage = sys.argv[1]
    libs = lib_dirs()
    home = cuda_home(stage)
    path = ":".join(libs + [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p])
    print(f"cuda_env: library dirs {libs or '(none from wheels; the system ones)'}", file=sys.stderr)
    print(f"cuda_env: CUDA_HOME (headers for NVRTC) {home}", file=sys.stderr)
    print(f"export LD_LIBRARY_PATH={shlex.quote(path)}")
    print(f"export CUDA_HOME={shlex.quote(home)}")


if __name__ == "__main__":
    main()
