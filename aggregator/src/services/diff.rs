//! What applying a service file changes (pure): each desired app against the cluster's
//! current one, both read through the same definition parser so defaults compare equal.
//! Apps of the cluster's group that the file no longer names are deleted, if the file made
//! them (they carry its cluster label); others are left alone. An app with a scale policy
//! keeps the instance count the autoscaler chose while it is within the policy's bounds, so
//! re-applying an unchanged file changes nothing.

use std::fmt;

use serde_json::{Map, Value};

use super::translate::LABEL_CLUSTER;
use crate::apps::{autoscale::Policy, definition};

/// One field that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// What happens to one app.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Create {
        id: String,
        app: Value,
    },
    Update {
        id: String,
        app: Value,
        fields: Vec<FieldChange>,
    },
    Delete {
        id: String,
    },
    Unchanged {
        id: String,
    },
}

impl Change {
    pub fn id(&self) -> &str {
        match self {
            Self::Create { id, .. }
            | Self::Update { id, .. }
            | Self::Delete { id }
            | Self::Unchanged { id } => id,
        }
    }
}

fn normal(app: &Value) -> Map<String, Value> {
    let mut shown = definition::parse(app)
        .map(|d| d.to_json())
        .unwrap_or_else(|_| app.clone());
    let mut map = shown
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    map.remove("version");
    map
}

/// The changes that take `current` (every app the cluster runs) to `desired` (the file's
/// apps, all under `group`).
pub fn changes(desired: &[Value], current: &[Value], group: &str, cluster: &str) -> Vec<Change> {
    let prefix = format!("{group}/");
    let id_of = |app: &Value| app["id"].as_str().unwrap_or("").to_owned();
    let mut out = Vec::new();
    for want in desired {
        let id = id_of(want);
        let Some(have) = current.iter().find(|a| id_of(a) == id) else {
            out.push(Change::Create {
                id,
                app: want.clone(),
            });
            continue;
        };
        let mut want = want.clone();
        let have_instances = have["instances"].as_u64();
        if let Ok(parsed) = definition::parse(&want)
            && let Some(Ok(policy)) = Policy::from_labels(&parsed.labels)
            && let Some(n) = have_instances
            && (u64::from(policy.min)..=u64::from(policy.max)).contains(&n)
        {
            want["instances"] = Value::from(n);
        }
        let (a, b) = (normal(have), normal(&want));
        let mut fields: Vec<FieldChange> = a
            .keys()
            .chain(b.keys().filter(|k| !a.contains_key(*k)))
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| FieldChange {
                field: k.clone(),
                before: a.get(k).cloned(),
                after: b.get(k).cloned(),
            })
            .collect();
        fields.sort_by(|x, y| x.field.cmp(&y.field));
        out.push(if fields.is_empty() {
            Change::Unchanged { id }
        } else {
            Change::Update {
                id,
                app: want,
                fields,
            }
        });
    }
    for have in current {
        let id = id_of(have);
        let ours = have["labels"][LABEL_CLUSTER].as_str() == Some(cluster);
        if id.starts_with(&prefix) && ours && !desired.iter().any(|w| id_of(w) == id) {
            out.push(Change::Delete { id });
        }
    }
    out
}

fn short(value: Option<&Value>) -> String {
    match value {
        None => "(none)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => {
            let text = other.to_string();
            if text.len() > 60 {
                format!("{}...", &text[..text.floor_char_boundary(57)])
            } else {
                text
            }
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create { id, app } => write!(
                f,
                "+ {id}: create, {} instance(s)",
                app["instances"].as_u64().unwrap_or(1)
            ),
            Self::Delete { id } => write!(f, "- {id}: delete (no longer in the file)"),
            Self::Unchanged { id } => write!(f, "= {id}: unchanged"),
            Self::Update { id, fields, .. } => {
                write!(f, "~ {id}:")?;
                for change in fields {
                    write!(
                        f,
                        "\n    {}: {} -> {}",
                        change.field,
                        short(change.before.as_ref()),
                        short(change.after.as_ref())
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apps::autoscale;

    fn shown(app: &Value) -> Value {
        definition::parse(app).expect("parses").to_json()
    }

    #[test]
    fn creates_updates_deletes_and_leaves_alone() {
        let web = json!({ "id": "/shop/web", "cmd": "a", "instances": 2, "labels": { LABEL_CLUSTER: "shop" } });
        let api = json!({ "id": "/shop/api", "cmd": "b", "labels": { LABEL_CLUSTER: "shop" } });
        let old = json!({ "id": "/shop/old", "cmd": "c", "labels": { LABEL_CLUSTER: "shop" } });
        let theirs = json!({ "id": "/shop/theirs", "cmd": "d" });
        let current = [shown(&web), shown(&old), shown(&theirs)];
        let mut web2 = web.clone();
        web2["cmd"] = json!("a2");
        let changes = changes(&[web2, api], &current, "/shop", "shop");
        assert!(
            matches!(&changes[0], Change::Update { fields, .. } if fields.len() == 1 && fields[0].field == "cmd")
        );
        assert!(matches!(&changes[1], Change::Create { id, .. } if id == "/shop/api"));
        assert!(matches!(&changes[2], Change::Delete { id } if id == "/shop/old"));
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert_eq!(
            changes[0].to_string(),
            "~ /shop/web:\n    cmd: \"a\" -> \"a2\""
        );
    }

    #[test]
    fn the_same_file_again_changes_nothing_even_after_autoscaling() {
        let web = json!({ "id": "/shop/web", "cmd": "a", "instances": 2, "labels": {
            LABEL_CLUSTER: "shop", autoscale::LABEL_MIN: "1", autoscale::LABEL_MAX: "5",
            autoscale::LABEL_CPU: "50" } });
        let mut scaled = shown(&web);
        scaled["instances"] = json!(4);
        scaled["tasksRunning"] = json!(4);
        let changes = changes(std::slice::from_ref(&web), &[scaled], "/shop", "shop");
        assert_eq!(
            changes,
            vec![Change::Unchanged {
                id: "/shop/web".into()
            }]
        );
    }
}
