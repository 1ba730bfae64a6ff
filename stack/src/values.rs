//! Variables with a type, bounds and a default, and values checked against them: the stack's
//! own variables (`vars`), an add-on's values (`values`), and a cluster's overrides of them in
//! `spec.addons[].values`. A value that does not fit is refused with its path; an unknown
//! name is refused too, so a typo never passes silently.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::format::{VarType, Variable};

/// Why `value` does not fit `var`, or `None`.
pub fn check_value(var: &Variable, value: &Value) -> Option<String> {
    let fits = match var.type_ {
        VarType::String => value.is_string(),
        VarType::Integer => value.is_i64() || value.is_u64(),
        VarType::Number => value.is_number(),
        VarType::Boolean => value.is_boolean(),
    };
    if !fits {
        return Some(format!("{value} is not of type {:?}", var.type_).to_lowercase());
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = var.minimum
            && n < min
        {
            return Some(format!("{value} is below the minimum {min}"));
        }
        if let Some(max) = var.maximum
            && n > max
        {
            return Some(format!("{value} is above the maximum {max}"));
        }
    }
    if !var.allowed.is_empty() && !var.allowed.contains(value) {
        let allowed: Vec<String> = var.allowed.iter().map(ToString::to_string).collect();
        return Some(format!("{value} is not one of {}", allowed.join(", ")));
    }
    None
}

/// The values of `schema` with `overrides` laid over the defaults, or every problem as
/// `(path, message)` with paths under `path` (`spec.addons[0].values.mtu`).
pub fn resolve(
    schema: &BTreeMap<String, Variable>,
    overrides: Option<&Value>,
    path: &str,
) -> Result<BTreeMap<String, Value>, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let empty = serde_json::Map::new();
    let given = match overrides {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(vec![(
                path.to_string(),
                format!("must be an object of values, not {other}"),
            )]);
        }
    };
    for key in given.keys() {
        if !schema.contains_key(key) {
            let known: Vec<&str> = schema.keys().map(String::as_str).collect();
            problems.push((
                format!("{path}.{key}"),
                format!("unknown value (known: {})", known.join(", ")),
            ));
        }
    }
    let mut out = BTreeMap::new();
    for (name, var) in schema {
        match given.get(name).or(var.default.as_ref()) {
            Some(value) => {
                if let Some(message) = check_value(var, value) {
                    problems.push((format!("{path}.{name}"), message));
                }
                out.insert(name.clone(), value.clone());
            }
            None => problems.push((
                format!("{path}.{name}"),
                "required: it has no default".into(),
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}
