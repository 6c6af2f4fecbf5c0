"""The bench's own log readers (bench/log_traces.py) over made-up lines in each format."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

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


def test_mng_val_rows_are_markers_on_the_training_clock() -> None:
    lines = [
        "step:0/20 val_loss:10.8258 train_time:0ms step_avg:nanms",
        "step:1/20 train_time:24389ms step_avg:nanms",
        "step:2/20 train_loss:9.1 train_time:24550ms step_avg:nanms",
        "step:2/20 val_loss:9.0 train_time:24550ms step_avg:nanms",
    ]
    rows = log_traces._mng(lines)
    assert [(r.step, r.t_s, r.is_eval) for r in rows] == [
        (0, 0.0, True),
        (1, 24.389, False),
        (2, 24.55, False),
        (2, 24.55, True),
    ]


def test_mng_adds_back_the_time_before_the_clock_reset_after_compile() -> None:
    lines = [
        "step:10/1393 train_time:18872ms step_avg:nanms",
        "step:11/1393 train_time:124ms step_avg:nanms",
        "step:12/1393 train_time:248ms step_avg:nanms",
    ]
    rows = log_traces._mng(lines)
    assert [(r.step, round(r.t_s, 3)) for r in rows] == [(10, 18.872), (11, 18.996), (12, 19.12)]


def test_deepspeed_reads_the_timer_lines_not_the_untimed_step_lines() -> None:
    lines = [
        "[Step 3/100] Loss: 5.1 | Global Tokens/s: 256.50",
        "[2025-08-25 09:13:40,504] [INFO] [timer.py:264:stop] epoch=0/micro_step=3/"
        "global_step=3, RunningAvgSamplesPerSec=1.73",
        "[2025-08-25 09:13:42,078] [INFO] [timer.py:264:stop] epoch=0/micro_step=4/"
        "global_step=4, RunningAvgSamplesPerSec=1.46",
    ]
    rows = log_traces._deepspeed_timer(lines)
    assert [r.step for r in rows] == [3, 4]
    assert round(rows[1].t_s - rows[0].t_s, 3) == 1.574


def test_lerobot_rows_are_counted_because_the_counter_is_rounded() -> None:
    lines = [
        "INFO 2026-05-22 18:21:22 ot_train.py:268 dataset.num_frames=23676 (24K)",
        "INFO 2026-05-22 21:11:15 ot_train.py:357 step:20K smpl:627K loss:0.001 updt_s:0.4",
        "INFO 2026-05-22 21:12:55 ot_train.py:357 step:20K smpl:634K loss:0.001 updt_s:0.4",
    ]
    rows = log_traces._lerobot(lines)
    assert [(r.step, r.t_s - rows[0].t_s) for r in rows] == [(1, 0.0), (2, 100.0)]


def _derived_and_truth(name: str) -> tuple[log_traces.DerivedTrace, dict[str, Any]]:
    """A collected run's derived trace and its truth; skipped where its log is not here."""
    log = log_traces.DEVLOG_STORE / f"{name}.log"
    if not log.exists():
        pytest.skip(f"{name}.log is not here (public data kept out of the repository)")
    truth = json.loads((log_traces.DEFAULT_DEVLOGS / f"{name}.json").read_text(encoding="utf-8"))
    trace = log_traces.derive(log)
    assert trace is not None
    return trace, truth


@pytest.mark.parametrize(
    "truth_path", sorted(log_traces.DEFAULT_DEVLOGS.glob("eta_*.json")), ids=lambda p: p.stem
)
def test_every_collected_run_derives_a_trace_that_ends_where_its_truth_does(
    truth_path: Path,
) -> None:
    found = [p for p in log_traces.logs_in(truth_path.parent) if p.stem == truth_path.stem]
    if not found:
        pytest.skip(f"{truth_path.stem}.log is not here (public data kept out of the repository)")
    log = found[0]
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    assert log.stat().st_size == truth["bytes"]
    trace = log_traces.derive(log)
    assert trace is not None
    # The ETA's target is the last step the run logged; the total the log states may lie
    # a few unlogged steps beyond it (MMDetection logs every 50 of an epoch's N), less than
    # one logging interval (50, or the widest gap between the run's logged steps).
    assert trace.target_step == truth["last_step"]
    total = truth["total_steps"]  # None where the log never states it
    steps = truth["steps"]
    interval = max([50, *(b - a for a, b in itertools.pairwise(steps))])
    assert total is None or (
        total in (truth["last_step"], *truth["total_alt"])
        or 0 < total - truth["last_step"] < interval
    )
    assert {p.step for p in trace.log.points} <= set(truth["steps"]) | set(
        *truth["alt_steps"] or [[]]
    )


