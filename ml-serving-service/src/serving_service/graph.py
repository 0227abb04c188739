"""The exported graph as the hot path calls it: lifted out of its program, tuned at load.

`fast_forward` turns a loaded `ExportedProgram` into the `Forward` a `LoadedModel` calls:
the program's graph called directly with its weights (`LiftedGraph`) when the program is a
plain single-input function, with small-batch convolutions (`kernels.py`) for the batch
sizes where they measured faster; anything else keeps the safe `program.module()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from serving_service.kernels import rows_where_faster, same_outputs, small_batch_graph

log = logging.getLogger(__name__)

# A model as the hot path sees it: float32 batch in, logits (or a tuple holding them) out.
Forward = Callable[[torch.Tensor], Any]


class LiftedGraph:
    """An exported program's graph called directly, its weights passed as leading arguments.

    `ExportedProgram.module()` wraps the same graph in pytree flattening and shape guards,
    which cost more than the forward pass of a small CNN (about 230 us against 100 us per
    call for the default model). Shapes are validated by `LoadedModel.reshape_batch` instead,
    and the smoke test runs the graph at batch sizes 1 and 2 before a version is served.
    Batches of up to `small_rows` rows run a copy with small-batch convolutions
    (`kernels.py`), when timing at load showed it faster.
    """

    def __init__(self, program: ExportedProgram) -> None:
        self._graph = program.graph_module
        self._small_graph: torch.fx.GraphModule | None = None
        self.small_rows = 0
        weights = {**program.state_dict, **program.constants}
        self._leading = tuple(
            weights[spec.target]
            for spec in program.graph_signature.input_specs
            if spec.kind != InputKind.USER_INPUT and spec.target is not None
        )

    def __call__(self, batch: torch.Tensor) -> Any:
        if len(batch) <= self.small_rows and self._small_graph is not None:
            return self._small_graph(*self._leading, batch)
        return self._graph(*self._leading, batch)

    @property
    def graph(self) -> torch.fx.GraphModule:
        return self._graph

    def use_small_batch_graph(self, graph: torch.fx.GraphModule, rows: int) -> None:
        """Run batches of up to `rows` rows through `graph` (same signature, same outputs)."""
        self._small_graph, self.small_rows = graph, rows

    def tune(self, instance_shape: tuple[int, ...]) -> None:
        """Use the small-batch convolutions up to the batch size where they measured faster."""
        small = small_batch_graph(self._graph)
        if small is None:
            return

        def default(batch: torch.Tensor) -> Any:
            return self._graph(*self._leading, batch)

        def candidate(batch: torch.Tensor) -> Any:
            return small(*self._leading, batch)

        try:
            if not same_outputs(default, candidate, instance_shape):
                log.warning("small-batch convolutions disagree with the exported graph; not used")
                return
            rows = rows_where_faster(default, candidate, instance_shape)
        except Exception as exc:  # an optimization must never cost a valid model its load
            log.warning("small-batch convolutions not used: %s", exc)
            return
        if rows:
            self.use_small_batch_graph(small, rows)
        log.info("small-batch convolutions used up to %d rows", rows)


def fast_forward(program: ExportedProgram, instance_shape: tuple[int, ...]) -> Forward:
    """The lifted (and tuned) graph when the program is a plain single-input function.

    Anything else (several inputs, buffers mutated in place, tokens) keeps the safe
    `program.module()`.
    """
    specs = program.graph_signature
    kinds = [spec.kind for spec in specs.input_specs]
    plain = (
        kinds.count(InputKind.USER_INPUT) == 1
        and kinds[-1] == InputKind.USER_INPUT
        and all(
            k in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)
            for k in kinds[:-1]
        )
        and [spec.kind for spec in specs.output_specs] == [OutputKind.USER_OUTPUT]
    )
    if plain:
        lifted = LiftedGraph(program)
        lifted.tune(instance_shape)
        return lifted
    module: Forward = program.module()
    return module
