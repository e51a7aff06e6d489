"""GGUF <-> transformers, so that the embedded model can be fine-tuned and served again.

    python -m train.gguf to-hf MODEL_OR_GGUF OUT_DIR          # dequantized safetensors + tokenizer
    python -m train.gguf to-gguf HF_DIR OUT.gguf [--quant q8_0|f16|q4_1...]
    python -m train.gguf fetch-converter [--sdist FILE]      # once per machine (scripts/setup does it)

to-hf: transformers reads GGUF (the `gguf` package) and dequantizes it; the loaded model is marked
as GGUF-quantized and refuses to save, so its weights are copied into a plain model of the same config.
to-gguf: llama.cpp's own converter (convert_hf_to_gguf.py) writes f16, then llama.cpp's quantizer
(`llama_model_quantize`, through llama-cpp-python) writes the type asked for. The converter is not in
the llama-cpp-python wheel: it comes from the sdist of the installed version, the same llama.cpp that
serves the result, kept under $REPAIR_AGENT_HOME/llama.cpp-convert/VERSION/.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from repair_agent.llm.model_files import home, resolve_gguf

CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion", "gguf-py", "LICENSE")
QUANT_TYPES = {"f16": "MOSTLY_F16", "q8_0": "MOSTLY_Q8_0", "q4_1": "MOSTLY_Q4_1", "q4_k_m": "MOSTLY_Q4_K_M"}


def llama_cpp_version() -> str:
    from importlib.metadata import version

    return version("llama_cpp_python")


def converter_dir() -> Path:
    return home() / "llama.cpp-convert" / llama_cpp_version()


def converter() -> Path:
    script = converter_dir() / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise SystemExit(f"llama.cpp's converter is not at {script}: run `python -m train.gguf fetch-converter`")
    return script


def fetch_converter(sdist: str | Path | None = None) -> Path:
    """Take llama.cpp's converter out of the llama-cpp-python sdist of the installed version
    (downloaded from the package index unless `sdist` names the file)."""
    dest = converter_dir()
    if (dest / "convert_hf_to_gguf.py").is_file():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            f"llama-cpp-python=={llama_cpp_version()}", "-d", tmp], check=True)
            sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        staged = Path(tmp) / "staged"
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers()
                       if (rel := vendored(m.name)) and rel.split("/")[0] in CONVERTER_PARTS]
            for m in members:
                m.name = vendored(m.name)
            tar.extractall(staged, members=members, filter="data")
        if not (staged / "convert_hf_to_gguf.py").is_file():
            raise SystemExit(f"{sdist}: no vendor/llama.cpp/convert_hf_to_gguf.py in it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), dest)
    return dest


def vendored(name: str) -> str:
    """'llama_cpp_python-X/vendor/llama.cpp/REST' -> 'REST'; '' for anything else."""
    parts = name.split("/")
    return "/".join(parts[3:]) if parts[1:3] == ["vendor", "llama.cpp"] else ""


def to_hf(model: str | Path, out: str | Path) -> Path:
    """A registry name or GGUF file -> a transformers checkpoint (float32 safetensors + tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, out = resolve_gguf(model), Path(out)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def to_gguf(checkpoint: str | Path, out: str | Path, quant: str = "q8_0") -> Path:
    """A transformers checkpoint -> a GGUF file of type `quant`, written by llama.cpp's own tools."""
    import ctypes

    import llama_cpp

    if quant not in QUANT_TYPES:
        raise SystemExit(f"unknown --quant {quant!r}; one of {', '.join(QUANT_TYPES)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    f16 = out if quant == "f16" else out.with_name(out.name + ".f16.tmp")
    subprocess.run([sys.executable, str(converter()), str(checkpoint), "--outfile", str(f16), "--outtype", "f16"],
                   check=True, stdout=subprocess.DEVNULL)
    if quant != "f16":
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{QUANT_TYPES[quant]}")
        rc = llama_cpp.llama_model_quantize(str(f16).encode(), str(out).encode(), ctypes.byref(params))
        f16.unlink()
        if rc != 0:
            raise SystemExit(f"llama.cpp's quantizer failed ({rc}) on {checkpoint}")
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="python -m train.gguf", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("to-hf", help="a GGUF model -> a transformers checkpoint")
    a.add_argument("model", help="a registry name (repair-agent models list) or a GGUF file")
    a.add_argument("out")
    b = sub.add_parser("to-gguf", help="a transformers checkpoint -> GGUF")
    b.add_argument("checkpoint")
    b.add_argument("out")
    b.add_argument("--quant", default="q8_0", choices=sorted(QUANT_TYPES))
    c = sub.add_parser("fetch-converter", help="llama.cpp's converter, from the llama-cpp-python sdist")
    c.add_argument("--sdist", default=None, help="a llama_cpp_python-VERSION.tar.gz already here")
    args = p.parse_args(argv)
    if args.command == "to-hf":
        done = to_hf(args.model, args.out)
    elif args.command == "to-gguf":
        done = to_gguf(args.checkpoint, args.out, args.quant)
    else:
        done = fetch_converter(args.sdist)
    print(done)
    return done


if __name__ == "__main__":
    main(sys.argv[1:])