def test_llamafactory_jsonl_reads_day_clocks_and_keeps_evals_apart() -> None:
    lines = [
        '{"current_steps": 5, "total_steps": 10, "loss": 1.7, "elapsed_time": "0:03:29"}',
        '{"current_steps": 5, "total_steps": 10, "eval_loss": 1.6, "elapsed_time": "0:04:00"}',
        '{"current_steps": 10, "total_steps": 10, "loss": 1.5, "elapsed_time": "1 day, 0:00:01"}',
        '{"current_steps": 10, "total_steps": 10, "elapsed_time": "1 day, 0:00:05"}',
    ]
    rows = log_traces._llamafactory_jsonl(lines)
    assert [(r.step, r.t_s, r.is_eval) for r in rows] == [
        (5, 209, False),
        (5, 240, True),
        (10, 86401, False),
    ]


def test_plain_loop_readers_take_the_logging_stamp_of_each_row() -> None:
    afa = [
        "2021-10-29 10:03:13,704 - dist_train_attn_reg.py - INFO: Iter: 200; Elasped: 0:04:32; "
        "ETA: 7:28:48; LR: 7.960e-06;",
        "2021-10-29 11:00:42,068 - dist_train_attn_reg.py - INFO: segs score:",
    ]
    rows = log_traces._afa_iters(afa)
    assert [(r.step, r.is_eval) for r in rows] == [(200, False), (200, True)]
    assert round(rows[1].t_s - rows[0].t_s, 3) == 3448.364
    sft = [
        "2025-09-23 06:52:46,676 - train - INFO - Step 7 loss: 16.72 token_entropy: 0.89",
        "2025-09-23 06:54:46,919 - train - INFO - Step 255 eval_acc: 0.422",
    ]
    rows = log_traces._step_loss_rows(sft)
    assert [(r.step, r.is_eval) for r in rows] == [(7, False), (255, True)]


@pytest.mark.parametrize(
    ("eval_steps", "cadence"),
    [
        ([255, 511, 767, 1023], 256),  # logged every 8 steps: the first eval shows early
        ([463, 933, 1403, 1873, 2343], 470),
        ([125, 250, 375, 500, 530], 125),  # a last eval at the end, off the cadence
        ([1000, 1000, 2000, 3000], 1000),  # an eval's rows repeat its step
        ([500], None),  # one eval says nothing of a cadence
        ([100, 350, 420, 900], None),  # no gap holds half of them
        ([], None),
    ],
)
def test_a_regular_cadence_is_the_gap_most_evals_keep(
    eval_steps: list[int], cadence: int | None
) -> None:
    assert log_traces.regular_cadence(eval_steps) == cadence


def test_torchtitan_reads_the_metrics_rows_under_any_logger_name() -> None:
    lines = [
        "[rank0]:[titan] 2025-12-17 01:18:20,001 - root - INFO - Training starts at step 1",
        "[rank0]:[titan] 2025-12-17 01:18:26,708 - root - INFO - step:  1  loss: 12.4153  "
        "grad_norm:  8.2782  memory: 87.87GiB(62.89%)  tps: 945  tflops: 47.71  mfu: 4.82%",
        "[rank0]:[titan] 2025-12-17 01:18:34,942 - torchtitan.observability.metrics - INFO - "
        "step:  2  loss: 12.3984  grad_norm:  8.0045  memory: 116.16GiB(83.14%)  tps: 5,970",
    ]
    rows = log_traces._torchtitan(lines)
    assert [r.step for r in rows] == [1, 2]
    assert round(rows[1].t_s - rows[0].t_s, 3) == 8.234


def test_yolov5_counts_epochs_from_zero_and_scores_the_last_launch() -> None:
    header = "      Epoch    GPU_mem   box_loss   obj_loss   cls_loss  Instances       Size"
    val = (
        "                 Class     Images  Instances          P          R      mAP50   "
        "mAP50-95: 100% 5/5 [00:04<00:00,  1.20it/s]"
    )
    lines = [
        "Starting training for 300 epochs...",
        header,
        "       0/299      3.2G    0.09    0.03    0.04   60   640: 100% 9/9 [00:10<00:00]",
        val,
        "Starting training for 2 epochs...",
        header,
        "       0/1      13.9G    0.09    0.03    0.04   60   640: 100%|##| 34/34 [00:41<00:00]",
        val,
        "       1/1      13.9G    0.08    0.03    0.04   50   640: 100% 34/34 [1:00:38<00:00]",
        "               Class     Images     Labels          P          R     mAP@.5 "
        "mAP@.5:.95: 100% 1/1 [00:02<00:00,  2.04s/it]",
    ]
    rows = log_traces._yolov5_epochs(lines)
    assert [(r.step, r.t_s, r.is_eval) for r in rows] == [
        (34, 55, False),
        (34, 59, True),
        (68, 3697, False),
        (68, 3699, True),
    ]


