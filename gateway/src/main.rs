//! The `switchyard` command line: `serve` runs the gateway.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard::config::Config;
use switchyard::server;

#[derive(Parser)]
#[command(name = "switchyard", version, about = "Hybrid model-routing LLM gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// YAML config file; without one, providers come from OPENAI_* / ANTHROPIC_* env vars.
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (overrides the config file).
        #[arg(long, env = "SWITCHYARD_LISTEN")]
        listen: Option<String>,
    },
    /// Check a config file and print what it configures.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, listen } => serve(config, listen),
        Command::CheckConfig { config } => check_config(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load(&path)?,
        None => Config::from_env(),
    })
}

fn serve(config: Option<PathBuf>, listen: Option<String>) -> anyhow::Result<()> {
    let mut config = load_config(config)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let state = Arc::new(server::AppState::from_config(&config)?);
        for p in &config.providers {
            tracing::info!(provider = %p.name, kind = ?p.kind, base_url = %p.base_url(), models = ?p.models, "provider configured");
        }
        if config.providers.is_empty() {
            tracing::warn!("no providers configured: set OPENAI_API_KEY/OPENAI_BASE_URL or ANTHROPIC_API_KEY/ANTHROPIC_BASE_URL, or pass --config");
        }
        let listener = server::bind(&config.listen).await?;
        let addr = listener.local_addr()?;
        // Printed on stdout so scripts and tests can find a port chosen with :0.
        println!("switchyard listening on http://{addr}");
        server::serve_on(listener, state, shutdown_signal()).await?;
        tracing::info!("shut down cleanly");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    println!("{}: ok, listen {}, {} provider(s)", path.display(), config.listen, config.providers.len());
    for p in &config.providers {
        println!("  {} ({:?}) {} models={:?}", p.name, p.kind, p.base_url(), p.models);
    }
    Ok(())
}
