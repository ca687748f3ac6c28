"""Qt-free inference package (see ARCHITECTURE.md).

- :mod:`.model_card`, :mod:`.network`: the shared contracts (model folders, the export head).
- :mod:`.backend`: the ``Backend`` protocol and ``open_backend`` (``auto`` picks TensorRT, ONNX
  Runtime CUDA, torch CUDA, then the CPU); :mod:`.torch_backend`, :mod:`.onnx_backend`,
  :mod:`.tensorrt_backend` implement it; :mod:`.engine_cache` caches TensorRT plans.
- :mod:`.sliding`: MONAI-compatible sliding windows accumulated on the device;
  :mod:`.pipeline`: ``segment(volume, card, backend) -> SegmentationResult``.
- :mod:`.worker`: ``InferenceWorker``, segmentation in a child process.
- :mod:`.models`, :mod:`.export`, :mod:`.calibration`, :mod:`.commands`: finding models,
  writing model folders, INT8 calibration data, and ``medseg segment`` / ``build-engine``.
"""
