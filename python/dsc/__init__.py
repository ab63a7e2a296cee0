"""dsc for Python: compile a Lua model description and run it on NumPy arrays.

    import dsc, numpy as np
    m = dsc.compile("models/seed_encoder.lua", defines={"d_model": 64},
                    weights="w.safetensors", threads=1)
    out = m(tokens=np.zeros((16, 20), np.int32))   # {"logits": array}

A thin ctypes layer over libdsc.so (the C API of compiler/api/dsc.h).
Errors raise dsc.Error with the message the dsc command line prints.
"""

import ctypes
import ctypes.util
import os
import threading
from collections import namedtuple

import numpy as np

__all__ = ["Error", "Model", "TensorInfo", "compile", "compile_string",
           "generate", "version"]


class Error(Exception):
    """A failure, with the line dsc would print ("m.lua:12: error: ...")."""


TensorInfo = namedtuple("TensorInfo", "name shape dtype dynamic")
TensorInfo.__doc__ = ("An input or output: its name, shape (a tuple), NumPy "
                      "dtype, and whether dimension 0 is a decoder's "
                      "runtime token count.")

_ERROR_SIZE = 1024
_MAX_RANK = 8


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int),
                ("rank", ctypes.c_int),
                ("shape", ctypes.c_int64 * _MAX_RANK),
                ("dynamic", ctypes.c_int)]


def _library_candidates():
    """Where libdsc.so may be, most specific first."""
    env = os.environ.get("DSC_LIBRARY")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "libdsc.so.0")          # put there by pip
    yield os.path.join(here, "..", "..", "build", "libdsc.so")  # a checkout
    found = ctypes.util.find_library("dsc")           # make install
    if found:
        yield found
    yield "libdsc.so.0"


def _load_library():
    tried = []
    for path in _library_candidates():
        if os.sep in path and not os.path.exists(path):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        return _declare(lib)
    raise ImportError("dsc: cannot find libdsc.so; build it with `make` in "
                      "dsc's checkout, install it with `make install`, or "
                      "set DSC_LIBRARY.  Tried: " + "; ".join(tried))