def test_epoch_bars_sum_train_and_validation_bars_of_the_last_launch() -> None:
    lines = [
        "Epoch 1/50 [FT]: 100%|##########| 157/157 [13:51<00:00,  5.30s/it, loss=0.919]",
        "Epoch 1/50 [Validating]: 100%|##########| 18/18 [01:32<00:00,  5.13s/it]",
        "Epoch 2/50 [FT]: 100%|##########| 157/157 [02:45<00:00,  1.06s/it, loss=0.796]",
        "Epoch 1/100 [FT]: 100%|##########| 157/157 [02:34<00:00,  1.02it/s, loss=0.48] ",
        "Epoch 1/100 [Validating]: 100%|##########| 18/18 [00:10<00:00,  1.70it/s]",
        "Saving model at Epoch 1 with Validation Accuracy: 78.12%",
        "Epoch 2/100 [FT]:   3%|3         | 5/157 [00:03<01:55,  1.32it/s, loss=0.386]",
    ]
    rows = log_traces._epoch_bars(lines)
    assert [(r.step, r.t_s, r.is_eval) for r in rows] == [
        (157, 1242, False),
        (157, 1252, True),
        (162, 1255, False),
    ]


def test_epoch_durations_add_the_infer_time_after_its_epoch_and_keep_the_last_launch() -> None:
    lines = [
        "Epoch 001 loss  22.0703 | train 2.5s",
        "Epoch 002 loss  14.7907 | train 2.2s",
        "## cifar100 with resnet-50",
        "Epoch 001 loss 4042.3892 | train 5.7s",
        "Epoch 002 loss 3674.3424 | train 5.2s | Acc 1.00% | infer 18.6s",
        "Epoch 003 loss 3392.2352 | train 5.2s",
    ]
    rows = log_traces._epoch_durations(lines)
    assert [(r.step, round(r.t_s, 1), r.is_eval) for r in rows] == [
        (1, 10.4, False),
        (2, 15.6, False),
        (2, 34.2, True),
        (3, 39.4, False),
    ]


def test_epoch_heading_rows_take_the_train_row_stamp_of_the_last_launch() -> None:
    lines = [
        "2025-10-07 09:16:40,000 - INFO - [Epoch 1/60]",
        "2025-10-07 09:16:45,000 - INFO - Train Loss: 3.1, Train Acc: 0.4",
        "2025-10-07 09:16:45,500 - INFO - Early stopping triggered.",
        "2025-10-07 09:20:35,897 - INFO - [Epoch 1/20]",
        "2025-10-07 09:20:41,114 - INFO - Train Loss: 3.1988, Train Acc: 0.4071",
        "2025-10-07 09:20:41,114 - INFO - Val   Loss: 2.4862, Val   Acc: 0.5708",
        "2025-10-07 09:20:41,208 - INFO - [Epoch 2/20]",
        "2025-10-07 09:20:46,169 - INFO - Train Loss: 3.1848, Train Acc: 0.4057",
    ]
    rows = log_traces._epoch_headings(val_after=False)(lines)
    assert [r.step for r in rows] == [1, 2]
    assert round(rows[1].t_s - rows[0].t_s, 3) == 5.055


def test_epoch_heading_rows_end_an_eval_at_a_later_val_row() -> None:
    lines = [
        "2025-10-07 09:23:05,703 - INFO - Epoch 1/20",
        "2025-10-07 09:23:06,580 - INFO - Train Loss: 1.2225, Train Acc: 68.25%",
        "2025-10-07 09:23:08,527 - INFO - Val Loss: 1.3388, Val Acc: 64.19%",
        "2025-10-07 09:23:08,671 - INFO - Epoch 2/20",
        "2025-10-07 09:23:09,206 - INFO - Train Loss: 1.1065, Train Acc: 71.36%",
    ]
    rows = log_traces._epoch_headings(val_after=True)(lines)
    assert [(r.step, r.is_eval) for r in rows] == [(1, False), (1, True), (2, False)]
    assert round(rows[1].t_s - rows[0].t_s, 3) == 1.947


def test_fairseq_simple_steps_by_updates_and_ends_an_eval_at_each_valid_row() -> None:
    lines = [
        "2023-06-13 17:31:54 | INFO | train_inner | epoch 143:    185 / 282 loss=3.153, "
        "nll_loss=1.243, ups=2.18, num_updates=40200, lr=0.000157, train_wall=46, wall=0",
        '2023-06-13 17:32:28 | INFO | fairseq_cli.train | begin validation on "valid" subset',
        "2023-06-13 17:32:41 | INFO | valid | epoch 143 | valid on 'valid' subset | loss 12.677"
        " | bleu 29.52 | num_updates 40297 | best_bleu 30.53",
        "2023-06-13 17:32:53 | INFO | train | epoch 143 | loss 3.14 | num_updates 40297 | wall 0",
        "2023-06-13 17:33:01 | INFO | train_inner | epoch 144:      3 / 282 loss=3.14, "
        "nll_loss=1.23, ups=1.49, num_updates=40300, lr=0.000158, train_wall=46, wall=0",
    ]
    rows = log_traces._fairseq_simple(lines)
    assert [(r.step, r.is_eval) for r in rows] == [(40200, False), (40200, True), (40300, False)]
    assert [r.t_s - rows[0].t_s for r in rows] == [0, 47, 67]


