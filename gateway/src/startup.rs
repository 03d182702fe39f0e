//! The few lines `switchyard serve` prints once it listens: where it is, where its
//! dashboard and ledger are, which policy decides, which providers and local models
//! serve. A newcomer reads this before anything else, so it names what is missing too.

use crate::config::{Config, ENV_PROVIDERS};
use crate::server::AppState;

/// The summary lines (without indentation), after `switchyard listening on URL`.
pub fn summary(config: &Config, state: &AppState, url: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let creds = &state.credentials;
    lines.push(format!(
        "dashboard: {url}/dashboard{}",
        if creds.admin_token.is_some() {
            " (sign in with the admin token)"
        } else {
            " (open mode: no admin token)"
        }
    ));
    lines.push(format!("ledger: {}", redact_url(&config.database_url())));
    lines.push(match &config.policy_dir {
        Some(dir) => format!("policy: directory {}", dir.display()),
        None => "policy: built-in (the requested model; privacy-critical requests stay local) — set SWITCHYARD_POLICY_DIR or policy_dir for your own".into(),
    });
    if config.providers.is_empty() {
        lines.push("providers: none — requests for API models get 404".into());
    }
    for p in &config.providers {
        lines.push(format!(
            "provider {} ({:?}): {} for {}",
            p.name,
            p.kind,
            p.shown_base_url(),
            p.served_models().join(", ")
        ));
    }
    // A config file replaces the environment's providers: say so when that drops some.
    if config.source.is_some() {
        let ignored: Vec<&str> = ENV_PROVIDERS
            .iter()
            .filter(|e| {
                std::env::var_os(e.key_var).is_some() || std::env::var_os(e.base_url_var).is_some()
            })
            .filter(|e| {
                !config
                    .providers
                    .iter()
                    .any(|p| p.api_key_env.as_deref() == Some(e.key_var))
            })
            .map(|e| e.key_var)
            .collect();
        if !ignored.is_empty() {
            lines.push(format!(
                "note: the config file lists its own providers, so {} from the environment is not used (add a provider with `api_key_env: {}`)",
                ignored.join(", "),
                ignored[0]
            ));
        }
    }
    if state.local_models.is_empty() {
        lines.push("local models: none — run scripts/setup-models.sh, or privacy-critical requests fail closed (503)".into());
    }
    for m in &state.local_models {
        lines.push(format!(
            "local model {} in process on {}",
            m.name(),
            m.execution_provider()
        ));
    }
    lines.push(match (creds.admin_token.is_some(), creds.require_key) {
        (true, _) => {
            "auth: virtual keys required on /v1/*; admin API on /admin/* with the admin token"
                .into()
        }
        (false, true) => "auth: virtual keys required; admin API disabled (no admin token)".into(),
        (false, false) => format!(
            "auth: OPEN MODE — no virtual key needed, admin API disabled; set {} for production",
            creds.admin_token_env
        ),
    });
    lines.push(match &creds.metrics_token {
        Some(_) => format!("metrics: {url}/metrics (bearer token required)"),
        None => format!("metrics: {url}/metrics (open; team names and spend are labels — see docs/observability.md)"),
    });
    lines
}

/// A database URL without its password (`postgres://user:secret@host` → `user:***@host`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let sep = if path.is_empty() && !rest.contains('/') {
        ""
    } else {
        "/"
    };
    format!("{scheme}://{user}:***@{host}{sep}{path}")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_passwords_are_not_printed() {
        assert_eq!(
            redact_url("postgres://sy:s3cret@db:5432/ledger"),
            "postgres://sy:***@db:5432/ledger"
        );
        assert_eq!(redact_url("sqlite:/tmp/x.db"), "sqlite:/tmp/x.db");
        assert_eq!(redact_url("postgres://db/ledger"), "postgres://db/ledger");
    }
}
