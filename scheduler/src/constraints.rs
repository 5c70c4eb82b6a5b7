//! Placement constraints in Marathon's form, `[field, OPERATOR, value]`, evaluated for one
//! candidate agent against the agents the app's instances already run on. `field` is
//! `hostname` or an agent attribute. An agent without the attribute satisfies only UNLIKE.

use std::collections::BTreeMap;

use regex::Regex;

/// How a constraint limits placement.
#[derive(Debug, Clone)]
pub enum Operator {
    /// At most one instance per value.
    Unique,
    /// Every instance on the same value: the given one, or else the first instance's.
    Cluster(Option<String>),
    /// Instances spread evenly over the values (over at least `n` values when given).
    GroupBy(Option<u32>),
    /// The value matches the regular expression (whole value).
    Like(Regex),
    /// The value does not match.
    Unlike(Regex),
    /// At most `n` instances per value.
    MaxPer(u32),
    /// The value equals this text.
    Is(String),
}

/// One constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub field: String,
    pub operator: Operator,
}

/// Why a constraint could not be parsed; the message names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error("a constraint is [field, operator] or [field, operator, value]; got {0} parts")]
    Shape(usize),
    #[error(
        "unknown operator {0}: expected UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER or IS"
    )]
    Operator(String),
    #[error("{operator} needs a value")]
    MissingValue { operator: String },
    #[error("{operator} needs a positive integer, got {value:?}")]
    Number { operator: String, value: String },
    #[error("invalid regular expression {value:?}: {reason}")]
    Regex { value: String, reason: String },
}

fn whole(pattern: &str) -> Result<Regex, ConstraintError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| ConstraintError::Regex {
        value: pattern.to_owned(),
        reason: e.to_string(),
    })
}

impl Constraint {
    /// Parses `[field, operator]` or `[field, operator, value]`.
    pub fn parse(parts: &[impl AsRef<str>]) -> Result<Self, ConstraintError> {
        let (field, op, value) = match parts {
            [field, op] => (field.as_ref(), op.as_ref(), None),
            [field, op, value] => (field.as_ref(), op.as_ref(), Some(value.as_ref())),
            _ => return Err(ConstraintError::Shape(parts.len())),
        };
        let needed = || ConstraintError::MissingValue {
            operator: op.to_owned(),
        };
        let number =
            |value: Option<&str>| -> Result<u32, ConstraintError> {
                let value = value.ok_or_else(needed)?;
                value.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ConstraintError::Number {
                        operator: op.to_owned(),
                        value: value.to_owned(),
                    }
                })
            };
        let operator = match op {
            "UNIQUE" => Operator::Unique,
            "CLUSTER" => Operator::Cluster(value.filter(|v| !v.is_empty()).map(str::to_owned)),
            "GROUP_BY" => Operator::GroupBy(match value {
                Some(v) if !v.is_empty() => Some(number(Some(v))?),
                _ => None,
            }),
            "LIKE" => Operator::Like(whole(value.ok_or_else(needed)?)?),
            "UNLIKE" => Operator::Unlike(whole(value.ok_or_else(needed)?)?),
            "MAX_PER" => Operator::MaxPer(number(value)?),
            "IS" => Operator::Is(value.ok_or_else(needed)?.to_owned()),
            other => return Err(ConstraintError::Operator(other.to_owned())),
        };
        Ok(Self {
            field: field.to_owned(),
            operator,
        })
    }

    /// Whether an instance may go on an agent whose `field` is `candidate`, given the
    /// values of `field` on the agents of the instances already placed.
    pub fn satisfied<'a>(
        &self,
        candidate: Option<&str>,
        placed: impl IntoIterator<Item = Option<&'a str>>,
    ) -> bool {
        let Some(value) = candidate else {
            return matches!(self.operator, Operator::Unlike(_));
        };
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        for v in placed.into_iter().flatten() {
            *counts.entry(v).or_default() += 1;
        }
        let here = counts.get(value).copied().unwrap_or(0);
        match &self.operator {
            Operator::Unique => here == 0,
            Operator::Cluster(Some(wanted)) | Operator::Is(wanted) => value == wanted,
            Operator::Cluster(None) => counts.keys().all(|v| *v == value),
            Operator::GroupBy(groups) => {
                let seen = counts.len() as u32;
                if here == 0 {
                    return true;
                }
                let fewest = if groups.is_some_and(|n| seen < n) {
                    0
                } else {
                    counts.values().copied().min().unwrap_or(0)
                };
                here <= fewest
            }
            Operator::Like(re) => re.is_match(value),
            Operator::Unlike(re) => !re.is_match(value),
            Operator::MaxPer(n) => here < *n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(parts: &[&str]) -> Constraint {
        Constraint::parse(parts).expect("valid constraint")
    }

    #[test]
    fn operators_follow_marathon() {
        let placed = [Some("a"), Some("a"), Some("b")];
        assert!(!c(&["hostname", "UNIQUE"]).satisfied(Some("a"), placed));
        assert!(c(&["hostname", "UNIQUE"]).satisfied(Some("c"), placed));
        assert!(c(&["rack", "MAX_PER", "2"]).satisfied(Some("b"), placed));
        assert!(!c(&["rack", "MAX_PER", "2"]).satisfied(Some("a"), placed));
        assert!(c(&["rack", "CLUSTER", "a"]).satisfied(Some("a"), []));
        assert!(!c(&["rack", "CLUSTER"]).satisfied(Some("a"), [Some("b")]));
        assert!(c(&["rack", "CLUSTER"]).satisfied(Some("b"), [Some("b")]));
        assert!(c(&["rack", "GROUP_BY"]).satisfied(Some("b"), placed));
        assert!(!c(&["rack", "GROUP_BY"]).satisfied(Some("a"), placed));
        assert!(!c(&["rack", "GROUP_BY", "3"]).satisfied(Some("b"), placed));
        assert!(c(&["rack", "GROUP_BY", "3"]).satisfied(Some("c"), placed));
        assert!(c(&["hostname", "LIKE", "node-[0-9]+"]).satisfied(Some("node-12"), []));
        assert!(!c(&["hostname", "LIKE", "node"]).satisfied(Some("node-12"), []));
        assert!(c(&["hostname", "UNLIKE", "db.*"]).satisfied(Some("web-1"), []));
        assert!(c(&["zone", "IS", "eu"]).satisfied(Some("eu"), []));
        assert!(!c(&["zone", "IS", "eu"]).satisfied(None, []));
        assert!(c(&["zone", "UNLIKE", "eu"]).satisfied(None, []));
    }

    #[test]
    fn bad_constraints_say_what_is_wrong() {
        let err = |parts: &[&str]| Constraint::parse(parts).expect_err("invalid").to_string();
        assert!(err(&["hostname"]).contains("got 1 parts"));
        assert!(err(&["hostname", "UNIQ"]).contains("unknown operator UNIQ"));
        assert!(err(&["rack", "MAX_PER", "zero"]).contains("positive integer"));
        assert!(err(&["rack", "LIKE"]).contains("LIKE needs a value"));
        assert!(err(&["rack", "LIKE", "("]).contains("invalid regular expression"));
    }
}