def test_mmengine_steps_epochs_and_iters_and_ends_an_eval_at_its_metrics_line() -> None:
    pre = "2023/06/04 15:38:0{} - mmengine - INFO - "
    lines = [
        pre.format(0) + "Epoch(train)   [5][5/6]  lr: 1.0e-03  eta: 1:00:00  time: 3.3  loss: 0.3",
        pre.format(1) + "Epoch(train)   [5][6/6]  lr: 1.0e-03  eta: 1:00:00  time: 3.3  loss: 0.3",
        pre.format(2) + "Epoch(val)   [5][1/3]    eta: 0:00:05  time: 2.9  data_time: 2.8",
        pre.format(3) + "Epoch(val)   [5][3/3]    eta: 0:00:00  time: 1.5  data_time: 1.3",
        pre.format(4) + "Epoch(val) [5][3/3]    coco/bbox_mAP: 0.0000  data_time: 0.9  time: 1.0",
        pre.format(6) + "Epoch(train)   [6][1/6]  lr: 1.0e-03  eta: 1:00:00  time: 3.3  loss: 0.3",
    ]
    rows = log_traces._mmengine(lines)
    assert [(r.step, r.is_eval) for r in rows] == [
        (29, False),
        (30, False),
        (30, True),
        (31, False),
    ]
    assert [r.t_s - rows[0].t_s for r in rows] == [0, 1, 4, 6]
    iters = [
        pre.format(0) + "Iter(train) [ 100/8000]  lr: 4.9e-03  eta: 0:20:33  time: 0.14  loss: 0.9",
        pre.format(5) + "Iter(val) [11/11]  aAcc: 82.9200  mIoU: 46.9800  time: 1.1312",
        pre.format(9) + "Iter(train) [ 200/8000]  lr: 4.9e-03  eta: 0:19:35  time: 0.15  loss: 0.8",
    ]
    rows = log_traces._mmengine(iters)
    assert [(r.step, r.is_eval) for r in rows] == [(100, False), (100, True), (200, False)]
    assert [r.t_s - rows[0].t_s for r in rows] == [0, 5, 9]


def test_step_rows_and_epoch_rows_as_eval_ends_of_the_last_launch() -> None:
    lines = [
        "2026-02-10 17:10:20,736 - __main__ - INFO - Loading configuration from a.yaml",
        "2026-02-10 17:10:32,304 - pkg.trainer - INFO - Step 100: loss=0.0192, diffusion=0.1",
        "2026-02-13 15:07:00,000 - __main__ - INFO - Loading configuration from a.yaml",
        "2026-02-13 15:07:10,000 - pkg.trainer - INFO - Step 100: loss=0.0192, diffusion=0.1",
        "2026-02-13 15:07:20,000 - pkg.trainer - INFO - Step 200: loss=0.0096, diffusion=0.1",
        "2026-02-13 15:07:25,500 - pkg.trainer - INFO - Epoch 0/2: train_loss=0.04, val_loss=0.01",
        "2026-02-13 15:07:35,000 - pkg.trainer - INFO - Step 350: loss=0.0059, diffusion=0.1",
    ]
    rows = log_traces._steps_and_epoch_evals(250)(lines)
    t0 = rows[0].t_s
    assert [(r.step, round(r.t_s - t0, 1), r.is_eval) for r in rows] == [
        (100, 0.0, False),
        (200, 10.0, False),
        (250, 15.5, True),
        (350, 25.0, False),
    ]


def test_keras_fit_epochs_sums_each_epochs_closing_bar_in_keras_2_and_3() -> None:
    keras2 = [
        "Epoch 1/150\n",
        "21/21 [==============================] - ETA: 0s - loss: 2.3195 - accuracy: 0.1507  \n",
        "Epoch 1: val_loss improved from inf to 2.27121, saving model to video_classifier.h5\n",
        "21/21 [==============================] - 11s 385ms/step - loss: 2.3195 - val_loss: 2.27\n",
        "Epoch 2/150\n",
        "21/21 [==============================] - 7s 335ms/step - loss: 2.3026 - val_loss: 2.28\n",
        "1/1 [==============================] - 1s 521ms/step\n",
    ]
    rows = log_traces._keras_fit_epochs(keras2)
    assert [(r.step, r.t_s, r.is_eval) for r in rows] == [(21, 11.0, False), (42, 18.0, False)]
    keras3 = [
        "Epoch 49/50\n",
        "23/23 ━━━━━━━━━━━━━━━━━━━━ 0s 2s/step - loss: 0.0405 - mae: 0.0338 \n",
        "Epoch 49: val_loss did not improve from 0.04314\n",
        "23/23 ━━━━━━━━━━━━━━━━━━━━ 49s 2s/step - loss: 0.0405 - val_loss: 0.0687 - lr: 2.5e-04\n",
        "Epoch 50/50\n",
        "23/23 ━━━━━━━━━━━━━━━━━━━━ 51s 2s/step - loss: 0.0390 - val_loss: 0.0539 - lr: 2.5e-04\n",
        "5/5 ━━━━━━━━━━━━━━━━━━━━ 5s 1s/step - loss: 0.0353 - mae: 0.0301 - mse: 0.0066   \n",
    ]
    rows = log_traces._keras_fit_epochs(keras3)
    assert [(r.step, r.t_s) for r in rows] == [(1127, 49.0), (1150, 100.0)]