def _declare(lib):
    P, I, I64, S = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_char_p
    words = ctypes.POINTER(ctypes.c_char_p)
    info = ctypes.POINTER(_TensorInfo)
    sigs = {
        "dsc_version": (S, []),
        "dsc_compile_file": (P, [S, words, ctypes.c_char_p, ctypes.c_size_t]),
        "dsc_compile_string": (P, [S, S, words, ctypes.c_char_p,
                                   ctypes.c_size_t]),
        "dsc_model_free": (None, [P]),
        "dsc_input_count": (I, [P]),
        "dsc_output_count": (I, [P]),
        "dsc_input": (info, [P, I]),
        "dsc_output": (info, [P, I]),
        "dsc_is_decoder": (I, [P, ctypes.POINTER(I64)]),
        "dsc_model_notes": (S, [P]),
        "dsc_context_new": (P, [P, ctypes.c_char_p, ctypes.c_size_t]),
        "dsc_context_free": (None, [P]),
        "dsc_run": (I, [P, ctypes.POINTER(P), ctypes.POINTER(P)]),
        "dsc_prefill": (I, [P, P, I64, P]),
        "dsc_decode": (I, [P, ctypes.c_int32, P]),
        "dsc_position": (I64, [P]),
        "dsc_generate": (I, [P, P, I64, I64, words, P]),
        "dsc_context_error": (S, [P]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


_lib = _load_library()


def version():
    """dsc's version, "0.1"."""
    return _lib.dsc_version().decode()


def _words(items):
    """A NULL-terminated char ** (and the bytes it points at, to keep)."""
    data = [str(w).encode() for w in items]
    arr = (ctypes.c_char_p * (len(data) + 1))(*data, None)
    return arr


def _options(defines, weights, threads, aot, seed, disable,
             weights_format=None):
    words = []
    for key, value in (defines or {}).items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        words += ["-D", "%s=%s" % (key, value)]
    if weights is not None:
        words += ["--weights", os.fspath(weights)]
    if threads is not None:
        words += ["--threads", threads]
    if aot:
        words.append("--aot")
    if seed:
        words += ["--seed", seed]
    for name in disable or ():
        words.append("-fno-" + name)
    if weights_format is not None:
        words.append("-fweights=%s" % weights_format)
    return words


class _Handle:
    """Owns a dsc_model; freed when the last Model or context lets go."""

    def __init__(self, ptr):
        self.ptr = ptr

    def __del__(self):
        if self.ptr:
            _lib.dsc_model_free(self.ptr)
            self.ptr = None


class _Context:
    """Owns a dsc_context: one per thread that calls a model."""

    def __init__(self, handle):
        err = ctypes.create_string_buffer(_ERROR_SIZE)
        self.handle = handle  # the model outlives its contexts
        self.ptr = _lib.dsc_context_new(handle.ptr, err, _ERROR_SIZE)
        if not self.ptr:
            raise Error(err.value.decode())

    def check(self, status):
        if status != 0:
            raise Error(_lib.dsc_context_error(self.ptr).decode())

    def __del__(self):
        if getattr(self, "ptr", None):
            _lib.dsc_context_free(self.ptr)
            self.ptr = None


def _info(p):
    t = p.contents
    return TensorInfo(t.name.decode(), tuple(t.shape[:t.rank]),
                      np.dtype(np.int32 if t.dtype == 1 else np.float32),
                      bool(t.dynamic))


def _shape_str(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


class Model:
    """A compiled model.  Call it with its inputs as keyword arguments.

    Calls from several threads run at the same time, each thread through
    its own context (arena, worker threads, KV cache)."""

    def __init__(self, ptr, path):
        self._handle = _Handle(ptr)
        self.path = path
        self.inputs = [_info(_lib.dsc_input(ptr, i))
                       for i in range(_lib.dsc_input_count(ptr))]
        self.outputs = [_info(_lib.dsc_output(ptr, i))
                        for i in range(_lib.dsc_output_count(ptr))]
        context = ctypes.c_int64(0)
        self.decoder = bool(_lib.dsc_is_decoder(ptr, ctypes.byref(context)))
        self.context_tokens = context.value if self.decoder else None
        self.notes = _lib.dsc_model_notes(ptr).decode()
        self._local = threading.local()

    def __repr__(self):
        return "<dsc.Model %s: %s -> %s>" % (
            self.path,
            ", ".join("%s%s" % (t.name, _shape_str(t.shape)) for t in self.inputs),
            ", ".join("%s%s" % (t.name, _shape_str(t.shape)) for t in self.outputs))

    def _context(self):
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = _Context(self._handle)
        return ctx

    def _input(self, info, value):
        """value as a C-order array of info's dtype: the caller's own
        memory when it already is one, else a converted copy."""
        a = np.asarray(value)
        if info.dtype == np.int32:
            if a.dtype.kind not in "iu":
                raise Error("dsc: error: input '%s' must be int32 or int64, "
                            "the array holds %s" % (info.name, a.dtype))
            if a.dtype != np.int32:
                # Ids beyond int32 become -1: reported as bad tokens.
                big = (a < -2**31) | (a > 2**31 - 1)
                a = np.where(big, -1, a).astype(np.int32)
        else:
            if a.dtype.kind != "f":
                raise Error("dsc: error: input '%s' must be float32 or "
                            "float64, the array holds %s" % (info.name, a.dtype))
            a = a.astype(np.float32, copy=False)
        if a.shape != info.shape:
            raise Error("dsc: error: input '%s' is %s but the model expects %s"
                        % (info.name, _shape_str(a.shape),
                           _shape_str(info.shape)))
        return np.ascontiguousarray(a)

    def __call__(self, **inputs):
        """Run once; returns {output name: NumPy array}."""
        names = [t.name for t in self.inputs]
        for name in inputs:
            if name not in names:
                raise Error("dsc: error: the model has no input named '%s' "
                            "(it has: %s)" % (name, " ".join(names)))
        for name in names:
            if name not in inputs:
                raise Error("dsc: error: input '%s' not given (the model "
                            "takes: %s)" % (name, " ".join(names)))
        arrays = [self._input(t, inputs[t.name]) for t in self.inputs]
        outs = {t.name: np.empty(t.shape, t.dtype) for t in self.outputs}
        ins = (ctypes.c_void_p * max(len(arrays), 1))(
            *[a.ctypes.data for a in arrays])
        res = (ctypes.c_void_p * max(len(outs), 1))(
            *[o.ctypes.data for o in outs.values()])
        ctx = self._context()
        ctx.check(_lib.dsc_run(ctx.ptr, ins, res))
        return outs

    # ---- decoders -------------------------------------------------------

    def _vocab(self):
        return self.outputs[0].shape[-1]

    def prefill(self, tokens):
        """Start a sequence with tokens; the last token's logits."""
        ids = np.ascontiguousarray(np.asarray(tokens).reshape(-1),
                                   dtype=np.int32)
        logits = np.empty(self._vocab(), np.float32)
        ctx = self._context()
        ctx.check(_lib.dsc_prefill(ctx.ptr, ids.ctypes.data, ids.size,
                                   logits.ctypes.data))
        return logits

    def decode(self, token):
        """Append one token to the sequence; its logits."""
        logits = np.empty(self._vocab(), np.float32)
        ctx = self._context()
        ctx.check(_lib.dsc_decode(ctx.ptr, int(token), logits.ctypes.data))
        return logits

    def generate(self, prompt, n=32, temperature=0.0, top_k=0, top_p=1.0,
                 seed=0):
        """Continue prompt by n tokens, greedy or sampled, exactly as
        `dsc generate` does for the same options."""
        ids = np.ascontiguousarray(np.asarray(prompt).reshape(-1),
                                   dtype=np.int32)
        out = np.zeros(n, np.int32)
        words = _words(["--temperature", repr(float(temperature)),
                        "--top-k", int(top_k), "--top-p", repr(float(top_p)),
                        "--seed", int(seed)])
        ctx = self._context()
        ctx.check(_lib.dsc_generate(ctx.ptr, ids.ctypes.data, ids.size, n,
                                    words, out.ctypes.data))
        return out


def compile(path, defines=None, weights=None, threads=None, aot=False,
            seed=0, disable=(), weights_format=None):
    """Compile the model file at path.

    defines: {key: value} overriding the model's dsc.config defaults (-D);
    weights: a safetensors file (else random weights from seed);
    threads: the kernels' threads per call (None: one per core);
    aot: build with the system C compiler instead of libtcc;
    disable: passes to switch off ("fuse-qkv", "fuse-epilogue", "dce",
    "plan-memory");
    weights_format: "f32" (None: the default), "bf16" or "q8", how the
    linear layers' weights are stored (-fweights)."""
    path = os.fspath(path)
    err = ctypes.create_string_buffer(_ERROR_SIZE)
    words = _words(_options(defines, weights, threads, aot, seed, disable,
                            weights_format))
    ptr = _lib.dsc_compile_file(path.encode(), words, err, _ERROR_SIZE)
    if not ptr:
        raise Error(err.value.decode())
    return Model(ptr, path)


def compile_string(text, name="model.lua", defines=None, weights=None,
                   threads=None, aot=False, seed=0, disable=(),
                   weights_format=None):
    """compile() for model text in memory; name stands for the file in
    messages and names the generated code."""
    err = ctypes.create_string_buffer(_ERROR_SIZE)
    words = _words(_options(defines, weights, threads, aot, seed, disable,
                            weights_format))
    ptr = _lib.dsc_compile_string(name.encode(), text.encode(), words, err,
                                  _ERROR_SIZE)
    if not ptr:
        raise Error(err.value.decode())
    return Model(ptr, name)


def generate(model, prompt, n=32, temperature=0.0, top_k=0, top_p=1.0,
             seed=0, **compile_options):
    """Continue prompt (token ids) by n tokens with a decoder: a Model, or
    a model file compiled with compile_options (defines, weights, ...).
    Returns the new ids as an int32 array."""
    if not isinstance(model, Model):
        model = compile(model, **compile_options)
    return model.generate(prompt, n, temperature, top_k, top_p, seed)
