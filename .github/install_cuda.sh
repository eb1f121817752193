#!/usr/bin/env bash
# cibuildwheel's before-all on Linux (pyproject.toml, [tool.cibuildwheel.linux]): CUDA 13.0's compiler and
# static runtime from NVIDIA's RHEL 8 repository, inside the manylinux_2_28 image (AlmaLinux 8), so that
# the Linux wheels carry fastlr._cuda. Only the compiler, its headers and the runtime: about 300 MB, no
# libraries. x86_64 uses NVIDIA's x86_64 repository, aarch64 its sbsa one (Grace Hopper and friends).
set -euo pipefail
arch=$(uname -m)
[ "$arch" = aarch64 ] && arch=sbsa
dnf install -y dnf-plugins-core
dnf config-manager --add-repo "https://developer.download.nvidia.com/compute/cuda/repos/rhel8/${arch}/cuda-rhel8.repo"
dnf install -y cuda-nvcc-13-0 cuda-cudart-devel-13-0 cuda-crt-13-0
/usr/local/cuda-13.0/bin/nvcc --version
