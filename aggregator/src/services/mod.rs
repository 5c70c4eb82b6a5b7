//! Declarative service files (`config.yaml`): a cluster's services in one file, checked
//! with every mistake's path and line, turned into Marathon app definitions, and compared
//! with what the cluster runs. The `strata` command-line client applies them through the
//! app service's API.
//!
//! - [`yaml`]: YAML to JSON, with each node's line.
//! - [`spec`], [`rules`]: the file's fields and defaults, and its rules.
//! - [`translate`]: services as app definitions.
//! - [`diff`]: what applying a file changes.

pub mod diff;
pub mod rules;
pub mod spec;
pub mod translate;
pub mod yaml;

use std::fmt;

use crate::apps::definition;

pub use spec::ServiceFile;

/// One mistake, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "line {}: {}: {}", self.line, self.path, self.message)
        }
    }
}

/// Reads and checks a service file's text: the file, or every mistake in it, in line order.
pub fn load(text: &str) -> Result<ServiceFile, Vec<Located>> {
    let doc = yaml::parse(text).map_err(|err| {
        vec![Located {
            line: err.line,
            path: String::new(),
            message: format!("not valid YAML: {}", err.message),
        }]
    })?;
    let read = spec::read(&doc.value).and_then(|file| {
        // What the app service would refuse, refused here too (a safety net: the rules of
        // `spec` should already have caught it).
        let problems: Vec<spec::Problem> = translate::apps(&file)
            .iter()
            .enumerate()
            .filter_map(|(i, app)| {
                let invalid = definition::parse(app).and_then(|d| d.validate()).err()?;
                Some(invalid.0.into_iter().map(move |v| spec::Problem {
                    path: format!("services[{i}]"),
                    message: format!("as an app, {}: {}", v.path, v.errors.join("; ")),
                }))
            })
            .flatten()
            .collect();
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(problems)
        }
    });
    read.map_err(|problems| {
        let mut located: Vec<Located> = problems
            .into_iter()
            .map(|p| Located {
                line: doc.line(&p.path),
                path: p.path,
                message: p.message,
            })
            .collect();
        located.sort_by_key(|l| l.line);
        located
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistakes_come_with_their_lines() {
        let text = "\
cluster_name: shop
services:
  - service_name: web
    image: busybox
    replicas: -1
    ports: [80]
    health_check:
      type: http
      port_index: 2
  - service_name: api
    comand: sleep 10
";
        let errors = load(text).expect_err("invalid");
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown[0],
            "line 5: services[0].replicas: invalid value: integer `-1`, expected u32"
        );
        assert!(
            shown[1].starts_with("line 9: services[0].health_check.port_index: "),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("line 10: services[1]: a service needs")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("line 11: services[1].comand: unknown field")),
            "{shown:?}"
        );
        let err = load("cluster_name: [\n").expect_err("not yaml");
        assert!(err[0].message.starts_with("not valid YAML"), "{err:?}");
    }
}
