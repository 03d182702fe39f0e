//! The `sso:` section: an OpenID Connect provider for console sign-in, and how its
//! claims map to roles.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::auth::roles::Role;

/// ```yaml
/// sso:
///   issuer: https://login.example.com/realms/acme
///   client_id: switchyard
///   client_secret_env: SWITCHYARD_OIDC_CLIENT_SECRET
///   public_url: https://gateway.example.com      # the callback is {public_url}/console/callback
///   role_claim: groups
///   roles: { platform-team: admin, appsec: security, finance: finance, everyone: viewer }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// The provider's issuer URL (discovery reads `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// Environment variable holding the client secret (never in the file).
    #[serde(default = "default_secret_env")]
    pub client_secret_env: String,
    /// The gateway's URL as browsers reach it.
    pub public_url: String,
    /// Scopes asked for besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID-token claim holding the user's groups (a string or a list of strings).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Claim value → role. A user in several mapped groups gets the most capable role
    /// (admin, then security, finance, viewer); a user in none is refused.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// A session unused this long ends.
    #[serde(default = "default_idle")]
    pub idle_timeout_s: u64,
    /// A session ends this long after sign-in, however active.
    #[serde(default = "default_absolute")]
    pub absolute_timeout_s: u64,
}

fn default_secret_env() -> String {
    "SWITCHYARD_OIDC_CLIENT_SECRET".into()
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into(), "groups".into()]
}

fn default_role_claim() -> String {
    "groups".into()
}

fn default_idle() -> u64 {
    30 * 60
}

fn default_absolute() -> u64 {
    12 * 3600
}

impl SsoConfig {
    pub fn redirect_url(&self) -> String {
        format!("{}/console/callback", self.public_url.trim_end_matches('/'))
    }

    /// The role of a user whose `role_claim` holds `groups`: the most capable mapped one.
    pub fn role_for(&self, groups: &[String]) -> Option<Role> {
        groups
            .iter()
            .filter_map(|g| self.roles.get(g).copied())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_capable_mapped_role_wins_and_unmapped_users_get_none() {
        let c: SsoConfig = serde_yaml_ng::from_str(
            "issuer: https://idp\nclient_id: c\npublic_url: https://gw/\nroles: { ops: admin, sec: security, fin: finance, all: viewer }\n",
        )
        .expect("config");
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(c.role_for(&g(&["all", "fin"])), Some(Role::Finance));
        assert_eq!(c.role_for(&g(&["all", "sec", "ops"])), Some(Role::Admin));
        assert_eq!(c.role_for(&g(&["all"])), Some(Role::Viewer));
        assert_eq!(c.role_for(&g(&["contractors"])), None);
        assert_eq!(c.role_for(&[]), None);
        assert_eq!(c.redirect_url(), "https://gw/console/callback");
        assert_eq!(c.idle_timeout_s, 1800);
    }
}
