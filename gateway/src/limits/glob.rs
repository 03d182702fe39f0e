//! Subject patterns: `*` matches any run of characters, `?` exactly one, everything
//! else itself. Enough for `team-*` or `svc-??`, with no regex to get wrong.

/// One glob implementation for the whole gateway: the routing seam's.
pub use crate::routing::glob_match as matches;

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("team-*", "team-eng"));
        assert!(!matches("team-*", "eng"));
        assert!(matches("svc-??", "svc-01"));
        assert!(!matches("svc-??", "svc-1"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(matches("*é", "café"));
    }
}
