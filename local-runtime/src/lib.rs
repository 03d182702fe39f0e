//! In-process open-model inference on ONNX Runtime.