@pytest.mark.parametrize(
    "name", ["eta_keras3_som_quality_cnn_50ep", "eta_keras2_sign_video_lstm_150ep"]
)
def test_keras_fit_logs_derive_every_epoch_and_the_truths_span(name: str) -> None:
    trace, truth = _derived_and_truth(name)
    steps = [p.step for p in trace.log.points]
    assert len(steps) == truth["n_steps"]
    assert (steps[0], steps[-1]) == (truth["first_step"], truth["last_step"])
    assert trace.target_step == truth["total_steps"]
    assert abs(trace.actual_s - truth["time"]["span_s"]) <= truth["time"]["span_tol"]


def test_ultralytics_classify_bars_sum_train_and_top1_validation_bars() -> None:
    lines = [
        "      Epoch    GPU_mem       loss  Instances       Size\n",
        "       1/50     0.679G     0.2584         11         64: 100%|██████████| 30/30 "
        "[00:09<00:00,  3.30it/s]\n",
        "               classes   top1_acc   top5_acc: 100%|██████████| 1/1 "
        "[00:01<00:00,  2.86it/s]\n",
        "0: 64x64 rhinoceros 0.34, hippopotamus 0.33, elephant 0.32, 8.4ms\n",
        "       2/50     0.682G     0.1751         11         64:  50%|█████     | 15/30 "
        "[00:02<00:02,  7.63it/s]\n",  # a redraw before the bar is full: no row
        "       2/50     0.682G     0.1751         11         64: 100%|██████████| 30/30 "
        "[00:03<00:00,  7.63it/s]\n",
    ]
    rows = log_traces._ultralytics_cls_epochs(lines)
    assert [(r.step, r.t_s, r.is_eval) for r in rows] == [
        (30, 9, False),
        (30, 10, True),
        (60, 13, False),
    ]


def test_ultralytics_seconds_bars_sum_train_and_validation_and_skip_a_bar_cut_short() -> None:
    bar = "━━━━━━━━━━━━"
    lines = [
        "      1/100      2.13G      0.835      3.465      1.187         37        640: 100% "
        f"{bar} 221/221 3.9it/s 56.1s\n",
        "                 Class     Images  Instances      Box(P          R      mAP50  mAP50-95):"
        f" 100% {bar} 26/26 3.7it/s 7.0s\n",
        "      2/100      1.97G     0.7556      2.466      1.099         23        640: 100% "
        f"{bar} 221/221 4.6it/s 1:02.5\n",
        "     3/100         2G     0.4878     0.5139      1.034         39        640: 100% "
        f"{bar[:-1]}╸ 220/221 5.8it/s 44.3s<0.2s\n",
        "KeyboardInterrupt\n",
    ]
    rows = log_traces._ultralytics_seconds_epochs(lines)
    assert [(r.step, round(r.t_s, 1), r.is_eval) for r in rows] == [
        (221, 56.1, False),
        (221, 63.1, True),
        (442, 125.6, False),
    ]


@pytest.mark.parametrize(
    ("name", "n_rows", "n_evals", "span_s"),
    [
        ("eta_ultralytics_yolov8m_cls_animals_50ep", 50, 51, 171.0),
        ("eta_ultralytics_yolov8n_traffic_rtx3050_100ep", 100, 101, 5034.1),
        ("ultralytics_yolov8n_cbam_traffic_ctrlc85", 84, 84, 4046.9),
    ],
)
def test_corpus_p_ultralytics_runs_derive_their_truth(
    name: str, n_rows: int, n_evals: int, span_s: float
) -> None:
    trace, truth = _derived_and_truth(name)
    steps = [p.step for p in trace.log.points]
    assert steps == truth["steps"]
    assert len(steps) == n_rows == truth["n_steps"]
    assert len(trace.log.eval_steps) == n_evals == truth["eval"]["n_phases"]
    assert trace.target_step == truth["last_step"]
    # the trace's clock is the train bars after the first plus the validation bars between
    assert round(trace.actual_s, 1) == span_s == truth["time"]["span_alt_s"]
    assert trace.eval_every == truth["steps"][0]


def test_loguru_step_rows_keep_the_last_launch_and_skip_epoch_lines() -> None:
    pre = "2026-02-03 {} | INFO     | __main__:train:{} - "
    lines = [
        pre.format("13:24:33.252", 133) + "Starting training...",
        pre.format("13:24:36.939", 172) + "Step 100, Loss: 6.2713",
        pre.format("14:49:26.401", 133) + "Starting training...",
        pre.format("14:49:29.946", 172) + "Step 100, Loss: 6.2742",
        pre.format("14:50:20.008", 176) + "Epoch 1 completed. Average loss: 4.4650",
        pre.format("14:50:20.500", 172) + "Step 1600, Loss: 3.0805",
    ]
    rows = log_traces._loguru_steps(lines)
    assert [(r.step, r.is_eval) for r in rows] == [(100, False), (1600, False)]
    assert round(rows[1].t_s - rows[0].t_s, 3) == 50.554


