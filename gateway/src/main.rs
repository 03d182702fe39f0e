//! The `switchyard` command line: `serve` runs the gateway.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard::config::Config;
use switchyard::server;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Hybrid model-routing LLM gateway"
)]
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
    /// Classify prompts: JSONL `{"id","prompt"}` or `{"id","messages"}` on stdin, one
    /// result per line on stdout.
    Classify {
        /// Policy directory whose `classifier:` rules (org detectors, terms, allow-list) apply.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Gateway config whose `classifier.ner` settings apply (model file, thresholds).
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        /// Override `classifier.ner.mode`: `off` shows the rules alone; any other mode
        /// runs the model on every line that passes its gate.
        #[arg(long)]
        ner: Option<String>,
        /// Override `classifier.sentence_head.mode`: `off` leaves it out; any other mode
        /// runs it on every line.
        #[arg(long)]
        head: Option<String>,
    },
    /// Policy tools: check, test, explain.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Virtual keys: create, list, revoke, rotate (the same store the gateway uses).
    Keys {
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: KeysCli,
    },
    /// Scoped admin tokens for automation: a role and an expiry (stored hashed).
    Tokens {
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: TokensCli,
    },
    /// The audit trail: verify its hash chain, export it as JSON Lines.
    Audit {
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: AuditCli,
    },
    /// Spend report from the ledger: actual, counterfactual and savings.
    Report {
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        /// team, key, model, route or day
        #[arg(long, default_value = "team")]
        group_by: String,
        /// RFC 3339 or unix seconds
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// table or csv
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Local models: convert a GGUF file into the cache (`add`), list what the cache holds.
    Models {
        #[command(subcommand)]
        command: ModelsCli,
    },
    /// Difficulty-threshold calibration from shadow pairs: the quality/cost curve and
    /// the threshold that keeps the target quality at the least cost.
    Calibrate {
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        /// Quality relative to sending everything to the frontier, 0..1.
        #[arg(long, default_value_t = 0.95)]
        target_quality: f64,
        #[arg(long)]
        team: Option<String>,
        /// Only pairs of this policy rule.
        #[arg(long)]
        rule: Option<String>,
        /// RFC 3339, a date, or unix seconds
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// table or json
        #[arg(long, default_value = "table")]
        format: String,
    },
}

#[derive(Subcommand)]
enum KeysCli {
    /// Create a key for a team; the plain key is printed once.
    Create {
        #[arg(long)]
        team: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        app: Option<String>,
        /// Comma-separated tags.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        #[arg(long)]
        name: Option<String>,
    },
    List,
    Revoke {
        id: String,
    },
    Rotate {
        id: String,
    },
}

