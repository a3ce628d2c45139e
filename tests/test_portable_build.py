"""The embedded model's llama.cpp build keeps its promise: a fixed x86-64 baseline (AVX2, FMA,
F16C), nothing the build machine happened to have (AVX-512, AMX, AVX-VNNI).

CI runs on one machine, so a green run there says nothing about other CPUs; what can be
checked anywhere is the machine code itself. A native build made on an AVX-512/AMX machine
uses zmm registers, opmask registers and tile instructions: such a wheel fails here.
"""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import llama_cpp
import pytest

LIBRARIES = ("libggml-cpu.so", "libggml-base.so", "libllama.so")
BEYOND_BASELINE = {
    "AVX-512 registers": re.compile(r"%zmm\d"),
    "AVX-512 opmask registers": re.compile(r"%k[0-7]\b"),
    "AMX tile instructions": re.compile(r"\b(ldtilecfg|tileloadd|tdpb\w+|tilestored)\b"),
    "AVX-VNNI instructions": re.compile(r"\bvpdpbu?s[dw]s?\b"),
}


def _disassembly(name: str) -> str:
    library = Path(llama_cpp.__file__).parent / "lib" / name
    assert library.is_file(), f"{library} is missing"
    return subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
@pytest.mark.parametrize("name", LIBRARIES)
def test_the_llama_libraries_use_no_instruction_beyond_the_avx2_baseline(name: str) -> None:
    code = _disassembly(name)
    found = {what: len(pattern.findall(code)) for what, pattern in BEYOND_BASELINE.items()}
    assert not any(found.values()), f"{name} was built for a specific CPU: {found}"


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_the_cpu_kernels_do_use_avx2() -> None:
    assert len(re.findall(r"%ymm\d", _disassembly("libggml-cpu.so"))) > 1000  # not a slow SSE-only build


def test_the_venv_records_the_build_flags_of_its_llama_wheel() -> None:
    record = Path(llama_cpp.__file__).resolve().parents[4] / "llama-cpp-build.txt"  # .venv/llama-cpp-build.txt
    if not record.exists():
        pytest.skip(f"{record} missing: llama-cpp-python was not installed by the Makefile")
    flags = record.read_text()
    assert "-DGGML_NATIVE=OFF" in flags and "-DGGML_AVX2=ON" in flags


@pytest.mark.slow
def test_the_running_server_reports_the_baseline_features(embedded_model_url: str) -> None:
    port = embedded_model_url.rsplit(":", 1)[1].split("/")[0]
    log = (Path(tempfile.gettempdir()) / f"harness-llama-{port}.log").read_text()
    features = next(line for line in log.splitlines() if line.startswith("CPU :"))
    assert "AVX2 = 1" in features and "AVX512" not in features and "AMX" not in features