def test_gpt_from_zero_trace_matches_its_truth() -> None:
    trace, truth = _derived_and_truth("eta_gpt_from_zero_cpu_7610")
    steps = [p.step for p in trace.log.points]
    assert steps == truth["steps"]
    assert (steps[0], trace.target_step) == (truth["first_step"], truth["last_step"])
    assert len(steps) == truth["n_steps"] == 76
    assert abs(trace.actual_s - truth["time"]["span_s"]) <= truth["time"]["span_tol"]
    assert len(trace.log.pauses) == truth["eval"]["n_phases"] == 0


# corpus corpus-r


def test_sb3_tables_step_by_iteration_at_time_elapsed_and_keep_the_last_learn() -> None:
    def table(iteration: int, elapsed: int) -> list[str]:
        return [
            "-----------------------------------------",
            "| time/                   |             |",
            "|    fps                  | 773         |",
            f"|    iterations           | {iteration:<11} |",
            f"|    time_elapsed         | {elapsed:<11} |",
            f"|    total_timesteps      | {2048 * iteration:<11} |",
            "| train/                  |             |",
            "|    loss                 | -0.016      |",
            "-----------------------------------------",
        ]

    lines = [
        *table(1, 3),
        *table(2, 9),
        "Output 3: Average over 100 episodes - Reward: 0.04",
        *table(1, 2),  # a second learn() starts its iterations over
        *table(2, 5),
        *table(3, 1000),
    ]
    rows = log_traces._sb3_tables(lines)
    assert [(r.step, r.t_s) for r in rows] == [(1, 2.0), (2, 5.0), (3, 1000.0)]


def test_paddlerec_epoch_rows_skip_the_appended_infer_runs_epochs() -> None:
    lines = [
        "2022-04-12 17:20:18,636 - INFO - epoch: 0, batch_id: 1500, AUC:0.863775, ACC:0.80, "
        "loss:0.15770243, avg_reader_cost: 0.00014 sec, avg_batch_cost: 0.58333 sec",
        "2022-04-12 17:24:35,400 - INFO - epoch: 0 done, AUC: 0.874769,ACC: 0.822143,"
        "loss:0.14919266, epoch time: 1105.58 s",
        "2022-04-12 17:42:59,469 - INFO - epoch: 1 done, AUC: 0.916897,ACC: 0.885012,"
        "loss:0.13309471, epoch time: 1104.06 s",
        "aistudio@jupyter-52221-3795303:~/work/models/sign$ python -u ../../tools/infer.py",
        "2022-04-12 23:20:18,932 - INFO - epoch: 15 done, AUC: 0.942075,ACC: 0.893734, "
        "epoch time: 71.35 s",
    ]
    rows = log_traces._paddlerec_epochs(lines)
    assert [r.step for r in rows] == [1, 2]
    assert round(rows[1].t_s - rows[0].t_s, 3) == 1104.069


def test_used_time_steps_count_across_epochs_and_mark_each_untimed_eval() -> None:
    lines = [
        "Start training!",
        "Starting epoch 0 current lr is 0.001",
        "Epoch 0, Step 25, total used time 7.178124904632568 (s), avg loss so far is 0.1097",
        "Epoch 0, Step 125, total used time 34.65326642990112 (s), avg loss so far is 0.0603",
        "Epoch 0, val loss is 0.0477195605635643, val mse is 0.024224352091550827.",
        "Epoch 0, test mse is 0.017013896256685257.",
        "Starting epoch 1 current lr is 0.001",
        "Epoch 1, Step 25, total used time 47.7331485748291 (s), avg loss so far is 0.0395",
    ]
    rows = log_traces._used_time_steps(125)(lines)
    assert [(r.step, round(r.t_s, 2), r.is_eval) for r in rows] == [
        (25, 7.18, False),
        (125, 34.65, False),
        (125, 34.65, True),
        (150, 47.73, False),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "eta_sb3_ppo_frozenlake_4x4_slippery_245it",
        "eta_paddlerec_sign_20ep",
        "eta_prednet_paddle_kitti_150ep",
    ],
)
def test_corpus_r_traces_match_their_truths_rows_span_and_evals(name: str) -> None:
    trace, truth = _derived_and_truth(name)
    assert [p.step for p in trace.log.points] == truth["steps"]
    assert trace.log.points[0].t_s == 0
    assert abs(trace.actual_s - truth["time"]["span_s"]) <= 1e-3 * truth["time"]["span_s"]
    assert len(trace.log.pauses) == truth["eval"]["n_phases"]


# corpus corpus-s


