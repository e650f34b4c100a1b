"""The KV pool (rows taken and given back, compaction) and the engine's settings."""

from __future__ import annotations

import pytest
import torch

from indextts2.engine import EngineConfig
from indextts2.engine.graphs import span_buckets
from indextts2.engine.kv_pool import KVPool, kv_bytes_per_position, plan_rows
from indextts2.errors import InvalidInput
from indextts2.model.config import load_preset
from indextts2.model.gpt import UnifiedVoice, build_dummy_gpt
from indextts2.options import GenerationOptions


@pytest.fixture(scope="module")
def gpt() -> UnifiedVoice:
    return build_dummy_gpt(load_preset("tiny"))


def test_released_rows_are_filled_from_the_end_with_their_whole_state(gpt: UnifiedVoice) -> None:
    pool = KVPool(gpt, rows=6, positions=32, device=torch.device("cpu"))
    taken = pool.take(5)
    assert list(taken) == [0, 1, 2, 3, 4]
    assert pool.free == 1
    for row in taken:  # mark every row's state with its number
        pool.cache.keys[:, row] = row
        pool.cache.lengths[row] = 10 + row
        pool.host_lengths[row] = 10 + row
        pool.tokens[row] = 100 + row
    pool.set_options([3], GenerationOptions(temperature=0.5, top_k=7))
    moves = pool.release([1, 2])
    assert [(m.source, m.target) for m in moves] == [(3, 1), (4, 2)]
    assert pool.used == 3
    assert pool.free == 3
    assert pool.cache.keys[0, 1, 0, 0, 0] == 3
    assert pool.cache.keys[0, 2, 0, 0, 0] == 4
    assert pool.cache.lengths[:3].tolist() == [10, 13, 14]
    assert pool.host_lengths[:3] == [10, 13, 14]
    assert pool.tokens[:3].tolist() == [100, 103, 104]
    assert pool.params.temperature[1, 0] == 0.5
    assert pool.params.top_k[1, 0] == 7
    again = pool.take(2)  # new rows start clean
    assert list(again) == [3, 4]
    assert pool.cache.lengths[3:5].tolist() == [0, 0]
    assert pool.seen[3, 1]
    assert pool.seen[3, gpt.config.start_mel_token]
    assert not pool.seen[3, 0]
    with pytest.raises(RuntimeError, match="free rows"):
        pool.take(2)


def test_pool_rows_are_planned_from_the_config_or_a_cpu_default(gpt: UnifiedVoice) -> None:
    cpu = torch.device("cpu")
    assert plan_rows(gpt, positions=100, rows=5, memory_fraction=0.5, device=cpu) == 5
    assert plan_rows(gpt, positions=100, rows=None, memory_fraction=0.5, device=cpu) == 16
    cfg = gpt.config
    assert kv_bytes_per_position(gpt) == 2 * cfg.layers * cfg.model_dim * 4


def test_graph_spans_double_up_to_the_pool_positions() -> None:
    assert span_buckets(1000) == [256, 512, 1000]
    assert span_buckets(256) == [256]
    assert span_buckets(2452) == [256, 512, 1024, 2048, 2452]


def test_engine_settings_are_checked() -> None:
    with pytest.raises(InvalidInput, match="max_queue"):
        EngineConfig(max_queue=0)
    with pytest.raises(InvalidInput, match="kv_memory_fraction"):
        EngineConfig(kv_memory_fraction=1.5)
    with pytest.raises(InvalidInput, match="graph_batch_sizes"):
        EngineConfig(graph_batch_sizes=(0, 4))
    assert EngineConfig(graph_batch_sizes=(8, 1, 8)).graph_batch_sizes == (1, 8)


class _FakeGraph:
    def __init__(self, key: tuple[int, int], log: list[tuple[int, int]]) -> None:
        self.key = key
        self.log = log

    def replay(self) -> None:
        self.log.append(self.key)


def test_a_step_replays_the_smallest_graph_that_fits_and_resets_the_idle_rows(gpt: UnifiedVoice) -> None:
    from indextts2.engine.graphs import DecodeGraphs

    pool = KVPool(gpt, rows=8, positions=600, device=torch.device("cpu"))
    graphs = DecodeGraphs(lambda rows, span: None, pool, (1, 2, 4, 8, 16))
    assert graphs.batch_sizes == [1, 2, 4, 8]  # no graph larger than the pool
    assert graphs.spans == [256, 512, 600]
    log: list[tuple[int, int]] = []
    graphs._graphs = {(b, s): _FakeGraph((b, s), log) for b in graphs.batch_sizes for s in graphs.spans}  # type: ignore[misc]
    pool.take(3)
    pool.cache.lengths[:8] = 40  # the free rows 3.. hold stale lengths
    pool.mel_positions[:8] = 50
    assert graphs.run(3, 300)
    assert log == [(4, 512)]
    assert pool.cache.lengths.tolist() == [40, 40, 40, 0, 40, 40, 40, 40]  # row 3 runs idle, reset
    assert pool.mel_positions[3] == 2
    assert pool.mel_positions[2] == 50
    assert not graphs.run(3, 601)  # longer than any captured span: the caller runs it eagerly
