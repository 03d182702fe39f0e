//! Process-wide ONNX Runtime environment, loaded dynamically from a shared library.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;

use crate::config::{ExecutionProvider, RuntimeConfig};
use crate::error::RuntimeError;

static ENV: OnceLock<(PathBuf, Environment)> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Loads the ONNX Runtime library (once per process) and returns the environment.
/// A missing or broken library is an error, never a panic.
pub(crate) fn environment(rt: &RuntimeConfig) -> Result<Environment, RuntimeError> {
    let path = rt.resolved_ort_library();
    if let Some((loaded, env)) = ENV.get() {
        if *loaded != path {
            tracing::warn!(
                requested = %path.display(),
                loaded = %loaded.display(),
                "ONNX Runtime is already loaded from another path; keeping it"
            );
        }
        return Ok(env.clone());
    }
    let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, env)) = ENV.get() {
        return Ok(env.clone());
    }
    if !path.is_file() {
        return Err(RuntimeError::LibraryLoad {
            path,
            reason: "file not found".into(),
        });
    }
    let builder = ort::init_from(&path).map_err(|e| RuntimeError::LibraryLoad {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let env = builder
        .with_name("switchyard")
        .build()
        .map_err(|e| RuntimeError::LibraryLoad {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    tracing::info!(library = %path.display(), "ONNX Runtime loaded");
    let _ = ENV.set((path, env.clone()));
    Ok(env)
}

fn base_builder(env: &Environment, threads: usize) -> Result<SessionBuilder, RuntimeError> {
    Session::builder(env)
        .map_err(RuntimeError::ort)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(RuntimeError::ort)?
        .with_intra_threads(threads)
        .map_err(RuntimeError::ort)?
        .with_inter_threads(1)
        .map_err(RuntimeError::ort)
}

/// Creates a session on the first usable execution provider of `eps`; returns it with the
/// provider's name ("cuda" or "cpu").
pub(crate) fn create_session(
    env: &Environment,
    model: &Path,
    eps: &[ExecutionProvider],
    threads: usize,
) -> Result<(Session, &'static str), RuntimeError> {
    for ep in eps {
        match ep {
            ExecutionProvider::Cuda => match try_cuda(env, model, threads) {
                Ok(s) => return Ok((s, "cuda")),
                Err(reason) => tracing::warn!(
                    model = %model.display(),
                    %reason,
                    "CUDA execution provider unavailable, falling back to CPU"
                ),
            },
            ExecutionProvider::Cpu => break,
        }
    }
    let session = base_builder(env, threads)?
        .commit_from_file(model)
        .map_err(|e| RuntimeError::InvalidModel {
            path: model.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok((session, "cpu"))
}

#[cfg(feature = "cuda")]
fn try_cuda(env: &Environment, model: &Path, threads: usize) -> Result<Session, String> {
    use ort::ep::ExecutionProvider as _;
    let cuda = ort::ep::CUDA::default();
    match ort::ep::CUDA::is_available() {
        Ok(true) => {}
        Ok(false) => {
            return Err(
                "this ONNX Runtime library has no CUDA provider (use onnxruntime-gpu's library)"
                    .into(),
            )
        }
        Err(e) => return Err(e.to_string()),
    }
    base_builder(env, threads)
        .map_err(|e| e.to_string())?
        .with_execution_providers([cuda.build().error_on_failure()])
        .map_err(|e| e.to_string())?
        .commit_from_file(model)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn try_cuda(_env: &Environment, _model: &Path, _threads: usize) -> Result<Session, String> {
    Err("switchyard-local-runtime was built without the `cuda` feature".into())
}
