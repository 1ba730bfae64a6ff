//! JUnit XML, the report format CI systems show: one suite of named steps, each with its time
//! and, when it failed or was skipped, why.

/// One step of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Case {
    /// What the step does.
    pub name: String,
    /// How long it took.
    pub seconds: f64,
    /// `passed`, `failed` or `skipped`.
    pub result: String,
    /// What it found (the failure's message when it failed).
    pub message: String,
}

impl Case {
    /// Whether the step failed.
    pub fn failed(&self) -> bool {
        self.result == "failed"
    }
}

/// The JUnit document of suite `suite` with `cases`.
pub fn document(suite: &str, cases: &[Case]) -> String {
    let failures = cases.iter().filter(|c| c.failed()).count();
    let skipped = cases.iter().filter(|c| c.result == "skipped").count();
    let total: f64 = cases.iter().map(|c| c.seconds).sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\">\n",
        escape(suite),
        cases.len()
    );
    for case in cases {
        out.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            escape(suite),
            escape(&case.name),
            case.seconds
        ));
        match case.result.as_str() {
            "failed" => out.push_str(&format!(
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                escape(case.message.lines().next().unwrap_or_default()),
                escape(&case.message)
            )),
            "skipped" => out.push_str(&format!(
                ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                escape(&case.message)
            )),
            _ => out.push_str(&format!(
                ">\n      <system-out>{}</system-out>\n    </testcase>\n",
                escape(&case.message)
            )),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// `text` with XML's special characters escaped and control characters (not allowed in XML
/// 1.0) dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_skips_are_counted_and_text_escaped() {
        let cases = vec![
            Case {
                name: "push <candidate>".into(),
                seconds: 1.5,
                result: "passed".into(),
                message: "a & b".into(),
            },
            Case {
                name: "canary".into(),
                seconds: 2.0,
                result: "failed".into(),
                message: "Ready \"False\"\u{7}\nsecond line".into(),
            },
            Case {
                name: "upgrade".into(),
                seconds: 0.0,
                result: "skipped".into(),
                message: "no upgradeFrom".into(),
            },
        ];
        let xml = document("docker/scs 1.0.1", &cases);
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"3.500\""),
            "{xml}"
        );
        assert!(xml.contains("name=\"push &lt;candidate&gt;\""), "{xml}");
        assert!(xml.contains("<failure message=\"Ready &quot;False&quot;\">Ready &quot;False&quot;\nsecond line</failure>"), "{xml}");
        assert!(
            xml.contains("<skipped message=\"no upgradeFrom\"/>"),
            "{xml}"
        );
        assert!(!xml.contains('\u{7}'));
    }
}