#[derive(Subcommand)]
enum TokensCli {
    /// Create a token; the plain token is printed once.
    Create {
        /// admin, security, finance or viewer
        #[arg(long)]
        role: String,
        /// Lifetime: 90m, 12h, 30d (at most 366d).
        #[arg(long)]
        expires_in: Option<String>,
        /// Or an expiry time (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    List,
    Revoke {
        id: String,
    },
}

#[derive(Subcommand)]
enum AuditCli {
    /// Check the hash chain; exits 1 when an entry was altered, deleted or inserted.
    Verify,
    /// Write entries as JSON Lines to stdout, oldest first.
    Export {
        /// RFC 3339, a date, or unix seconds
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// Exact actor (admin-token, token:tok_…, cli:alice)
        #[arg(long)]
        actor: Option<String>,
        /// An action (key.created) or a family (key)
        #[arg(long)]
        action: Option<String>,
    },
}

#[derive(Subcommand)]
enum ModelsCli {
    /// Convert a GGUF file (llama, qwen2, qwen3, gemma2, gemma3, phi3; F16, Q8_0, Q4_0, Q4_1,
    /// Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) once into `$SWITCHYARD_CACHE/models/NAME`, weights kept
    /// quantized, and print the `local_models` entry that serves it.
    Add {
        /// The .gguf file.
        file: PathBuf,
        /// Directory name under the cache's models/ (default: the file name without .gguf),
        /// served as `local/NAME`.
        #[arg(long)]
        name: Option<String>,
        /// Activation precision of the quantized matmuls: int8 (as llama.cpp; the default,
        /// about twice as fast) or fp32 (the dequantized model's exact results).
        #[arg(long, default_value = "int8")]
        activations: String,
        /// Write here instead of the cache (its directory name is then the default --name).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing model directory.
        #[arg(long)]
        force: bool,
    },
    /// The converted models in the cache: architecture, weights, context, size.
    List,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy directory; prints every error with file:line:column and exits 1.
    Check {
        dir: PathBuf,
        /// Gateway config whose providers and local models make up the model catalog.
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the `*.test.yaml` cases of a policy directory; exits 1 when one fails.
    Test {
        dir: PathBuf,
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Explain the routing of one request (OpenAI or Anthropic JSON on stdin) without
    /// calling any model.
    Explain {
        /// Policy directory (default: the built-in policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        /// Dialect of the request on stdin: openai, anthropic or responses.
        #[arg(long, default_value = "openai", value_parser = parse_dialect)]
        dialect: switchyard::canonical::Dialect,
        /// Team, as the x-switchyard-team header would give it.
        #[arg(long)]
        team: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The gateway exports traces (OTLP, when configured); the offline tools only log.
    let _telemetry = match cli.command {
        Command::Serve { .. } => Some(switchyard::telemetry::init("switchyard")),
        _ => {
            init_tracing();
            None
        }
    };
    let result = match cli.command {
        Command::Serve { config, listen } => serve(config, listen),
        Command::CheckConfig { config } => check_config(&config),
        Command::Classify {
            policy,
            config,
            ner,
            head,
        } => classify(policy, config, ner, head),
        Command::Policy { command } => policy_command(command),
        Command::Keys { config, command } => keys_command(config, command),
        Command::Tokens { config, command } => tokens_command(config, command),
        Command::Audit { config, command } => audit_command(config, command),
        Command::Report {
            config,
            group_by,
            from,
            to,
            format,
        } => report_command(config, &group_by, from.as_deref(), to.as_deref(), &format),
        Command::Models { command } => models_command(command),
        Command::Calibrate {
            config,
            target_quality,
            team,
            rule,
            from,
            to,
            format,
        } => calibrate_command(
            config,
            target_quality,
            team,
            rule,
            from.as_deref(),
            to.as_deref(),
            &format,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn models_command(command: ModelsCli) -> anyhow::Result<()> {
    use local_runtime::convert::{convert_gguf, Activations, ConvertRequest};
    let cache = local_runtime::default_cache_dir();
    match command {
        ModelsCli::Add {
            file,
            name,
            activations,
            out,
            force,
        } => {
            let activations = match activations.as_str() {
                "int8" => Activations::Int8,
                "fp32" => Activations::Fp32,
                other => anyhow::bail!("--activations {other:?}: expected int8 or fp32"),
            };
            // --name, else the --out directory's name, else the file's name without .gguf
            let name = match (name, &out) {
                (Some(n), _) => n,
                (None, Some(dir)) => dir
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .context("--out has no directory name to derive --name from")?,
                (None, None) => file
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_lowercase())
                    .context("the file has no name to derive --name from")?,
            };
            if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                anyhow::bail!("--name {name:?}: one path component, not starting with '.'");
            }
            let out = out.unwrap_or_else(|| cache.join("models").join(&name));
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let req = ConvertRequest {
                gguf: file,
                out: out.clone(),
                activations,
                force,
            };
            let t0 = std::time::Instant::now();
            convert_gguf(&cache, &req, |line| eprintln!("{line}"))?;
            let format = read_format(&out);
            eprintln!(
                "converted in {:.1} s: {}",
                t0.elapsed().as_secs_f64(),
                format.as_deref().unwrap_or("?")
            );
            println!(
                "# add to the gateway config (docs/configuration.md, local_models):\n\
                 local_models:\n  - name: local/{name}\n    dir: {}\n    catalog: {{ family: {name}, parameters: \"\", license: \"see the model card\", commercial_use: false }}",
                out.display()
            );
            Ok(())
        }
        ModelsCli::List => {
            let dir = cache.join("models");
            let mut rows = Vec::new();
            for entry in std::fs::read_dir(&dir)
                .with_context(|| {
                    format!("reading {} (run scripts/setup-models.sh)", dir.display())
                })?
                .flatten()
            {
                let p = entry.path();
                if p.join("model.onnx").is_file() && p.join("tokenizer.json").is_file() {
                    rows.push((
                        entry.file_name().to_string_lossy().into_owned(),
                        read_format(&p).unwrap_or_else(|| "?".into()),
                        dir_size(&p),
                    ));
                }
            }
            rows.sort();
            for (name, format, bytes) in rows {
                println!("local/{name}\t{format}\t{:.0} MB", bytes as f64 / 1e6);
            }
            Ok(())
        }
    }
}

/// One line from a converted directory's config.json: architecture, weights, activations,
/// context length.
fn read_format(dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let c: serde_json::Value = serde_json::from_str(&text).ok()?;
    let sy = &c["switchyard"];
    Some(format!(
        "{} ({}; {} activations; context {})",
        sy["architecture"].as_str().unwrap_or("?"),
        sy["weights"].as_str().unwrap_or("?"),
        sy["activations"].as_str().unwrap_or("?"),
        c["max_position_embeddings"].as_u64().unwrap_or(0)
    ))
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
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
        // Before anything slow, so a bad certificate fails the start at once.
        let tls = config
            .tls
            .as_ref()
            .map(switchyard::tls::acceptor)
            .transpose()?;
        let state = Arc::new(server::AppState::build(&config).await?);
        state.start_gauges();
        for p in &config.providers {
            if !p.endpoints.is_empty() {
                // Names, URLs and weights only: keys are never logged.
                for e in p.resolved_endpoints() {
                    tracing::info!(provider = %p.name, endpoint = %e.label, base_url = %e.base_url, weight = e.weight, "endpoint configured");
                }
            }
        }
        let watcher = state
            .router
            .policy
            .spawn_watcher(std::time::Duration::from_millis(config.policy_reload_ms.max(50)));
        spawn_sighup_reload(state.clone());
        let listener = server::bind(&config.listen).await?;
        let addr = listener.local_addr()?;
        // Printed on stdout so scripts and tests can find a port chosen with :0.
        let scheme = if tls.is_some() { "https" } else { "http" };
        // A supervisor that read the first line and closed the pipe must not take the
        // gateway down: write errors are ignored (println! would panic on EPIPE).
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "switchyard listening on {scheme}://{addr}");
            for line in switchyard::startup::summary(&config, &state, &format!("{scheme}://{addr}")) {
                let _ = writeln!(out, "  {line}");
            }
            let _ = out.flush();
        }
        // Stop accepting on SIGTERM/Ctrl-C, let in-flight requests and streams finish,
        // but only for `shutdown_grace_ms`: a stuck stream must not block a deploy.
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = server::serve_with(listener, tls, state.clone(), async move {
            shutdown_signal().await;
            let _ = stopping_tx.send(());
        });
        let grace = std::time::Duration::from_millis(config.shutdown_grace_ms);
        tokio::select! {
            result = serve => result?,
            _ = async move {
                if stopping_rx.await.is_ok() {
                    tokio::time::sleep(grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(?grace, "grace period over; closing the connections still open");
            }
        }
        if let Some(w) = watcher {
            w.abort();
        }
        state.shutdown().await;
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
    println!(
        "{}: ok, listen {}, {} provider(s)",
        path.display(),
        config.listen,
        config.providers.len()
    );
    for p in &config.providers {
        println!(
            "  {} ({:?}) {} models={:?}",
            p.name,
            p.kind,
            p.shown_base_url(),
            p.served_models()
        );
        if !p.endpoints.is_empty() {
            for e in p.resolved_endpoints() {
                println!(
                    "    endpoint {} {} weight={}",
                    e.label, e.base_url, e.weight
                );
            }
        }
    }
    if let Some(tls) = &config.tls {
        switchyard::tls::acceptor(tls)?;
        println!(
            "  tls: {} + {}",
            tls.cert_file.display(),
            tls.key_file.display()
        );
    }
    Ok(())
}

/// SIGHUP re-reads the policy directory (the file watcher does too).
fn spawn_sighup_reload(state: Arc<server::AppState>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading policy");
            let _ = state.router.policy.reload();
        }
    });
    #[cfg(not(unix))]
    let _ = state;
}

fn classify(
    policy: Option<PathBuf>,
    config: Option<PathBuf>,
    ner_mode: Option<String>,
    head_mode: Option<String>,
) -> anyhow::Result<()> {
    let config = load_config(config)?;
    let mut settings = config.classifier.ner.clone();
    if let Some(mode) = ner_mode {
        settings.mode = serde_yaml_ng::from_str(&mode).map_err(|_| {
            anyhow::anyhow!("--ner {mode:?}: use always, auto, when_rules_silent or off")
        })?;
    }
    let runtime = local_runtime::RuntimeConfig {
        ort_library: config.onnxruntime_library.clone(),
    };
    let ner = switchyard::ner::load(&settings, &runtime)?;
    let mut head_settings = config.classifier.sentence_head.clone();
    if let Some(mode) = head_mode {
        head_settings.mode = serde_yaml_ng::from_str(&mode).map_err(|_| {
            anyhow::anyhow!("--head {mode:?}: use always, auto, when_rules_silent or off")
        })?;
    }
    let head = switchyard::sentence_head::load(&head_settings, &runtime)?;
    let classifier = match policy {
        Some(dir) => {
            let catalog = catalog_for(None)?;
            switchyard::policy_runtime::compile_policy(Some(&dir), &catalog)
                .map_err(|e| anyhow::anyhow!("invalid policy:\n{e}"))?
                .1
        }
        None => policies::Classifier::new(policies::OrgRules::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let s = policies::classify_jsonl_with(
        &classifier,
        |input, c| {
            if let Some(ner) = &ner {
                let segments: Vec<(policies::SegmentRole, &str)> =
                    input.segments.iter().map(|s| (s.role, s.text)).collect();
                let run = ner.scan(&segments, c, true);
                c.merge_findings(run.findings);
            }
            if let Some(head) = &head {
                let segments: Vec<(policies::SegmentRole, &str)> =
                    input.segments.iter().map(|s| (s.role, s.text)).collect();
                head.apply(&segments, c, true, true);
            }
        },
        stdin,
        stdout,
    )?;
    eprintln!("classified {} request(s)", s.classified);
    // Bad lines were written as error rows; the exit status still says the batch failed.
    if s.errors > 0 {
        anyhow::bail!("{} line(s) could not be classified (error rows)", s.errors);
    }
    Ok(())
}

/// The model catalog policies are checked against: the gateway's own (`ModelMap`, built
/// from the config without loading local models), then the well-known model names of the
/// shipped examples so a policy can be checked before the gateway is configured.
fn catalog_for(config: Option<PathBuf>) -> anyhow::Result<CliCatalog> {
    let config = load_config(config)?;
    Ok(CliCatalog {
        models: switchyard::routing::ModelMap::offline(&config)?,
        config,
        examples: policies::policy::StaticCatalog::builtin(),
    })
}

struct CliCatalog {
    config: Config,
    models: switchyard::routing::ModelMap,
    examples: policies::policy::StaticCatalog,
}

impl policies::policy::TargetCatalog for CliCatalog {
    fn lookup(&self, model: &str) -> Option<policies::policy::TargetInfo> {
        policies::policy::TargetCatalog::lookup(&self.models, model)
            .or_else(|| self.examples.lookup(model))
    }

    fn models(&self) -> Vec<String> {
        let mut names = policies::policy::TargetCatalog::models(&self.models);
        names.extend(self.examples.models());
        names.sort();
        names.dedup();
        names
    }
}

fn parse_dialect(name: &str) -> Result<switchyard::canonical::Dialect, String> {
    switchyard::canonical::Dialect::parse(name)
        .ok_or_else(|| format!("unknown dialect {name:?}: use openai, anthropic or responses"))
}

fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Check { dir, config } => {
            let catalog = catalog_for(config)?;
            match policies::policy::check(&dir, &catalog) {
                Ok(p) => {
                    let warnings = p.warnings();
                    println!(
                        "{}: ok ({} file(s), {} rule(s), {} warning(s))",
                        dir.display(),
                        p.files().len(),
                        p.rule_ids().len(),
                        warnings.len()
                    );
                    for w in warnings {
                        println!("warning: {w}");
                    }
                    Ok(())
                }
                Err(errs) => {
                    eprint!("{}", policies::policy::format_errors(&errs));
                    anyhow::bail!("{} error(s) in {}", errs.len(), dir.display())
                }
            }
        }
        PolicyCommand::Test { dir, config } => {
            let catalog = catalog_for(config)?;
            let loaded = policies::policy::load_dir(&dir)
                .map_err(|errs| anyhow::anyhow!("{}", policies::policy::format_errors(&errs)))?;
            let policy = policies::policy::compile(&loaded.policies, &catalog)
                .map_err(|errs| anyhow::anyhow!("{}", policies::policy::format_errors(&errs)))?;
            let cases = policies::policy::parse_tests(&loaded.tests)
                .map_err(|errs| anyhow::anyhow!("{}", policies::policy::format_errors(&errs)))?;
            let classifier = policy.classifier().map_err(|e| anyhow::anyhow!(e))?;
            let report = policies::policy::run_tests(&policy, &classifier, &cases, &catalog);
            println!("{report}");
            if report.ok() {
                Ok(())
            } else {
                anyhow::bail!("policy tests failed")
            }
        }
        PolicyCommand::Explain {
            policy,
            config,
            dialect,
            team,
        } => {
            use std::io::Read;
            let mut body = Vec::new();
            std::io::stdin().read_to_end(&mut body)?;
            use switchyard::canonical::Dialect;
            let request = match dialect {
                Dialect::OpenAi => switchyard::dialects::openai::parse_request(&body),
                Dialect::Anthropic => {
                    switchyard::dialects::anthropic::parse_count_tokens_request(&body)
                }
                Dialect::Responses => {
                    switchyard::dialects::responses::parse_request(&body).map(|(r, _)| r)
                }
                Dialect::Gemini => anyhow::bail!(
                    "a Gemini request names its model in the URL; explain it as openai or anthropic"
                ),
            }
            .map_err(|e| anyhow::anyhow!("invalid request: {e}"))?;
            let catalog = Arc::new(catalog_for(config)?);
            let handle = switchyard::policy_runtime::PolicyHandle::load(policy, catalog.clone())
                .map_err(|e| anyhow::anyhow!("invalid policy:\n{e}"))?;
            let models = Arc::new(switchyard::routing::ModelMap::offline(&catalog.config)?);
            let runtime = local_runtime::RuntimeConfig {
                ort_library: catalog.config.onnxruntime_library.clone(),
            };
            let ner = switchyard::ner::load(&catalog.config.classifier.ner, &runtime)?;
            let head = switchyard::sentence_head::load(
                &catalog.config.classifier.sentence_head,
                &runtime,
            )?;
            let router = switchyard::routing::PolicyRouter {
                models,
                policy: handle,
                ner,
                head,
            };
            let facts = policies::policy::Facts {
                team,
                dialect: Some(dialect),
                stream: request.stream,
                ..Default::default()
            };
            let out = server::explain_json(&router, request, facts);
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}

fn ledger_db(
    config: Option<PathBuf>,
) -> anyhow::Result<(tokio::runtime::Runtime, switchyard::store::Db)> {
    let config = load_config(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let db = runtime.block_on(switchyard::store::Db::connect(&config.database_url()))?;
    Ok((runtime, db))
}

fn keys_command(config: Option<PathBuf>, command: KeysCli) -> anyhow::Result<()> {
    use switchyard::admin::KeysCommand;
    let (runtime, db) = ledger_db(config)?;
    let cmd = match command {
        KeysCli::Create {
            team,
            user,
            app,
            tags,
            name,
        } => KeysCommand::Create(switchyard::auth::NewKey {
            team,
            user,
            app,
            tags,
            name,
        }),
        KeysCli::List => KeysCommand::List,
        KeysCli::Revoke { id } => KeysCommand::Revoke { id },
        KeysCli::Rotate { id } => KeysCommand::Rotate { id },
    };
    let out = runtime.block_on(switchyard::admin::cli_keys(db, cmd))?;
    print!("{out}");
    Ok(())
}

fn tokens_command(config: Option<PathBuf>, command: TokensCli) -> anyhow::Result<()> {
    use switchyard::admin::TokensCommand;
    let (runtime, db) = ledger_db(config)?;
    let cmd = match command {
        TokensCli::Create {
            role,
            expires_in,
            expires_at,
            name,
        } => TokensCommand::Create(switchyard::auth::admin_tokens::NewToken {
            role,
            name,
            expires_in,
            expires_at,
        }),
        TokensCli::List => TokensCommand::List,
        TokensCli::Revoke { id } => TokensCommand::Revoke { id },
    };
    let out = runtime.block_on(switchyard::admin::cli_tokens(db, cmd))?;
    print!("{out}");
    Ok(())
}

fn audit_command(config: Option<PathBuf>, command: AuditCli) -> anyhow::Result<()> {
    let (runtime, db) = ledger_db(config)?;
    match command {
        AuditCli::Verify => {
            let (text, ok) = runtime.block_on(switchyard::admin::cli_audit_verify(db))?;
            if ok {
                print!("{text}");
                Ok(())
            } else {
                anyhow::bail!("{}", text.trim_end())
            }
        }
        AuditCli::Export {
            from,
            to,
            actor,
            action,
        } => {
            let filter = switchyard::admin::audit_filter(
                from.as_deref(),
                to.as_deref(),
                actor,
                action,
                None,
                0,
            )
            .map_err(anyhow::Error::msg)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            runtime.block_on(switchyard::admin::cli_audit_export(db, filter, &mut out))?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
    }
}

fn calibrate_command(
    config: Option<PathBuf>,
    target_quality: f64,
    team: Option<String>,
    rule: Option<String>,
    from: Option<&str>,
    to: Option<&str>,
    format: &str,
) -> anyhow::Result<()> {
    let json = match format {
        "json" => true,
        "table" => false,
        other => anyhow::bail!("unknown format {other:?}: use table or json"),
    };
    let q = switchyard::admin::calibration_query(Some(target_quality), team, rule, from, to)
        .map_err(anyhow::Error::msg)?;
    let policy_dir = load_config(config.clone())?.policy_dir;
    let (runtime, db) = ledger_db(config)?;
    let out = runtime.block_on(switchyard::admin::cli_calibrate(
        db,
        q,
        policy_dir.as_deref(),
        json,
    ))?;
    print!("{out}");
    Ok(())
}

fn report_command(
    config: Option<PathBuf>,
    group_by: &str,
    from: Option<&str>,
    to: Option<&str>,
    format: &str,
) -> anyhow::Result<()> {
    let csv = match format {
        "csv" => true,
        "table" => false,
        other => anyhow::bail!("unknown format {other:?}: use table or csv"),
    };
    let q = switchyard::accounting::SpendQuery::parse(group_by, from, to)?;
    let (runtime, db) = ledger_db(config)?;
    let out = runtime.block_on(switchyard::admin::cli_report(db, q, csv))?;
    print!("{out}");
    Ok(())
}
