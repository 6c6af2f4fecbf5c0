"""What this launch runs, recorded so the next attempt of the job can say what changed:
the command line, the framework's own arguments, selected environment, the git commit
and whether the tree was dirty, and the versions of the packages that shape a step.

No secrets leave the machine: a variable or flag whose name suggests a key, token,
password or credential is left out, and so is a value that looks like a known token.
Read on the reporter's thread at registration, never on the training thread.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from reporter.wire import LaunchInfo

_SECRET_NAME = re.compile(
    r"(?i)(api[_-]?key|secret|passw|token(?!izer)|credential|auth|cookie|session|private)"
)
# Values that are tokens whatever flag they follow (Hugging Face, OpenAI, Slack, GitHub,
# AWS, W&B-style 40-hex keys).
_SECRET_VALUE = re.compile(
    r"^(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|[0-9a-f]{40})$"
)
REDACTED = "[redacted]"
_ENV_NAMES = frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "WORLD_SIZE",
        "LOCAL_WORLD_SIZE",
        "PYTORCH_CUDA_ALLOC_CONF",
        "CUBLAS_WORKSPACE_CONFIG",
        "TOKENIZERS_PARALLELISM",
        "GPU_COUNT",
    }
)
_ENV_PREFIXES = ("NCCL_", "TORCHINDUCTOR_", "TORCH_COMPILE", "ACCELERATE_", "CUDA_LAUNCH")
PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "lightning",
    "pytorch-lightning",
    "deepspeed",
    "peft",
    "trl",
    "flash-attn",
    "xformers",
    "bitsandbytes",
    "jax",
    "tensorflow",
    "keras",
)


def redact_command(command: Sequence[str]) -> list[str]:
    """The command line with the value of every secret-looking flag replaced."""
    out: list[str] = []
    hide_next = False
    for arg in command:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, eq, value = arg.partition("=")
        if arg.startswith("-") and _SECRET_NAME.search(name):
            if eq:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        if eq and not arg.startswith("-") and _SECRET_NAME.search(name):
            out.append(f"{name}={REDACTED}")  # KEY=VALUE as Hydra or env-style overrides
            continue
        out.append(REDACTED if _SECRET_VALUE.match(value or arg) else arg[:512])
    return out[:128]


def selected_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that change how a step runs (visible GPUs, threads, NCCL, compile)."""
    chosen = {
        name: value[:128]
        for name, value in environ.items()
        if (name in _ENV_NAMES or name.startswith(_ENV_PREFIXES))
        and not (_SECRET_NAME.search(name) and name != "TOKENIZERS_PARALLELISM")
        and not _SECRET_VALUE.match(value)
    }
    return dict(sorted(chosen.items())[:64])


def git_state(cwd: Path, timeout_s: float = 2.0) -> tuple[str | None, bool | None]:
    """The commit checked out in ``cwd`` and whether tracked files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return (commit[:64] or None), bool(status.strip())


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)[:64]
        except metadata.PackageNotFoundError:
            continue
    return found


def detect_launch(
    command: Sequence[str],
    environ: Mapping[str, str],
    *,
    framework_args: Mapping[str, object] | None = None,
    cwd: Path | None = None,
) -> LaunchInfo:
    commit, dirty = git_state(cwd or Path.cwd())
    args = {
        str(k)[:128]: REDACTED if _SECRET_NAME.search(str(k)) else str(v)[:128]
        for k, v in (framework_args or {}).items()
        if v is not None
    }
    return LaunchInfo(
        command=redact_command(command),
        framework_args=dict(sorted(args.items())[:64]),
        env=selected_env(environ),
        git_commit=commit,
        git_dirty=dirty,
        packages=package_versions(),
    )


__all__ = [
    "PACKAGES",
    "REDACTED",
    "detect_launch",
    "git_state",
    "package_versions",
    "redact_command",
    "selected_env",
]
