"""The dsc Python package against PyTorch's and transformers' committed
fixtures (tests/fixtures/, made by tools/export_torch.py and
tools/export_gpt2.py), and every bad input the command line refuses."""

import os
import subprocess
import threading

import numpy as np
import pytest

import dsc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SEED = os.path.join(ROOT, "models", "seed_encoder.lua")
GPT2 = os.path.join(ROOT, "models", "gpt2.lua")


def fixture(name):
    """(defines, weights path, directory) of tests/fixtures/NAME."""
    d = os.path.join(ROOT, "tests", "fixtures", name)
    words = open(os.path.join(d, "config")).read().split()
    defines = dict(w.split("=", 1) for w in words if w != "-D")
    return defines, os.path.join(d, "weights.safetensors"), d


def seed_model(name, **options):
    defines, weights, d = fixture(name)
    m = dsc.compile(SEED, defines=defines, weights=weights, threads=1,
                    **options)
    return m, np.load(os.path.join(d, "tokens.npy")), \
        np.load(os.path.join(d, "logits.npy"))


@pytest.mark.parametrize("name", ["seed_encoder_small", "seed_encoder_odd",
                                  "seed_encoder_one"])
def test_reproduces_pytorch(name):
    m, tokens, want = seed_model(name)
    out = m(tokens=tokens)
    assert list(out) == ["logits"]
    assert out["logits"].shape == want.shape
    assert out["logits"].dtype == np.float32
    assert np.abs(out["logits"] - want).max() <= 1e-4


def test_aot_and_disabled_passes_agree_with_pytorch():
    m, tokens, want = seed_model("seed_encoder_small", aot=True,
                                 disable=("fuse-qkv", "plan-memory"))
    assert np.abs(m(tokens=tokens)["logits"] - want).max() <= 1e-4


def test_weights_format_reaches_the_compiler():
    """weights_format= is -fweights: bf16 and q8 logits move off PyTorch's
    float32 ones by their rounding (measured on this fixture: 0.0039 and
    0.013 of logits up to 1.9), q8 (a step of max|w|/127 per block of 32)
    more than bf16 (8 significant bits), and stay close."""
    diff = {}
    for fmt in ("f32", "bf16", "q8"):
        m, tokens, want = seed_model("seed_encoder_small", weights_format=fmt)
        got = m(tokens=tokens)["logits"]
        diff[fmt] = np.abs(got - want).max()
        assert (got.argmax(-1) == want.argmax(-1)).all()
    assert diff["f32"] <= 1e-4
    assert 1e-3 < diff["bf16"] <= 0.01
    assert diff["bf16"] < diff["q8"] <= 0.03
    assert error_of(dsc.compile, SEED, weights_format="int4") == \
        "dsc: error: -fweights expects =f32, =bf16 or =q8, got " \
        "'-fweights=int4'"


def test_describes_inputs_and_outputs():
    m = dsc.compile(SEED, defines={"seq": 7, "batch": 3, "vocab": 50})
    assert m.inputs == [dsc.TensorInfo("tokens", (7, 3), np.dtype(np.int32),
                                       False)]
    assert m.outputs == [dsc.TensorInfo("logits", (7, 3, 50),
                                        np.dtype(np.float32), False)]
    assert not m.decoder
    assert dsc.version() == "0.1"


def test_inputs_in_numpy_layout_are_not_copied():
    m, tokens, want = seed_model("seed_encoder_small")
    fits = np.ascontiguousarray(tokens, dtype=np.int32)
    assert m._input(m.inputs[0], fits) is fits
    # Other layouts and dtypes are converted, with the same answer.
    fortran = np.asfortranarray(tokens.astype(np.int64))
    assert np.abs(m(tokens=fortran)["logits"] - want).max() <= 1e-4
    assert np.abs(m(tokens=tokens.tolist())["logits"] - want).max() <= 1e-4


def test_compile_string():
    m = dsc.compile_string("local x = dsc.input('x', {2, 3}, 'float32')\n"
                           "dsc.output('y', dsc.relu(x) + x)\n", name="t.lua")
    x = np.array([[-1, 0, 1], [2, -3, 4]], np.float64)
    np.testing.assert_array_equal(m(x=x)["y"], np.where(x > 0, 2 * x, x))


def error_of(fn, *args, **kwargs):
    with pytest.raises(dsc.Error) as e:
        fn(*args, **kwargs)
    return str(e.value)


