"""``kairos profile``: measure a running engine's step times and write a profile file."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from kairos.core.latency.profile import ModelSpec

EPILOG = """examples:
  # one plain vLLM instance (not a P/D pair), then:
  kairos profile --url http://127.0.0.1:8100 --model-path models/smollm2-135m \\
      --name smollm2-135m-cpu --out smollm2-135m-cpu.json
  kairos sim --profile smollm2-135m-cpu.json --trace azure-conv ...
  # then, with a P/D pair up (kairos serve --engine vllm), the KV hand-off it adds:
  kairos profile --url http://127.0.0.1:8000 --handoff smollm2-135m-cpu.json \
      --out smollm2-135m-cpu-pd.json
  kairos sim --profile smollm2-135m-cpu-pd.json --first-token decode ...
  # after serving with the Kairos plugins (--sched-log-dir runs/x/sched): the engine under load
  kairos profile --from-steps runs/x/sched/*.jsonl --base smollm2-135m-cpu-pd \
      --out smollm2-135m-cpu-pd-insitu.json
See docs/vllm.md."""

# Grids sized for a CPU engine (a 512-token prefill takes ~3 s on one AVX2 core); --quick
# halves them. On a GPU pass --max-batch-tokens and a larger --prefill-lengths if needed.
PREFILL_LENGTHS = (16, 64, 128, 256, 512)
PREFILL_BATCHES = (1, 2, 4)
DECODE_BATCHES = (1, 2, 4, 8, 16)
DECODE_LENGTHS = (32, 256)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "profile",
        help="measure a running engine's step times and fit a profile",
        description="Measure prefill batch times and decode step times of one running engine "
        "instance over its OpenAI API, fit the latency models, and write a profile JSON that "
        "kairos sim and the emulated engine accept (--profile FILE).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", help="the instance's base URL (not with --from-steps)")
    p.add_argument("--model", help="model name (default: the first GET /v1/models lists)")
    p.add_argument(
        "--model-path", type=Path, help="model folder: layers and KV heads from its config.json"
    )
    p.add_argument("--name", help="profile name (default: measured; with --from-steps, the base's)")
    p.add_argument("--hardware", default="CPU", help="hardware label (default: CPU)")
    p.add_argument("--out", type=Path, required=True, help="profile JSON to write")
    p.add_argument("--max-batch-tokens", type=int, default=2048, help="engine's token budget")
    p.add_argument("--max-batch-size", type=int, default=64, help="engine's max running requests")
    p.add_argument("--max-context", type=int, default=2048, help="engine's max model length")
    p.add_argument("--kv-capacity-tokens", type=int, help="default: from --kv-cache-gib")
    p.add_argument("--kv-cache-gib", type=float, default=1.0, help="KV cache size (default 1)")
    p.add_argument(
        "--dtype-bytes", type=int, default=2, help="bytes per KV element (2 bf16, 4 float32)"
    )
    p.add_argument("--kv-delta0", type=float, default=0.006, help="KV transfer fixed cost (s)")
    p.add_argument("--kv-bandwidth", type=float, default=2e9, help="KV transfer bytes/s")
    p.add_argument(
        "--handoff",
        metavar="PROFILE",
        help="--url is a P/D proxy: measure lone requests through it and write PROFILE with its "
        "KV transfer model replaced by the fitted hand-off (prefill instance to the decode "
        "instance's first token) and, where the proxy reports P legs, its prefill model refitted "
        "on them; use with kairos sim --first-token decode",
    )
    p.add_argument(
        "--from-steps",
        nargs="+",
        type=Path,
        metavar="LOG",
        help="measure nothing: refit the prefill and decode models of --base on the steps the "
        "Kairos vLLM plugins logged while serving (kairos serve --engine vllm --sched-log-dir), "
        "i.e. the engine as it ran under load, and write --out",
    )
    p.add_argument("--base", help="with --from-steps: the profile to refit (name or file)")
    p.add_argument("--decode-tokens", type=int, default=16, help="tokens per decode probe")
    p.add_argument("--repeat", type=int, default=2, help="repeats per point; the fastest counts")
    p.add_argument("--quick", action="store_true", help="a smaller grid (for tests)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _model_spec(path: Path | None, dtype_bytes: int) -> ModelSpec:
    if path is None:  # SmolLM2-135M (docs/vllm.md)
        return ModelSpec("SmolLM2-135M-Instruct", 30, 3, 64, dtype_bytes)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ValueError(f"{cfg_file} does not exist")
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    heads = int(cfg["num_attention_heads"])
    return ModelSpec(
        path.name,
        layers=int(cfg["num_hidden_layers"]),
        kv_heads=int(cfg.get("num_key_value_heads", heads)),
        head_dim=int(cfg.get("head_dim") or cfg["hidden_size"] // heads),
        dtype_bytes=dtype_bytes,
    )


async def _served_model(client: Any, args: argparse.Namespace) -> str:
    """``--model``, or the first model the engine lists."""
    if args.model:
        return str(args.model)
    reply = await client.get(args.url.rstrip("/") + "/v1/models")
    return str(reply.json()["data"][0]["id"])


def _write_profile(out: Path, doc: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    if args.from_steps:
        return _run_from_steps(args)
    if not args.url:
        raise ValueError("kairos profile needs --url (or --from-steps LOG... --base PROFILE)")
    if args.handoff:
        return _run_handoff(args)
    import httpx

    from kairos.profiling.build import EngineFacts, build
    from kairos.profiling.measure import DecodePoint, PrefillPoint, Prober

    model = _model_spec(args.model_path, args.dtype_bytes)
    capacity = args.kv_capacity_tokens or int(args.kv_cache_gib * 2**30 // model.kv_bytes_per_token)
    lengths = PREFILL_LENGTHS[::2] if args.quick else PREFILL_LENGTHS
    batches = DECODE_BATCHES[::2] if args.quick else DECODE_BATCHES
    contexts = DECODE_LENGTHS[:2] if args.quick else DECODE_LENGTHS

    async def measure() -> tuple[str, list[PrefillPoint], list[DecodePoint]]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(600.0)) as client:
            name = await _served_model(client, args)
            prober = Prober(args.url, name, seed=args.seed)
            await prober.prefill(client, [8])  # warm-up, not recorded
            prefill: list[PrefillPoint] = []
            for n in lengths:
                for b in PREFILL_BATCHES:
                    if n * b > args.max_batch_tokens:
                        continue
                    runs = [await prober.prefill(client, [n] * b) for _ in range(args.repeat)]
                    prefill.append(min(runs, key=lambda p: p.seconds))
                    print(f"prefill {b} x {n:5d} tokens: {prefill[-1].seconds * 1e3:8.1f} ms")
            decode: list[DecodePoint] = []
            for length in contexts:
                for b in batches:
                    if b * (length + args.decode_tokens) > capacity:
                        continue
                    point = await prober.decode(client, b, length, args.decode_tokens)
                    decode.append(point)
                    print(
                        f"decode batch {b:3d}, K {point.kv_tokens:6d}: "
                        f"{point.seconds * 1e3:7.1f} ms/step ({point.steps} gaps)"
                    )
            return name, prefill, decode

    served, prefill, decode = asyncio.run(measure())
    facts = EngineFacts(
        name=args.name or "measured",
        description=f"{model.name} on {args.hardware}, measured by kairos profile",
        model=model,
        hardware=args.hardware,
        kv_capacity_tokens=capacity,
        max_batch_tokens=args.max_batch_tokens,
        max_batch_size=args.max_batch_size,
        max_context_tokens=args.max_context,
        kv_delta0=args.kv_delta0,
        kv_bandwidth=args.kv_bandwidth,
    )
    source = {
        "measured_by": "kairos profile " + " ".join(sys.argv[2:]),
        "served_model": served,
        "grid": {"prefill_lengths": list(lengths), "decode_batches": list(batches)},
    }
    profile = build(facts, prefill, decode, source)
    _write_profile(args.out, profile)
    fe = profile["fit_error"]
    print(
        f"wrote {args.out}: prefill {profile['prefill']['coefficients']} "
        f"(MAPE {fe['prefill']['mape_fit']:.1%}), decode {profile['decode']['coefficients']} "
        f"(MAPE {fe['decode']['mape_fit']:.1%})"
    )
    return 0


HANDOFF_LENGTHS = (16, 32, 64, 128, 256, 384, 512, 768, 1024)


def _run_handoff(args: argparse.Namespace) -> int:
    import httpx

    from kairos.core.latency.profile import Profile
    from kairos.profiles import profile_json
    from kairos.profiling.build import fit_handoff
    from kairos.profiling.measure import HandoffPoint, Prober

    doc = profile_json(args.handoff)
    profile = Profile.from_dict(doc)
    grid = HANDOFF_LENGTHS[::2] if args.quick else HANDOFF_LENGTHS
    lengths = [n for n in grid if n < args.max_context]

    async def measure() -> list[HandoffPoint]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(600.0)) as client:
            prober = Prober(args.url, await _served_model(client, args), seed=args.seed)
            await prober.alone(client, 8)  # warm-up, not recorded
            points = []
            for n in lengths:
                runs = [await prober.alone(client, n) for _ in range(args.repeat)]
                points.append(min(runs, key=lambda p: p.seconds))
                print(f"alone through P/D, {n:5d} tokens: {points[-1].seconds * 1e3:8.1f} ms")
            return points

    points = asyncio.run(measure())
    fit = fit_handoff(profile, points)
    doc["kv_transfer"] = fit.kv_transfer
    fit_error = doc.setdefault("fit_error", {})
    fit_error["kv_transfer"] = fit.errors["kv_transfer"]
    if fit.prefill is not None:
        doc["prefill"]["coefficients"] = fit.prefill
        fit_error["prefill"] = fit.errors["prefill"]
    doc["description"] = doc.get("description", "") + "; P/D prefill and hand-off"
    doc.setdefault("source", {})["handoff_measured_by"] = "kairos profile " + " ".join(sys.argv[2:])
    _write_profile(args.out, doc)
    print(
        f"wrote {args.out}: hand-off {fit.kv_transfer} "
        f"(MAPE {fit.errors['kv_transfer']['mape_fit']:.1%}), P/D prefill "
        f"{fit.prefill or 'not refitted (no Server-Timing)'}"
    )
    return 0


def _run_from_steps(args: argparse.Namespace) -> int:
    from kairos.profiles import profile_json
    from kairos.profiling.insitu import read_steps, refit

    if not args.base:
        raise ValueError("--from-steps needs --base PROFILE: the profile whose models it refits")
    samples = read_steps(args.from_steps)
    logs = " ".join(map(str, args.from_steps))
    source = f"kairos profile --from-steps {logs} --base {args.base} --out {args.out}"
    doc = refit(profile_json(args.base), samples, source=source)
    if args.name:
        doc["name"] = args.name
    _write_profile(args.out, doc)
    fe = doc["fit_error"]
    print(
        f"wrote {args.out} from {len(samples.prefill)} prefill and {len(samples.decode)} decode "
        f"steps: prefill {doc['prefill']['coefficients']} "
        f"(MAPE {fe['prefill']['mape_fit']:.1%}, log-sd {fe['prefill'].get('log_sd', '-')}), "
        f"decode {doc['decode']['coefficients']} "
        f"(MAPE {fe['decode']['mape_fit']:.1%}, log-sd {fe['decode'].get('log_sd', '-')})"
        + (
            f", and each request joining a decode step adds {doc['decode']['join_seconds']} s "
            f"to it (mean over {fe['decode_join']['n']} admitting steps)"
            if "decode_join" in fe
            else ""
        )
    )
    return 0