def test_tqdm_reads_a_bar_sharing_its_segment_with_a_vllm_line() -> None:
    lines = [
        "  0%|          | 0/3180 [00:00<?, ?it/s]INFO 01-31 05:57:08 [block_pool.py:447] "
        "Successfully reset prefix cache",
        "  0%|          | 1/3180 [00:23<21:02:00, 23.82s/it]INFO 01-31 05:57:31 "
        "[block_pool.py:447] Successfully reset prefix cache",
        "Capturing CUDA graphs (decode, FULL): 100%|##########| 15/15 [00:00<00:00, 39.60it/s]",
        " 32%|###2      | 1024/3180 [5:10:54<10:10:31, 16.99s/it]INFO 01-31 11:08:02 "
        "[block_pool.py:447] Successfully reset prefix cache",
    ]
    rows = log_traces._tqdm("", 3180)(lines)
    assert [(r.step, r.t_s) for r in rows] == [(1, 23), (1024, 18654)]


@pytest.mark.parametrize(
    ("name", "n_rows"),
    [
        ("eta_trl_sft_qwen3_06b_24point_321", 321),
        ("trl_grpo_qwen25_05b_saferank_cut1024", 1024),
    ],
)
def test_corpus_s_traces_match_their_truths_rows_span_and_evals(name: str, n_rows: int) -> None:
    trace, truth = _derived_and_truth(name)
    steps = [p.step for p in trace.log.points]
    assert steps == truth["steps"]
    assert len(steps) == truth["n_steps"] == n_rows
    assert (steps[0], trace.target_step) == (truth["first_step"], truth["last_step"])
    assert trace.log.points[0].t_s == 0
    assert abs(trace.actual_s - truth["time"]["span_s"]) <= 1e-3 * truth["time"]["span_s"]
    assert len(trace.log.pauses) == truth["eval"]["n_phases"] == 0


# corpus corpus-t


def test_lightning_epoch_bars_sum_finished_bars_and_mark_each_epochs_validation() -> None:
    lines = [
        "Training: |          | 0/? [00:00<?, ?it/s]                                ",
        "Epoch 0: 100%|██████████| 391/391 [02:20<00:00,  2.78it/s, v_num=1, val_loss=3.850]",
        "Epoch 0, global step 391: 'val_acc' reached 0.10490 (best 0.10490), saving model",
        "Epoch 1:  50%|█████     | 195/391 [01:09<01:09,  2.80it/s, v_num=1]",  # not finished
        "Epoch 1: 100%|██████████| 391/391 [1:02:21<00:00,  2.77it/s, v_num=1, val_loss=3.370]",
        "Testing DataLoader 0: 100%|██████████| 79/79 [00:05<00:00, 14.1it/s]",
    ]
    rows = log_traces._lightning_epoch_bars(lines)
    assert [(r.step, r.t_s, r.is_eval) for r in rows] == [
        (391, 140.0, False),
        (391, 140.0, True),
        (782, 3881.0, False),
        (782, 3881.0, True),
    ]


@pytest.mark.parametrize(
    ("name", "n_rows", "first_step", "span_s"),
    [
        ("eta_lightning_resnet50_cifar100_100ep", 100, 391, 13648.0),
        ("eta_lightning_unet_oxfordpet_30ep", 30, 115, 2668.0),
        ("eta_lightning_resnet50_imagenet_resume_23ep", 23, 390390, 49581.0),
    ],
)
def test_corpus_t_lightning_traces_match_their_truths(
    name: str, n_rows: int, first_step: int, span_s: float
) -> None:
    trace, truth = _derived_and_truth(name)
    steps = [p.step for p in trace.log.points]
    assert steps == truth["steps"]
    assert len(steps) == n_rows == truth["n_steps"]
    assert (steps[0], trace.target_step) == (first_step, truth["last_step"])
    assert (truth["first_step"], truth["last_step"]) == (first_step, truth["total_steps"])
    assert trace.log.points[0].t_s == 0
    assert abs(trace.actual_s - span_s) <= truth["time"]["span_tol"]
    assert span_s == truth["time"]["span_s"]
    assert len(trace.log.pauses) == truth["eval"]["n_phases"] == n_rows
    assert trace.eval_every == truth["steps"][1] - truth["steps"][0]


# corpus corpus-u


def test_corenet_rows_read_the_global_iteration_through_ansi_codes_and_skip_val_progress() -> None:
    logs = "\x1b[34m\x1b[1mLOGS   \x1b[0m"
    lines = [
        "2024-07-25 11:04:50 - \x1b[32m\x1b[1mINFO   \x1b[0m - Training epoch 0",
        f"2024-07-25 11:07:41 - {logs} - Epoch:   0 [       1/10000000], loss: {{'total_loss': "
        "299.5}, LR: [1e-06, 1e-06], Avg. batch load time: 170.157, Elapsed time: 171.40",
        f"2024-07-25 11:08:17 - {logs} - Epoch:   0 [     251/10000000], loss: {{'total_loss': "
        "193.6}, LR: [5e-06, 5e-06], Avg. batch load time: 0.340, Elapsed time: 206.75",
        f"2024-07-25 11:08:50 - {logs} - *** Training summary for epoch 0",
        f"2024-07-25 11:11:59 - {logs} - Epoch:   0 [    8016/   33154], loss: {{'total_loss': "
        "14.6}, multiclass_classification_pr(pred=logits): {'ODS-F1': [0.57]}",
        f"2024-07-25 11:12:10 - {logs} - *** Validation summary for epoch 0",
        f"2024-07-25 11:12:28 - {logs} - Epoch:   1 [     497/10000000], loss: {{'total_loss': "
        "14.8}, LR: [1e-05, 1e-05], Avg. batch load time: 0.268, Elapsed time:  0.33",
    ]
    rows = log_traces._corenet(lines)
    assert [(r.step, r.is_eval) for r in rows] == [
        (1, False),
        (251, False),
        (251, True),
        (497, False),
    ]
    assert rows[2].t_s - rows[0].t_s == 269.0


