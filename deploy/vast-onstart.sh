#!/usr/bin/env bash
# Vast.ai on-start snippet: install the probecast reporter and run your training under it.
#
# Paste into the template's "On-start script" field (or fetch and run this file), and set
# these in the template's environment (-e) so nothing secret lives in the script:
#
#   PROBECAST_URL=https://bot.example.com      the bot (reachable from the instance)
#   PROBECAST_INGEST_SECRET=...                the bot's enrolment secret
#   PROBECAST_RUN=llama-ft                     optional; default: the label Vast gives
#   PROBECAST_USD_PER_HOUR=2.10                optional; the offer's $/h for cost figures
#   PROBECAST_TRAIN_CMD="python train.py ..."  the command to run
#   PROBECAST_WORKDIR=/workspace/project       optional; where to run it
#
# Vast sets CONTAINER_ID, VAST_CONTAINERLABEL and GPU_COUNT; the reporter sends the first
# two and the GPU count so the bot knows which instance to stop. It reads
# CONTAINER_API_KEY but never sends or logs it.
set -euo pipefail

: "${PROBECAST_URL:?set PROBECAST_URL in the template environment}"
: "${PROBECAST_INGEST_SECRET:?set PROBECAST_INGEST_SECRET in the template environment}"
: "${PROBECAST_TRAIN_CMD:?set PROBECAST_TRAIN_CMD to the training command}"
PROBECAST_PACKAGE="${PROBECAST_PACKAGE:-probecast}"   # or git+https://…/probecast.git
PROBECAST_VENV="${PROBECAST_VENV:-/opt/probecast}"
WORKDIR="${PROBECAST_WORKDIR:-/workspace}"
export PROBECAST_RUN="${PROBECAST_RUN:-${VAST_CONTAINERLABEL:-vast-${CONTAINER_ID:-run}}}"
# The spool lives on the instance's disk, so a reporter restarted after a crash resumes it.
export PROBECAST_SPOOL_DIR="${PROBECAST_SPOOL_DIR:-${WORKDIR}/.probecast}"

# The reporter's base install is small (httpx, pydantic, psutil, nvidia-ml-py); a venv
# keeps it from touching the image's Python packages.
if [ ! -x "${PROBECAST_VENV}/bin/probecast" ]; then
    python3 -m venv "${PROBECAST_VENV}"
    "${PROBECAST_VENV}/bin/pip" install --quiet --upgrade pip
    "${PROBECAST_VENV}/bin/pip" install --quiet "${PROBECAST_PACKAGE}"
fi

cd "${WORKDIR}"
mkdir -p "${PROBECAST_SPOOL_DIR}"
# The training command runs in the image's own Python, under the reporter; its output
# goes to the instance log as before, and to train.log in the work directory.
exec "${PROBECAST_VENV}/bin/probecast" run -- bash -c "${PROBECAST_TRAIN_CMD}" \
    > >(tee -a "${WORKDIR}/train.log") 2> >(tee -a "${WORKDIR}/train.log" >&2)
