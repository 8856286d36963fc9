"""What the machine offers a run: usable CPU cores, native bf16, the precision to train in.

A CPU without native bf16 runs bf16 autocast several times slower than fp32 (5.4x for a
small-net step on an AVX2-only EPYC), so ``trainer.precision=auto`` picks bf16 only where
the processor has it; and a CPU run may not start more processes than it has cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def usable_cpu_cores() -> int:
    """Cores this process may use: the smallest of its affinity mask, the cgroup CPU quota
    and SLURM_CPUS_PER_TASK (a container or a SLURM job may see more cores than it owns)."""
    limits = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()]
    try:  # cgroup v2: "<quota> <period>" or "max <period>"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            limits.append(max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        limits.append(int(os.environ["SLURM_CPUS_PER_TASK"]))
    return max(1, min(x for x in limits if x))


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (x86 AVX512-BF16 / AMX, Arm BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    flags = set(text.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_precision(precision: str | int, accelerator: str) -> tuple[str, str]:
    """(Lightning precision, why) for ``trainer.precision``; values other than auto pass."""
    if str(precision) != "auto":
        return str(precision), "set in trainer.precision"
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16-mixed", "auto: the GPU supports bf16"
        return "16-mixed", "auto: the GPU has no bf16, fp16 autocast"
    if cpu_has_native_bf16():
        return "bf16-mixed", "auto: this CPU has native bf16"
    return "32-true", "auto: this CPU has no native bf16 (bf16 autocast would be ~5x slower)"


def fit_threads_to_cores(processes: int) -> int | None:
    """Set torch's intra-op threads so that processes x threads fits the usable cores (unless
    OMP_NUM_THREADS says otherwise); returns the thread count set, or None."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    threads = max(1, usable_cpu_cores() // max(1, processes))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
