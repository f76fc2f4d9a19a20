"""`devices`: list audio input/output devices and compute devices."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import SonoscopeError
from . import EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list audio input/output devices and compute devices",
                       description="List the audio devices PortAudio sees (the default ones are marked "
                                   "with *) and the compute devices models can run on.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--audio-only", action="store_true", help="skip compute devices (no torch import)")
    p.set_defaults(func=cmd_devices)


def _compute() -> tuple[list[dict], str]:
    try:
        from .. import compute
    except ImportError:
        return [], ""
    try:
        return [{"name": d.name, "description": d.description, "memory_gb": d.memory_gb}
                for d in compute.available()], ""
    except ImportError as e:
        return [], f"PyTorch is not importable ({e})"
    except SonoscopeError as e:
        return [], str(e)


def cmd_devices(args: argparse.Namespace) -> int:
    from ..audio import devices as audio_devices

    audio_error = ""
    try:
        devs = audio_devices.list_devices()
        avail = audio_devices.availability()
    except SonoscopeError as e:
        devs, avail, audio_error = [], None, str(e)
    compute, compute_error = ([], "") if args.audio_only else _compute()
    if args.json:
        out = {"audio": [d.__dict__ for d in devs], "audio_error": audio_error,
               "input_ok": bool(avail and avail.input_ok), "output_ok": bool(avail and avail.output_ok),
               "input_reason": avail.input_reason if avail else audio_error,
               "output_reason": avail.output_reason if avail else audio_error,
               "compute": compute, "compute_error": compute_error}
        print(json.dumps(out, indent=1))
        return EXIT_OK
    for kind in ("input", "output"):
        print(f"Audio {kind} devices:")
        found = [d for d in devs if getattr(d, f"is_{kind}")]
        for d in found:
            mark = "*" if getattr(d, f"is_default_{kind}") else " "
            print(f" {mark} [{d.index}] {d.name} ({d.hostapi}, {getattr(d, f'max_{kind}_channels')} ch, "
                  f"{d.default_samplerate:g} Hz)")
        if not found:
            print(f"   none: {audio_error or (getattr(avail, f'{kind}_reason') if avail else '')}")
    if not args.audio_only:
        print("Compute devices:")
        for c in compute:
            mem = f", {c['memory_gb']} GB" if c.get("memory_gb") else ""
            print(f"   {c['name']}: {c['description']}{mem}")
        if compute_error:
            print(f"   {compute_error}")
        elif compute and not any(c["name"] != "cpu" for c in compute):
            print("   (no GPU found: models run on the CPU)")
    sys.stdout.flush()
    return EXIT_OK