def test_compile_errors_are_the_command_lines():
    _, weights, _ = fixture("seed_encoder_small")
    assert error_of(dsc.compile, SEED, defines={"colour": 1}).endswith(
        "unknown config key 'colour' (this model's keys: batch, d_ff, "
        "d_model, dropout, heads, layers, seq, vocab)")
    assert error_of(dsc.compile, "/no/such.lua").startswith("/no/such.lua")
    assert error_of(dsc.compile, SEED, weights="/no/w.safetensors") \
        .startswith("/no/w.safetensors: error:")
    assert "key 'embedding.weight' is F32 [37, 32] but the model expects " \
        "[1000, 256]" in error_of(dsc.compile, SEED, weights=weights)
    assert error_of(dsc.compile, SEED, threads=0) == \
        "dsc: error: --threads expects a whole number from 1 to 1024, got '0'"
    assert error_of(dsc.compile, SEED, disable=["speed"]) == \
        "dsc: error: unknown option '-fno-speed'"
    assert error_of(dsc.compile_string, "dsc.output('y', 1)\n",
                    name="bad.lua").startswith("bad.lua:1: error:")
    assert "d_model" in error_of(dsc.compile, SEED, defines={"d_model": "x"})
    assert error_of(dsc.compile, SEED, defines={"": 1}) == \
        "dsc: error: -D expects KEY=VALUE, got '=1'"
    assert error_of(dsc.compile, SEED, seed=-1) == \
        "dsc: error: --seed expects a non-negative integer, got '-1'"
    m = dsc.compile(SEED, defines={"layers": 1})
    assert "need a decoder" in error_of(m.generate, [1, 2], n=2)
    assert "need a decoder" in error_of(m.prefill, [1, 2])


def test_input_errors_are_the_command_lines():
    m, tokens, _ = seed_model("seed_encoder_small")
    assert error_of(m, tokens=tokens[:2]) == \
        "dsc: error: input 'tokens' is [2, 3] but the model expects [5, 3]"
    assert error_of(m, tokens=tokens.astype(np.float32)) == \
        "dsc: error: input 'tokens' must be int32 or int64, the array " \
        "holds float32"
    assert error_of(m, tokens=tokens, mask=tokens) == \
        "dsc: error: the model has no input named 'mask' (it has: tokens)"
    assert error_of(m) == \
        "dsc: error: input 'tokens' not given (the model takes: tokens)"
    bad = tokens.copy()
    bad[3, 1] = 37
    assert error_of(m, tokens=bad) == \
        "input: error: tokens[3, 1] = 37 is not a token id in [0, 37)"
    bad[3, 1] = 2**40  # beyond int32: never wraps into a valid id
    assert error_of(m, tokens=bad) == \
        "input: error: tokens[3, 1] = -1 is not a token id in [0, 37)"
    # The model still works after refusing.
    assert m(tokens=tokens)["logits"].shape == (5, 3, 37)


def gpt2():
    defines, weights, d = fixture("gpt2_small")
    m = dsc.compile(GPT2, defines=defines, weights=weights, threads=1)
    load = lambda n: np.load(os.path.join(d, n + ".npy"))
    return m, load("prompt"), load("prefill_logits"), \
        load("decode_logits"), load("greedy")


def test_decoder_matches_transformers():
    m, prompt, prefill, decode, greedy = gpt2()
    assert m.decoder and m.context_tokens == 40
    assert m.inputs[0].dynamic
    assert np.abs(m.prefill(prompt) - prefill).max() <= 1e-4
    for j in range(1, len(greedy)):
        assert np.abs(m.decode(greedy[j - 1]) - decode[j]).max() <= 1e-4
    np.testing.assert_array_equal(m.generate(prompt, n=len(greedy)), greedy)
    np.testing.assert_array_equal(
        dsc.generate(GPT2, prompt, n=len(greedy), defines=fixture(
            "gpt2_small")[0], weights=fixture("gpt2_small")[1]), greedy)
    a = m.generate(prompt, n=8, temperature=0.8, top_k=20, seed=3)
    assert (a == m.generate(prompt, n=8, temperature=0.8, top_k=20,
                            seed=3)).all()
    assert "exceed the model's context of 40" in \
        error_of(m.generate, prompt, n=40)
    assert "--top-p" in error_of(m.generate, prompt, n=4, top_p=2)
    assert "--temperature" in error_of(m.generate, prompt, n=4,
                                       temperature=-1)
    assert "--top-k" in error_of(m.generate, prompt, n=4, top_k=-1)
    assert error_of(m.prefill, [1, 83]) == \
        "prompt: error: tokens[1] = 83 is not a token id in [0, 83)"


def test_threads_share_a_model_with_sequential_results():
    m, tokens, _ = seed_model("seed_encoder_small")
    grids = [(tokens + k) % 37 for k in range(8)]
    sequential = [m(tokens=g)["logits"] for g in grids]
    results = [None] * len(grids)

    def work(k):
        for i in range(k, len(grids), 2):
            results[i] = m(tokens=grids[i])["logits"]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s, r in zip(sequential, results):
        np.testing.assert_array_equal(s, r)


def test_sampling_gives_the_command_lines_tokens():
    """Same weights, prompt and options: the same tokens as dsc generate."""
    exe = os.environ.get("DSC", os.path.join(ROOT, "build", "dsc"))
    m, prompt, _, _, _ = gpt2()
    defines, weights, _ = fixture("gpt2_small")
    words = [w for k, v in defines.items() for w in ("-D", "%s=%s" % (k, v))]
    cli = subprocess.run(
        [exe, "generate", GPT2, *words, "--weights", weights, "--prompt",
         ",".join(str(int(t)) for t in prompt), "-n", "12",
         "--temperature", "0.9", "--top-k", "30", "--top-p", "0.95",
         "--seed", "5"], capture_output=True, text=True, check=True)
    ours = m.generate(prompt, n=12, temperature=0.9, top_k=30, top_p=0.95,
                      seed=5)
    assert cli.stdout.strip() == ",".join(str(t) for t in ours)
