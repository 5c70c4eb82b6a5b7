//! YAML text to a JSON value plus the line of every node, so errors found later (by type or
//! by rule) can say where in the file they are. Scalars resolve as in YAML 1.2's core
//! schema: plain `true`/`false`, `null`/`~`/empty, integers and floats; quoted scalars are
//! always strings. Anchors and aliases are expanded.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Number, Value};
use yaml_rust2::{
    parser::{Event, MarkedEventReceiver, Parser},
    scanner::{Marker, TScalarStyle},
};

/// A parsed document and where each of its nodes starts.
#[derive(Debug, Clone, Default)]
pub struct Located {
    pub value: Value,
    /// Line (1-based) of each node by its path (`services[0].replicas`; the root is ``).
    pub lines: BTreeMap<String, usize>,
}

impl Located {
    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line(&self, path: &str) -> usize {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return *line;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return self.lines.get("").copied().unwrap_or(1),
            }
        }
    }
}

/// Why the text is not YAML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

enum Frame {
    Sequence(Vec<Value>, String, Option<usize>),
    /// Entries, the key waiting for its value, the mapping's path and anchor.
    Mapping(Map<String, Value>, Option<String>, String, Option<usize>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    root: Option<Value>,
    lines: BTreeMap<String, usize>,
    error: Option<SyntaxError>,
}

fn scalar(text: &str, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::Number(n.into());
    }
    if let Ok(n) = text.parse::<u64>() {
        return Value::Number(n.into());
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

fn anchor_of(id: usize) -> Option<usize> {
    (id > 0).then_some(id)
}

impl Builder {
    /// The path the next node gets, from the container it goes into.
    fn next_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Sequence(items, path, _)) => format!("{path}[{}]", items.len()),
            Some(Frame::Mapping(_, Some(key), path, _)) if path.is_empty() => key.clone(),
            Some(Frame::Mapping(_, Some(key), path, _)) => format!("{path}.{key}"),
            // A key: it is located at its value's path, which the key itself decides.
            Some(Frame::Mapping(_, None, path, _)) => path.clone(),
        }
    }

    fn fail(&mut self, mark: Marker, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                line: mark.line(),
                message: message.into(),
            });
        }
    }

    /// Puts a finished node into its container (or makes it the root).
    fn place(&mut self, value: Value, mark: Marker) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Sequence(items, _, _)) => items.push(value),
            Some(Frame::Mapping(map, key, path, _)) => match key.take() {
                Some(key) => {
                    map.insert(key, value);
                }
                None => {
                    let key = match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            self.fail(mark, "mapping keys must be scalars");
                            return;
                        }
                    };
                    if map.contains_key(&key) {
                        let at = if path.is_empty() {
                            key.clone()
                        } else {
                            format!("{path}.{key}")
                        };
                        self.fail(mark, format!("duplicate key `{at}`"));
                        return;
                    }
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    self.lines.insert(child, mark.line());
                    *key_slot(&mut self.stack) = Some(key);
                }
            },
        }
    }
}

fn key_slot(stack: &mut [Frame]) -> &mut Option<String> {
    match stack.last_mut() {
        Some(Frame::Mapping(_, key, _, _)) => key,
        _ => unreachable!("called only while a mapping is open"),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let is_key = matches!(self.stack.last(), Some(Frame::Mapping(_, None, _, _)));
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let path = self.next_path();
                if !is_key {
                    self.lines.entry(path).or_insert(mark.line());
                }
                let value = scalar(&text, style);
                if let Some(id) = anchor_of(anchor) {
                    self.anchors.insert(id, value.clone());
                }
                self.place(value, mark);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) if is_key => {
                let _ = anchor;
                self.fail(mark, "mapping keys must be scalars");
            }
            Event::SequenceStart(anchor, _) => {
                let path = self.next_path();
                self.lines.entry(path.clone()).or_insert(mark.line());
                self.stack
                    .push(Frame::Sequence(Vec::new(), path, anchor_of(anchor)));
            }
            Event::MappingStart(anchor, _) => {
                let path = self.next_path();
                self.lines.entry(path.clone()).or_insert(mark.line());
                self.stack
                    .push(Frame::Mapping(Map::new(), None, path, anchor_of(anchor)));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Sequence(items, _, anchor)) => (Value::Array(items), anchor),
                    Some(Frame::Mapping(map, _, _, anchor)) => (Value::Object(map), anchor),
                    None => return,
                };
                if let Some(id) = anchor {
                    self.anchors.insert(id, value.clone());
                }
                self.place(value, mark);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(value) => self.place(value, mark),
                None => self.fail(mark, "alias to an unknown anchor"),
            },
            Event::DocumentStart if self.root.is_some() => {
                self.fail(mark, "one document per file");
            }
            _ => {}
        }
    }
}

/// Parses `text` (one YAML document).
pub fn parse(text: &str) -> Result<Located, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|err| SyntaxError {
            line: err.marker().line(),
            message: err.info().to_owned(),
        })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    builder.lines.entry(String::new()).or_insert(1);
    Ok(Located {
        value: builder.root.unwrap_or(Value::Null),
        lines: builder.lines,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_and_lines() {
        let text = "cluster_name: shop\nservices:\n  - service_name: web\n    replicas: 3\n    cpu: 0.5\n    quoted: \"7\"\n    empty:\n    ok: true\n  - service_name: db\n";
        let doc = parse(text).expect("parses");
        assert_eq!(
            doc.value,
            json!({ "cluster_name": "shop", "services": [
                { "service_name": "web", "replicas": 3, "cpu": 0.5, "quoted": "7", "empty": null, "ok": true },
                { "service_name": "db" },
            ]})
        );
        assert_eq!(doc.line("cluster_name"), 1);
        assert_eq!(doc.line("services"), 2);
        assert_eq!(doc.line("services[0]"), 3);
        assert_eq!(doc.line("services[0].replicas"), 4);
        assert_eq!(doc.line("services[1].service_name"), 9);
        // A path that is not in the file points at its nearest ancestor.
        assert_eq!(doc.line("services[0].resources.cpu_millicores"), 3);
    }

    #[test]
    fn anchors_expand_and_mistakes_have_lines() {
        let doc = parse("base: &b {a: 1}\ncopy: *b\n").expect("parses");
        assert_eq!(doc.value["copy"], json!({ "a": 1 }));
        let err = parse("a: 1\na: 2\n").expect_err("duplicate");
        assert_eq!((err.line, err.message.as_str()), (2, "duplicate key `a`"));
        let err = parse("a: [1, 2\nb: 3\n").expect_err("unclosed");
        assert!(err.line >= 1, "{err}");
    }
}
