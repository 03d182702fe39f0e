//! Administrative roles and the role sets routes declare.
//!
//! | role | may |
//! |---|---|
//! | `admin` | everything |
//! | `security` | policies (status, reload), the playground, the audit trail, dashboards |
//! | `finance` | spend and calibration reports, dashboards |
//! | `viewer` | dashboards |
//!
//! A route declares the roles that may call it (`RouteTable::route_roles`); the access
//! guard compares the caller's role with that set, so the rule holds in the API and not
//! only in what a page shows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Security,
    Finance,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Security, Role::Finance, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Security => "security",
            Role::Finance => "finance",
            Role::Viewer => "viewer",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Role::Admin => 1,
            Role::Security => 2,
            Role::Finance => 4,
            Role::Viewer => 8,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: use admin, security, finance or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownRole(s.chars().take(64).collect()))
    }
}

/// The roles a route admits. `admin` is in every set: it may do everything.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoleSet(u8);

impl RoleSet {
    /// Administration proper: keys, tokens.
    pub const ADMIN: RoleSet = RoleSet(1);
    /// Policies and the audit trail.
    pub const SECURITY: RoleSet = RoleSet(1 | 2);
    /// Spend and reports.
    pub const FINANCE: RoleSet = RoleSet(1 | 4);
    /// Every role (dashboards).
    pub const ANY: RoleSet = RoleSet(1 | 2 | 4 | 8);

    pub fn of(roles: &[Role]) -> RoleSet {
        RoleSet(roles.iter().fold(Role::Admin.bit(), |acc, r| acc | r.bit()))
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn roles(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl fmt::Debug for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.roles()).finish()
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.roles().map(Role::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_is_in_every_set() {
        for set in [
            RoleSet::ADMIN,
            RoleSet::SECURITY,
            RoleSet::FINANCE,
            RoleSet::ANY,
            RoleSet::of(&[]),
        ] {
            assert!(set.contains(Role::Admin), "{set:?}");
        }
        assert!(!RoleSet::SECURITY.contains(Role::Finance));
        assert!(!RoleSet::FINANCE.contains(Role::Viewer));
        assert_eq!(RoleSet::of(&[Role::Security]), RoleSet::SECURITY);
        assert_eq!(RoleSet::ANY.to_string(), "admin, security, finance, viewer");
    }

    #[test]
    fn roles_parse_case_insensitively_and_name_the_choices() {
        assert_eq!("Finance".parse::<Role>(), Ok(Role::Finance));
        let err = "root".parse::<Role>().unwrap_err().to_string();
        assert!(err.contains("admin, security, finance or viewer"), "{err}");
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
    }
}
