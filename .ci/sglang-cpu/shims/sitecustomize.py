"""CI-only shim (see ../README.md): PyPI's torchvision is a CUDA build whose compiled ops do
not load against CPU torch, and its import then fails registering fake kernels for
`torchvision::nms` and `torchvision::qnms`. Declaring the two schemas lets torchvision
import; sglang imports it but never calls them for a text model.
"""

try:
    import torch

    _LIBRARY = torch.library.Library("torchvision", "DEF")
    _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
except Exception:  # the real ops exist (a CPU torchvision build): nothing to declare
    pass
