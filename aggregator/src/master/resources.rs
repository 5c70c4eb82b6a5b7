//! Mesos's JSON `Resource` arrays, to and from the scheduler's [`Allotment`] and the wire's
//! [`ResourceSpec`]. A resource's pool is its last reservation's role (or the legacy
//! `role` field), `*` when unreserved.

use proto::exec::ResourceSpec;
use scheduler::{
    pools::{Allotment, UNRESERVED},
    resources::{Ranges, Resources},
};
use serde_json::{Value, json};

/// Parses a `Resource` array; the error names the resource at fault.
pub fn parse(list: &Value) -> Result<Allotment, String> {
    let Some(items) = list.as_array() else {
        return Err("resources must be an array of Resource objects".into());
    };
    let mut allotment = Allotment::default();
    for (i, item) in items.iter().enumerate() {
        let name = item["name"]
            .as_str()
            .ok_or_else(|| format!("resources[{i}].name is missing"))?;
        let pool = item["reservations"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|r| r["role"].as_str())
            .or_else(|| item["role"].as_str())
            .unwrap_or(UNRESERVED);
        let mut r = Resources::default();
        match item["type"].as_str().unwrap_or("SCALAR") {
            "SCALAR" => {
                let amount = item["scalar"]["value"]
                    .as_f64()
                    .ok_or_else(|| format!("resources[{i}] ({name}): scalar.value is missing"))?;
                if !amount.is_finite() || amount < 0.0 {
                    return Err(format!(
                        "resources[{i}] ({name}): {amount} is not a valid amount"
                    ));
                }
                r.add_scalar(name, amount);
            }
            "RANGES" => {
                let ranges = item["ranges"]["range"]
                    .as_array()
                    .ok_or_else(|| format!("resources[{i}] ({name}): ranges.range is missing"))?;
                let mut pairs = Vec::new();
                for range in ranges {
                    let (Some(b), Some(e)) = (range["begin"].as_u64(), range["end"].as_u64())
                    else {
                        return Err(format!(
                            "resources[{i}] ({name}): a range needs begin and end"
                        ));
                    };
                    if b > e {
                        return Err(format!(
                            "resources[{i}] ({name}): range {b}-{e} is reversed"
                        ));
                    }
                    pairs.push((b, e));
                }
                r.add_ranges(name, &Ranges::new(pairs));
            }
            "SET" => {
                let items = item["set"]["item"]
                    .as_array()
                    .ok_or_else(|| format!("resources[{i}] ({name}): set.item is missing"))?;
                r.add_set(name, items.iter().filter_map(Value::as_str));
            }
            other => return Err(format!("resources[{i}] ({name}): unknown type {other}")),
        }
        allotment.add(pool, &r);
    }
    Ok(allotment)
}

/// The `Resource` array of an allotment. `allocated_to` adds Mesos's `allocation_info`.
pub fn to_json(allotment: &Allotment, allocated_to: Option<&str>) -> Value {
    let mut out = Vec::new();
    for (pool, resources) in allotment.pools() {
        let mut decorate = |mut v: Value| {
            if pool == UNRESERVED {
                v["role"] = json!("*");
            } else {
                v["role"] = json!(pool);
                v["reservations"] = json!([{ "type": "STATIC", "role": pool }]);
            }
            if let Some(role) = allocated_to {
                v["allocation_info"] = json!({ "role": role });
            }
            out.push(v);
        };
        for (name, amount) in resources.scalars() {
            decorate(json!({ "name": name, "type": "SCALAR", "scalar": { "value": amount } }));
        }
        for (name, ranges) in resources.all_ranges() {
            let range: Vec<Value> = ranges
                .pairs()
                .iter()
                .map(|(b, e)| json!({ "begin": b, "end": e }))
                .collect();
            decorate(json!({ "name": name, "type": "RANGES", "ranges": { "range": range } }));
        }
        for (name, items) in resources.all_sets() {
            decorate(json!({ "name": name, "type": "SET", "set": { "item": items } }));
        }
    }
    Value::Array(out)
}

/// Legacy (v0) form: `{"cpus": 1.0, "ports": "[31000-32000]"}`, all pools merged.
pub fn to_legacy(allotment: &Allotment) -> Value {
    let merged = allotment.merged();
    let mut map = serde_json::Map::new();
    for name in ["cpus", "mem", "disk", "gpus"] {
        map.insert(name.into(), json!(merged.get(name)));
    }
    for (name, ranges) in merged.all_ranges() {
        let text: Vec<String> = ranges
            .pairs()
            .iter()
            .map(|(b, e)| format!("{b}-{e}"))
            .collect();
        map.insert(name.into(), json!(format!("[{}]", text.join(", "))));
    }
    Value::Object(map)
}

/// What an agent registered with, as unreserved resources.
pub fn from_spec(spec: &ResourceSpec) -> Allotment {
    let mut r = Resources::default();
    for (name, amount) in &spec.scalars {
        r.add_scalar(name, *amount);
    }
    for (name, pairs) in &spec.ranges {
        r.add_ranges(name, &Ranges::new(pairs.iter().copied()));
    }
    for (name, items) in &spec.sets {
        r.add_set(name, items.iter().map(String::as_str));
    }
    Allotment::unreserved(r)
}

/// The wire form of an allotment, pools merged (what a task's limits come from).
pub fn to_spec(allotment: &Allotment) -> ResourceSpec {
    let merged = allotment.merged();
    ResourceSpec {
        scalars: merged.scalars().map(|(n, a)| (n.to_owned(), a)).collect(),
        ranges: merged
            .all_ranges()
            .map(|(n, r)| (n.to_owned(), r.pairs().to_vec()))
            .collect(),
        sets: merged
            .all_sets()
            .map(|(n, s)| (n.to_owned(), s.iter().cloned().collect()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_json_round_trips_with_reservations_and_ranges() {
        let json = json!([
            { "name": "cpus", "type": "SCALAR", "scalar": { "value": 1.5 } },
            { "name": "mem", "type": "SCALAR", "scalar": { "value": 256 },
              "reservations": [{ "type": "STATIC", "role": "db" }] },
            { "name": "ports", "type": "RANGES", "ranges": { "range": [{ "begin": 31000, "end": 31001 }] } }
        ]);
        let allotment = parse(&json).expect("valid");
        assert_eq!(allotment.pool("db").map(|r| r.get("mem")), Some(256.0));
        assert_eq!(allotment.merged().ranges("ports").len(), 2);
        assert_eq!(
            parse(&to_json(&allotment, Some("db"))).expect("valid"),
            allotment
        );
        assert_eq!(to_legacy(&allotment)["ports"], json!("[31000-31001]"));
    }

    #[test]
    fn bad_resources_are_named() {
        let err = parse(&json!([{ "name": "cpus", "type": "SCALAR", "scalar": {} }]))
            .expect_err("missing value");
        assert!(err.contains("resources[0] (cpus)"), "{err}");
        let err = parse(&json!([{ "name": "ports", "type": "RANGES",
            "ranges": { "range": [{ "begin": 5, "end": 1 }] } }]))
        .expect_err("reversed");
        assert!(err.contains("reversed"), "{err}");
        assert!(parse(&json!({})).is_err());
    }
}
