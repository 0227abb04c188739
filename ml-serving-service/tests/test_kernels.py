"""Small-batch convolutions: same outputs as the exported graph, used only where measured faster."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
from torch import nn

from serving_service import kernels
from serving_service.graph import LiftedGraph, fast_forward

SHAPE = (1, 8, 8)


def _export(net: nn.Module, shape: tuple[int, ...] = SHAPE) -> torch.export.ExportedProgram:
    torch.manual_seed(0)
    net.eval()
    batch = torch.export.Dim("batch")
    return torch.export.export(net, (torch.rand(2, *shape),), dynamic_shapes=({0: batch},))


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 10),
    )  # fmt: skip


def _ops(graph: torch.fx.GraphModule) -> list[object]:
    return [n.target for n in graph.graph.nodes if n.op == "call_function"]


def test_plain_convolutions_are_swapped_and_give_the_same_outputs() -> None:
    program = _export(_cnn())
    lifted = LiftedGraph(program)
    small = kernels.small_batch_graph(lifted.graph)
    assert small is not None
    ops = _ops(small)
    assert torch.ops.aten.conv2d.default not in ops
    assert ops.count(torch.ops.aten._slow_conv2d_forward.default) == 2
    lifted.use_small_batch_graph(small, rows=64)
    module = program.module()
    for rows in (1, 5, 40):
        x = torch.rand(rows, *SHAPE)
        with torch.inference_mode():
            torch.testing.assert_close(lifted(x)[0], module(x), rtol=1e-4, atol=1e-5)


def test_grouped_and_dilated_convolutions_are_left_alone() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),
        nn.Flatten(), nn.Linear(4 * 8 * 8, 10),
    )  # fmt: skip
    program = _export(net)
    small = kernels.small_batch_graph(program.graph_module)
    assert small is not None
    ops = _ops(small)
    assert ops.count(torch.ops.aten._slow_conv2d_forward.default) == 1
    assert ops.count(torch.ops.aten.conv2d.default) == 2
    lifted = LiftedGraph(program)
    lifted.use_small_batch_graph(small, rows=8)
    x = torch.rand(3, *SHAPE)
    with torch.inference_mode():
        torch.testing.assert_close(lifted(x)[0], program.module()(x), rtol=1e-4, atol=1e-5)


def test_a_model_without_convolutions_keeps_one_graph() -> None:
    program = _export(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))
    assert kernels.small_batch_graph(program.graph_module) is None
    forward = fast_forward(program, SHAPE)
    assert isinstance(forward, LiftedGraph) and forward.small_rows == 0


def _ran_slow_kernel(forward: LiftedGraph, rows: int) -> bool:
    with torch.inference_mode(), torch.profiler.profile() as prof:
        forward(torch.rand(rows, *SHAPE))
    return any(e.name == "aten::_slow_conv2d_forward" for e in prof.events())


def test_batches_up_to_the_measured_size_take_the_small_batch_graph() -> None:
    lifted = LiftedGraph(_export(_cnn()))
    small = kernels.small_batch_graph(lifted.graph)
    assert small is not None
    lifted.use_small_batch_graph(small, rows=4)
    assert _ran_slow_kernel(lifted, 2)
    assert _ran_slow_kernel(lifted, 4)
    assert not _ran_slow_kernel(lifted, 5)


def _sleeper(seconds_by_rows: dict[int, float]) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(batch: torch.Tensor) -> torch.Tensor:
        time.sleep(seconds_by_rows[len(batch)])
        return batch

    return forward


@pytest.mark.parametrize(
    ("small_ms", "expected"),
    [
        ({1: 1, 4: 1, 16: 12, 64: 12}, 4),  # faster up to 4 rows, slower from 16
        ({1: 12, 4: 1, 16: 1, 64: 1}, 0),  # slower at 1 row: never used, even if faster later
        ({1: 1, 4: 1, 16: 1, 64: 1}, 64),  # faster at every size measured
    ],
)
def test_the_size_limit_is_where_the_small_graph_stops_winning(
    small_ms: dict[int, float], expected: int
) -> None:
    default = _sleeper({rows: 0.006 for rows in kernels.TUNE_ROWS})
    small = _sleeper({rows: ms / 1000 for rows, ms in small_ms.items()})
    assert kernels.rows_where_faster(default, small, SHAPE) == expected


def test_disagreeing_graphs_are_detected() -> None:
    lifted = LiftedGraph(_export(_cnn()))

    def default(x: torch.Tensor) -> torch.Tensor:
        return lifted(x)[0]

    def shifted(x: torch.Tensor) -> torch.Tensor:
        return default(x) + 0.01

    assert kernels.same_outputs(default, default, SHAPE)
    assert not kernels.same_outputs(default, shifted, SHAPE)


def test_a_failing_small_batch_graph_leaves_the_model_as_exported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> bool:
        raise RuntimeError("kernel not implemented for this dtype")

    monkeypatch.setattr("serving_service.graph.same_outputs", broken)
    forward = fast_forward(_export(_cnn()), SHAPE)
    assert isinstance(forward, LiftedGraph) and forward.small_rows == 0
    assert not _ran_slow_kernel(forward, 4)  # (at 1 row torch itself may pick that kernel)
