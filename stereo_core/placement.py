"""Where model parts live while idle, and the device/dtype choice.

Three policies, as users pick them in the loader:
- keep:       every part moves to the compute device on first use and stays there.
- offload:    a part is on the device only while it is used, then goes back to the
              offload device (the CPU), so only the largest part needs to fit.
- sequential: parts stay on the CPU; each layer's weights visit the device only for
              that layer's forward. Slowest, smallest footprint (small cards).

The host application (ComfyUI) can supply `MemoryHooks` so that other models are
evicted before ours move in and caches are emptied afterwards.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from .errors import StereoInputError

POLICIES = ("keep", "offload", "sequential")
DTYPE_CHOICES = ("auto", "fp16", "bf16", "fp32")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _default_empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


@dataclass
class MemoryHooks:
    """free(bytes, device): make room before a move; empty_cache(device): after work."""

    free: Callable[[int, torch.device], None] = lambda size, device: None
    empty_cache: Callable[[torch.device], None] = _default_empty_cache


def module_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def _dtype_works(device: torch.device, dtype: torch.dtype) -> bool:
    if device.type == "cuda" and dtype == torch.bfloat16:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    try:  # the operations a UNet needs, in that dtype, on that device
        x = torch.ones(1, 2, 2, 4, 4, device=device, dtype=dtype)
        torch.nn.functional.conv3d(x, torch.ones(2, 2, 1, 1, 1, device=device, dtype=dtype))
        torch.nn.functional.group_norm(x.flatten(0, 1), 1)
        return True
    except (RuntimeError, NotImplementedError):
        return False


def resolve_dtype(choice: str, device: torch.device) -> torch.dtype:
    """The weight dtype for a loader choice; `auto` is fp16 on accelerators (as the reference) and fp32 on CPU."""
    if choice not in DTYPE_CHOICES:
        raise StereoInputError(f"dtype '{choice}' is not one of {', '.join(DTYPE_CHOICES)}.")
    if choice == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    dtype = _DTYPES[choice]
    if not _dtype_works(device, dtype):
        raise StereoInputError(
            f"dtype {choice} is not supported on {device} (this device or PyTorch build cannot run it). "
            f"Choose 'auto' or 'fp32'" + (" or 'fp16'." if device.type == "cuda" else ".")
        )
    return dtype


def same_device(a: torch.device, b: torch.device) -> bool:
    """'cuda' and 'cuda:0' are the same place (an unindexed device means the first one)."""
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def _move_own_tensors(module: torch.nn.Module, device: torch.device) -> None:
    """Move the parameters and buffers held directly by `module` (not its children)."""
    for tensors in (module._parameters, module._buffers):
        for name, tensor in tensors.items():
            if tensor is not None and tensor.device != device:
                tensor.data = tensor.data.to(device, non_blocking=True)


@dataclass
class Placement:
    device: torch.device
    offload_device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    policy: str = "offload"
    memory: MemoryHooks = field(default_factory=MemoryHooks)
    _sequential: set = field(default_factory=set, repr=False)

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise StereoInputError(f"offload policy '{self.policy}' is not one of {', '.join(POLICIES)}.")
        self.device = torch.device(self.device)
        # On the CPU there is nowhere to offload to; every policy means "stay put".
        if same_device(self.device, torch.device(self.offload_device)):
            self.policy = "keep"

    def _install_sequential_hooks(self, module: torch.nn.Module) -> None:
        for layer in module.modules():
            if not any(t is not None for t in (*layer._parameters.values(), *layer._buffers.values())):
                continue
            layer.register_forward_pre_hook(lambda mod, args: _move_own_tensors(mod, self.device))
            layer.register_forward_hook(lambda mod, args, out: _move_own_tensors(mod, self.offload_device))
        self._sequential.add(id(module))

    @contextlib.contextmanager
    def use(self, module: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """`module`, ready to run on the compute device for the duration of the block."""
        if self.policy == "sequential":
            if id(module) not in self._sequential:
                self._install_sequential_hooks(module)
            yield module
            return
        on_device = same_device(next(module.parameters()).device, self.device)
        if not on_device:
            self.memory.free(module_bytes(module), self.device)
            module.to(self.device)
        try:
            yield module
        finally:
            if self.policy == "offload":
                module.to(self.offload_device)
                self.memory.empty_cache(self.device)
