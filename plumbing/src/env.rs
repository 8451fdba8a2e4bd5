//! Reading settings from the environment with one rule for every binary:
//! a value is trimmed, an empty value counts as unset, and every problem is
//! collected so that a half-configured process names all of them at once
//! instead of failing on the first, fixing it, and failing on the next.
//!
//! ```
//! use plumbing::env::Env;
//!
//! let vars = [("TABLE", " conns "), ("PORT", "80x")];
//! let mut env = Env::new(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
//! assert_eq!(env.required("TABLE", "the connections table"), "conns");
//! let _: u16 = env.parse_or("PORT", 3001);
//! let _ = env.required("ARN", "the runtime to invoke");
//! let problems = env.finish().unwrap_err();
//! assert_eq!(problems.0.len(), 2);
//! ```

use std::{fmt, str::FromStr};

/// All the problems found in the environment, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct Problems(pub Vec<String>);

/// How a setting is looked up: the process environment, or a map in tests.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Reads settings through a lookup (the process environment, or a map in
/// tests) and collects what is wrong instead of stopping at the first.
pub struct Env<'a> {
    get: Lookup<'a>,
    problems: Vec<String>,
}

/// A configuration read with [`Env`]: implement [`FromEnv::read`], and
/// `from_env` (the process environment) and `from_lookup` (tests) come with it.
pub trait FromEnv: Sized {
    /// Reads every setting, then [`Env::finish`]es.
    fn read(env: Env<'_>) -> Result<Self, Problems>;

    fn from_env() -> Result<Self, Problems> {
        Self::read(Env::process())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Problems> {
        Self::read(Env::new(get))
    }
}

impl Env<'static> {
    /// The process environment.
    pub fn process() -> Self {
        Env::new(|k| std::env::var(k).ok())
    }
}

impl<'a> Env<'a> {
    /// Reads through `get`; tests pass a closure over a fixed list.
    pub fn new(get: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Env {
            get: Box::new(get),
            problems: Vec::new(),
        }
    }

    /// Records a problem found by the caller (a rule between two settings,
    /// a value out of range).
    pub fn problem(&mut self, p: impl Into<String>) {
        self.problems.push(p.into());
    }

    /// The trimmed value; unset and empty (or only blanks) are `None`.
    pub fn opt(&self, key: &str) -> Option<String> {
        (self.get)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value, or a problem `{key} is required ({what})` and an empty string.
    pub fn required(&mut self, key: &str, what: &str) -> String {
        self.opt(key).unwrap_or_else(|| {
            self.problem(format!("{key} is required ({what})"));
            String::new()
        })
    }

    /// The parsed value, `default` when unset; a value that does not parse
    /// is a problem `{key}="…" is invalid: {reason}` (and `default` is returned).
    pub fn parse_or<T: FromStr>(&mut self, key: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match self.opt(key) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|e| {
                self.problem(format!("{key}={v:?} is invalid: {e}"));
                default
            }),
        }
    }

    /// A switch: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`; unset is off.
    pub fn flag(&mut self, key: &str) -> bool {
        match self.opt(key).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("0" | "false" | "no" | "off") => false,
            Some("1" | "true" | "yes" | "on") => true,
            Some(v) => {
                self.problem(format!("{key}={v:?} is invalid: use 1 or 0"));
                false
            }
        }
    }

    /// The problems so far (for a caller that wraps them in its own error).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// `Ok` when nothing was wrong, otherwise every problem found.
    pub fn finish(self) -> Result<(), Problems> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(self.problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> Env<'static> {
        Env::new(move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn blank_is_unset_and_values_are_trimmed() {
        let e = env(&[("A", "  "), ("B", " x ")]);
        assert_eq!(e.opt("A"), None);
        assert_eq!(e.opt("B").as_deref(), Some("x"));
        assert_eq!(e.opt("C"), None);
        assert!(e.finish().is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut e = env(&[("PORT", "eighty"), ("ON", "maybe")]);
        assert_eq!(e.required("TABLE", "the table"), "");
        assert_eq!(e.parse_or("PORT", 3001u16), 3001);
        assert!(!e.flag("ON"));
        e.problem("a rule between two settings");
        let err = e.finish().unwrap_err();
        assert_eq!(
            err.0,
            [
                "TABLE is required (the table)",
                "PORT=\"eighty\" is invalid: invalid digit found in string",
                "ON=\"maybe\" is invalid: use 1 or 0",
                "a rule between two settings",
            ]
        );
        assert!(
            err.to_string()
                .starts_with("invalid configuration:\n  - TABLE")
        );
    }

    #[test]
    fn parses_and_flags() {
        let mut e = env(&[("PORT", "8080"), ("ON", "Yes")]);
        assert_eq!(e.parse_or("PORT", 1u16), 8080);
        assert!(e.flag("ON"));
        assert!(!e.flag("OFF"));
        assert!(e.finish().is_ok());
    }
}
