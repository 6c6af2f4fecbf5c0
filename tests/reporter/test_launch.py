"""What a launch records for the next attempt, and that no secret is in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reporter.launch import REDACTED, detect_launch, git_state, redact_command, selected_env


def test_secret_flags_and_token_values_are_redacted() -> None:
    command = [
        "python", "train.py", "--batch-size", "64", "--hf-token", "abc", "--api_key=xyz",
        "WANDB_API_KEY=k", "--resume", "hf_" + "a" * 30, "--tokenizer", "gpt2",
    ]  # fmt: skip
    assert redact_command(command) == [
        "python", "train.py", "--batch-size", "64", "--hf-token", REDACTED,
        f"--api_key={REDACTED}", f"WANDB_API_KEY={REDACTED}", "--resume", REDACTED,
        "--tokenizer", "gpt2",
    ]  # fmt: skip


def test_only_step_shaping_variables_are_kept_and_never_secrets() -> None:
    env = {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "NCCL_P2P_DISABLE": "1",
        "NCCL_AUTH_TOKEN": "secret",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_TOKEN": "hf_" + "b" * 30,
        "AWS_SECRET_ACCESS_KEY": "x",
        "HOME": "/root",
    }
    assert selected_env(env) == {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "NCCL_P2P_DISABLE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def test_git_commit_and_dirty_state(tmp_path: Path) -> None:
    assert git_state(tmp_path) == (None, None)  # not a repository
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "train.py").write_text("print(1)\n")
    run("add", "train.py")
    run("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x")
    commit, dirty = git_state(tmp_path)
    assert commit is not None and len(commit) == 40 and dirty is False
    (tmp_path / "train.py").write_text("print(2)\n")
    assert git_state(tmp_path) == (commit, True)
    launch = detect_launch(
        ["python", "train.py"],
        {"CUDA_VISIBLE_DEVICES": "0"},
        framework_args={"per_device_train_batch_size": 8, "hub_token": "t", "x": None},
        cwd=tmp_path,
    )
    assert launch.git_commit == commit and launch.git_dirty is True
    assert launch.framework_args == {"hub_token": REDACTED, "per_device_train_batch_size": "8"}
    assert "pydantic" not in launch.packages  # only the packages that shape a step
