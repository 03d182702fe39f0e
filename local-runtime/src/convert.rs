//! `switchyard models add`: convert a GGUF file into a model directory the runtime serves.
//!
//! The converter is the project's Python script (`scripts/convert/`, numpy + `gguf` + `onnx`),
//! embedded in the binary so an installed gateway needs no checkout: its files are written
//! once into the cache (by content hash) and run with the converter venv that
//! `scripts/setup-models.sh` prepares. Progress lines go to the caller as they come.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::RuntimeError;

const SCRIPTS: &[(&str, &str)] = &[
    (
        "gguf_llama_to_onnx.py",
        include_str!("../../scripts/convert/gguf_llama_to_onnx.py"),
    ),
    (
        "gguf_quant.py",
        include_str!("../../scripts/convert/gguf_quant.py"),
    ),
    (
        "gguf_tokenizer.py",
        include_str!("../../scripts/convert/gguf_tokenizer.py"),
    ),
];

/// Activation precision of the quantized matmuls (see docs/local-runtime.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activations {
    /// int8, as llama.cpp computes: about twice as fast (the default).
    Int8,
    /// fp32: the fully dequantized model's results.
    Fp32,
}

impl Activations {
    fn flag(self) -> &'static str {
        match self {
            Activations::Int8 => "int8",
            Activations::Fp32 => "fp32",
        }
    }
}

/// What to convert and where.
#[derive(Debug, Clone)]
pub struct ConvertRequest {
    pub gguf: PathBuf,
    pub out: PathBuf,
    pub activations: Activations,
    /// Replace an existing directory.
    pub force: bool,
}

/// The Python interpreter that runs the converter: `$SWITCHYARD_CONVERT_PYTHON`, else the
/// venv `scripts/setup-models.sh` creates in the cache.
pub fn converter_python(cache: &Path) -> PathBuf {
    std::env::var_os("SWITCHYARD_CONVERT_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("venv-convert").join("bin").join("python"))
}

fn install_scripts(cache: &Path) -> Result<PathBuf, RuntimeError> {
    use std::hash::{Hash, Hasher};
    // Only names a cache directory per script version (not a security boundary).
    let mut h = std::collections::hash_map::DefaultHasher::new();
    SCRIPTS.hash(&mut h);
    let dir = cache.join("converter").join(format!("{:016x}", h.finish()));
    let io = |e: std::io::Error| RuntimeError::Convert(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    for (name, text) in SCRIPTS {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(*text) {
            std::fs::write(&path, text).map_err(io)?;
        }
    }
    Ok(dir)
}

/// Converts `req.gguf` into `req.out` (written to a sibling temporary directory and renamed
/// at the end, so a failed conversion leaves nothing half-written). `progress` receives the
/// converter's lines. Errors carry the converter's own one-line reason (unsupported
/// architecture or tensor type, truncated file, …).
pub fn convert_gguf(
    cache: &Path,
    req: &ConvertRequest,
    mut progress: impl FnMut(&str),
) -> Result<(), RuntimeError> {
    if !req.gguf.is_file() {
        return Err(RuntimeError::Convert(format!(
            "{}: no such file",
            req.gguf.display()
        )));
    }
    if req.out.exists() && !req.force {
        return Err(RuntimeError::Convert(format!(
            "{} exists (pass --force to replace it)",
            req.out.display()
        )));
    }
    let python = converter_python(cache);
    if !python.is_file() {
        return Err(RuntimeError::Convert(format!(
            "converter Python {} is missing: run scripts/setup-models.sh (it creates the \
             converter venv) or set SWITCHYARD_CONVERT_PYTHON to a Python with gguf, numpy and onnx",
            python.display()
        )));
    }
    let scripts = install_scripts(cache)?;
    let name = req
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let tmp = req.out.with_file_name(format!(".{name}.converting"));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut child = Command::new(&python)
        .arg(scripts.join("gguf_llama_to_onnx.py"))
        .arg("--gguf")
        .arg(&req.gguf)
        .arg("--out")
        .arg(&tmp)
        .args(["--activations", req.activations.flag()])
        .arg("--source-id")
        .arg(format!("switchyard models add {}", req.gguf.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RuntimeError::Convert(format!("cannot run {}: {e}", python.display())))?;
    let mut last_error = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(reason) = line.strip_prefix("[convert] error: ") {
                last_error = Some(reason.to_string());
            }
            progress(&line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| RuntimeError::Convert(format!("converter: {e}")))?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(RuntimeError::Convert(last_error.unwrap_or_else(|| {
            format!("the converter exited with {status} (its output is above)")
        })));
    }
    if req.out.exists() {
        std::fs::remove_dir_all(&req.out)
            .map_err(|e| RuntimeError::Convert(format!("{}: {e}", req.out.display())))?;
    }
    std::fs::rename(&tmp, &req.out)
        .map_err(|e| RuntimeError::Convert(format!("{}: {e}", req.out.display())))?;
    Ok(())
}
