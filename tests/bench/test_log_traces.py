"""The bench's own log readers (bench/log_traces.py) over made-up lines in each format."""

from __future__ import annotations

from bench import log_traces


def test_tqdm_reads_the_training_bars_elapsed_time_and_skips_other_bars() -> None:
    lines = [
        "Tokenizing eval dataset:  50%|#####     | 5/10 [00:01<00:01,  5.0it/s]",
        "  0%|          | 0/300 [00:00<?, ?it/s]",
        "  0%|          | 1/300 [00:02<09:58,  2.00s/it]"
        "  1%|          | 2/300 [00:04<09:56,  2.00s/it]",  # two redraws on one line
        "  1%|          | 2/300 [00:04<09:56,  2.00s/it]",  # redrawn: not a new step
        " 50%|#####     | 150/300 [05:00<05:00,  2.00s/it]",
        "100%|##########| 300/300 [1:02:03<00:00,  2.00s/it]",
    ]
    rows = log_traces._tqdm("", 300)(lines)
    assert [(r.step, r.t_s) for r in rows] == [(1, 2), (2, 4), (150, 300), (300, 3723)]


def test_tqdm_with_a_prefix_reads_only_that_bar() -> None:
    lines = [
        "Loading weights:  50%|#####     | 1/2 [00:01<00:01,  1.0it/s]",
        "Train:  10%|#         | 1/2 [00:05<00:05,  5.00s/it]",
        "Train: 100%|##########| 2/2 [00:09<00:00,  4.50s/it]",
    ]
    rows = log_traces._tqdm("Train:", 2)(lines)
    assert [(r.step, r.t_s) for r in rows] == [(1, 5), (2, 9)]


def test_epoch_totals_sum_into_a_clock_at_each_epochs_last_step() -> None:
    lines = [
        "Epoch: [0/100]  [ 10/50]  eta: 0:00:40  loss: 1.0  time: 1.0",
        "Epoch: [0/100] Total time: 0:00:50 (1.000 s / it)",
        "Epoch: [1/100] Total time: 1:00:01 (72.02 s / it)",
    ]
    rows = log_traces._epoch_totals(50)(lines)
    assert [(r.step, r.t_s) for r in rows] == [(50, 50.0), (100, 3651.0)]
