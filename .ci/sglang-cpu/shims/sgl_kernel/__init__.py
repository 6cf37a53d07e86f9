"""CI-only shim (see ../../README.md): an import-only stand-in for sgl-kernel, which has no
CPU build on PyPI. sglang imports it at module level; the plain Qwen2 CPU serving path
(--device cpu --attention-backend torch_native) never calls it. Any call raises."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)

    def unavailable(*args, **kwargs):
        raise RuntimeError(f"sgl_kernel.{name} called: this CI shim has no kernels")

    return unavailable
