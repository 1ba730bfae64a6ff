//! Checks for `spec.providerConfig` that every provider needs: a provider declares its
//! settings and their kinds; unknown keys are errors (so a typo is never silently ignored) and
//! every problem comes with its field path.

use api::{FieldError, ValidationErrors};
use serde_json::Value;

/// What one provider setting must be.
#[derive(Debug, Clone, Copy)]
pub enum Setting {
    /// A non-empty string.
    Text,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A list of strings, each passing `check`.
    List {
        /// What one item must be, for messages ("an IP address").
        item: &'static str,
        /// What the items are, for messages ("IP addresses").
        items: &'static str,
        /// The check for one item.
        check: fn(&str) -> bool,
    },
}

/// Checks `config` against `settings` (`(key, kind)` in the order messages list them).
pub fn validate(config: Option<&Value>, settings: &[(&str, Setting)]) -> Vec<FieldError> {
    let mut errs = ValidationErrors::default();
    let Some(obj) = config.and_then(Value::as_object) else {
        return errs.0;
    };
    for (key, value) in obj {
        let path = format!("spec.providerConfig.{key}");
        let Some((_, setting)) = settings.iter().find(|(k, _)| k == key) else {
            let known: Vec<&str> = settings.iter().map(|(k, _)| *k).collect();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            errs.add(path, format!("unknown setting (known: {known})"));
            continue;
        };
        match setting {
            Setting::Text => {
                if value.as_str().is_none_or(str::is_empty) {
                    errs.add(path, "must be a non-empty string");
                }
            }
            Setting::OneOf(choices) => {
                if !value.as_str().is_some_and(|s| choices.contains(&s)) {
                    errs.add(path, format!("must be one of {}", choices.join(", ")));
                }
            }
            Setting::List { item, items, check } => match value.as_array() {
                Some(list) => {
                    for (i, v) in list.iter().enumerate() {
                        if !v.as_str().is_some_and(check) {
                            errs.add(format!("{path}[{i}]"), format!("must be {item}"));
                        }
                    }
                }
                None => errs.add(path, format!("must be a list of {items}")),
            },
        }
    }
    errs.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_with_its_path() {
        let settings = [
            ("region", Setting::OneOf(&["a", "b"])),
            ("name", Setting::Text),
            (
                "ips",
                Setting::List {
                    item: "an IP address",
                    items: "IP addresses",
                    check: |s| s.parse::<std::net::IpAddr>().is_ok(),
                },
            ),
        ];
        let config =
            serde_json::json!({"region": "c", "name": "", "ips": ["1.1.1.1", "x"], "typo": 1});
        let errs = validate(Some(&config), &settings);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.providerConfig.ips[1]",
                "spec.providerConfig.name",
                "spec.providerConfig.region",
                "spec.providerConfig.typo"
            ]
        );
        assert!(errs[3].message.contains("known: region, name, ips"));
        assert!(validate(None, &settings).is_empty());
        assert!(
            validate(Some(&serde_json::json!({"x": 1})), &[])[0]
                .message
                .contains("known: none")
        );
    }
}
