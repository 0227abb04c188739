"""Convolution kernels for small batches, chosen per model by measuring it when it loads.

torch's default CPU convolution (oneDNN) pays a fixed cost per call that dominates on small
images and few rows. For the benchmark's digits CNN, a batch of 6 rows took about 310 us
through oneDNN and 175 us through the plain im2col + matrix-multiply kernel
(`aten._slow_conv2d_forward`); from about 64 rows on, oneDNN is faster. Micro-batches at
16 clients hold a handful of rows, so the forward pass was half of the service's CPU time.

`small_batch_graph` copies an exported graph with its plain 2-D convolutions (no groups, no
dilation) swapped for that kernel; `rows_where_faster` times both graphs on random inputs of
growing batch size and returns the largest size up to which the copy was faster at every
size measured. The copy is used only up to that size, and only when its outputs match the
original's. A model without such convolutions keeps its one graph and pays nothing.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.fx import GraphModule

log = logging.getLogger(__name__)

_aten = torch.ops.aten
# Batch sizes timed at load, while one call of the default graph stays under the budget.
TUNE_ROWS = (1, 4, 16, 64)
TUNE_CALL_BUDGET_S = 0.01
# The copy must beat the default graph by this margin to be worth a second code path.
MIN_GAIN = 0.9


def small_batch_graph(graph: GraphModule) -> GraphModule | None:
    """A copy of `graph` whose plain 2-D convolutions use the im2col kernel, or None."""
    copied = copy.deepcopy(graph)
    swapped = 0
    for node in copied.graph.nodes:
        if node.op != "call_function" or node.target is not _aten.conv2d.default:
            continue
        args = _conv2d_args(node)
        if args is None:
            continue
        x, weight, bias, stride, padding = args
        kernel = list(weight.meta["val"].shape[2:])
        node.target = _aten._slow_conv2d_forward.default
        node.args = (x, weight, kernel, bias, stride, padding)
        node.kwargs = {}
        swapped += 1
    if not swapped:
        return None
    copied.recompile()
    return copied


def _conv2d_args(node: torch.fx.Node) -> tuple[Any, Any, Any, list[int], list[int]] | None:
    """(input, weight, bias, stride, padding) of a conv2d node the slow kernel can run."""
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    defaults: dict[str, Any] = {"bias": None, "stride": [1], "padding": [0], "dilation": [1]}
    values = {**defaults, "groups": 1, **dict(zip(names, node.args, strict=False)), **node.kwargs}
    weight = values["weight"]
    val = getattr(weight, "meta", {}).get("val")
    if val is None or val.dim() != 4 or values["groups"] != 1:
        return None
    if any(d != 1 for d in values["dilation"]) or isinstance(values["padding"], str):
        return None
    stride, padding = list(values["stride"]), list(values["padding"])
    if len(stride) == 1:
        stride *= 2
    if len(padding) == 1:
        padding *= 2
    return values["input"], weight, values["bias"], stride, padding


def rows_where_faster(
    default: Callable[[torch.Tensor], Any],
    small: Callable[[torch.Tensor], Any],
    instance_shape: Sequence[int],
) -> int:
    """The largest timed batch size up to which `small` beat `default` at every size; 0 if never."""
    best = 0
    with torch.inference_mode():
        for rows in TUNE_ROWS:
            batch = torch.rand(rows, *instance_shape)
            default_s = _best_time(default, batch)
            small_s = _best_time(small, batch)
            log.debug("rows %d: default %.0f us, small-batch kernel %.0f us", rows,
                      default_s * 1e6, small_s * 1e6)  # fmt: skip
            if small_s > default_s * MIN_GAIN:
                break
            best = rows
            if default_s > TUNE_CALL_BUDGET_S:
                break
    return best


def same_outputs(
    default: Callable[[torch.Tensor], Any],
    small: Callable[[torch.Tensor], Any],
    instance_shape: Sequence[int],
) -> bool:
    """Whether both graphs give the same outputs (to float rounding) on random inputs."""
    batch = torch.rand(3, *instance_shape)
    with torch.inference_mode():
        want, got = _first(default(batch)), _first(small(batch))
    return bool(want.shape == got.shape and torch.allclose(want, got, rtol=1e-4, atol=1e-5))


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple | list) else out


def _best_time(fn: Callable[[torch.Tensor], Any], batch: torch.Tensor, calls: int = 5) -> float:
    fn(batch)  # warm-up: allocations and kernel selection
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        fn(batch)
        best = min(best, time.perf_counter() - start)
    return best