@pytest.mark.parametrize(
    "name", ["eta_corenet_openvit_b_ingredient101_60ep", "eta_corenet_foodv_b_uec_60ep"]
)
def test_corpus_u_traces_match_their_truths_rows_span_and_evals(name: str) -> None:
    trace, truth = _derived_and_truth(name)
    steps = [p.step for p in trace.log.points]
    assert steps == truth["steps"]
    assert len(steps) == truth["n_steps"]
    assert (steps[0], trace.target_step) == (truth["first_step"], truth["last_step"])
    assert trace.log.points[0].t_s == 0
    assert abs(trace.actual_s - truth["time"]["span_s"]) <= truth["time"]["span_tol"]
    assert len(trace.log.pauses) == truth["eval"]["n_phases"]
    assert trace.eval_every == truth["total_steps"] // truth["total_alt"][0]


def test_gluoncv_epoch_costs_sum_train_seconds_mark_evals_and_keep_the_last_launch() -> None:
    lines = [
        "Namespace(network='resnet50_v1', data_shape=512, batch_size=4, epochs=240)",
        "Start training from [Epoch 0]",
        "[Epoch 0] Training cost: 14.208, CrossEntropy=11.535, SmoothL1=4.797",
        "[Epoch 0] Validation: ",
        "mAP=0.1335514133367112",
        "Namespace(network='resnet50_v1', data_shape=512, batch_size=4, epochs=300)",
        "Start training from [Epoch 0]",
        "[Epoch 0] Training cost: 14.312, CrossEntropy=11.792, SmoothL1=5.341",
        "[Epoch 0] Validation: ",
        "grave=0.05131973806313737",
        "[Epoch 1] Training cost: 9.017, CrossEntropy=5.492, SmoothL1=4.308",
        "[Epoch 160] Set learning rate to 0.0001",
        "[Epoch 1] Validation: ",
    ]
    rows = log_traces._gluoncv_epoch_costs(lines)
    assert [(r.step, round(r.t_s, 3), r.is_eval) for r in rows] == [
        (1, 28.52, False),
        (1, 28.52, True),
        (2, 37.537, False),
        (2, 37.537, True),
    ]


def test_paddlevideo_colour_rows_strip_escapes_and_keep_the_last_launch() -> None:
    lines = [
        "[10/05 20:55:40] epoch:[100/100] \x1b[95mtrain step:20  \x1b[0m \x1b[92mloss: 1.2",
        "[10/05 20:55:41] training AGCN finished",
        "[10/06 13:11:36] \x1b[35mepoch:[  1/100]\x1b[0m \x1b[95mtrain step:0   \x1b[0m "
        "\x1b[92mloss: 3.42993 lr: 0.005000\x1b[0m ips: 14.06 instance/sec.",
        "[10/06 13:11:41] epoch:[  1/100] \x1b[95mtrain step:10  \x1b[0m \x1b[92mloss: 3.32306",
        "[10/06 13:11:59] \x1b[31mEND epoch:1  \x1b[0m \x1b[95mtrain\x1b[0m \x1b[92mloss_avg: 3.28",
        "[10/06 13:12:02] \x1b[35mepoch:[  2/100]\x1b[0m \x1b[95mtrain step:0   \x1b[0m loss: 3.05",
    ]
    rows = log_traces._paddlevideo_colour(45)(lines)
    assert [r.step for r in rows] == [1, 11, 46]
    assert [r.t_s - rows[0].t_s for r in rows] == [0.0, 5.0, 26.0]


@pytest.mark.parametrize(
    "name", ["eta_gluoncv_ssd512_r50_autarch_300ep", "eta_paddlevideo_agcn_fsd10_100ep"]
)
def test_corpus_v_traces_match_their_truths_rows_span_and_evals(name: str) -> None:
    trace, truth = _derived_and_truth(name)
    assert [p.step for p in trace.log.points] == truth["steps"]
    assert trace.log.points[0].t_s == 0
    assert abs(trace.actual_s - truth["time"]["span_s"]) <= 1e-3 * truth["time"]["span_s"]
    assert len(trace.log.pauses) == truth["eval"]["n_phases"]
    assert trace.clock_excludes_eval == ("train only" in truth["time"]["kind"])
