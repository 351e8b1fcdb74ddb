#!/usr/bin/env bash
# Start or resume the study queue (scripts/study_queue.txt) in the background; the log is runs/queue.log.
#   bash scripts/study_queue.sh                     # data from $TFDISC_DATA_DIR, else ../shared/data
#   bash scripts/study_queue.sh --report=/tmp/R.md  # extra flags go to scripts/reproduce_paper.py
# Stop it with: kill <pid> (printed below); the next start resumes the interrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p runs
nohup "$PYTHON" scripts/reproduce_paper.py --queue=scripts/study_queue.txt \
    --data_dir="${TFDISC_DATA_DIR:-../shared/data}" "$@" >> runs/queue.log 2>&1 &
echo "study queue started (pid $!); follow it with: tail -f runs/queue.log"
