//! The two text formats a scraper may ask `/metrics` for. Every registry here encodes
//! OpenMetrics (prometheus-client); a scraper that does not ask for it (no `Accept`, or the
//! classic `text/plain; version=0.0.4`: `promtool check metrics`, older agents) gets the same
//! families in the classic text format, translated line by line ([`classic`]): no `# EOF` or
//! `# UNIT` lines; a counter's `# HELP` and `# TYPE` under its sample name (`…_total`); an
//! `info` family as a gauge named `…_info`, a `stateset` as a gauge, anything else the classic
//! format lacks as `untyped`; `_created` samples, exemplars and the OpenMetrics-only escape of
//! `"` in help texts dropped; timestamps from seconds to milliseconds.

use std::collections::HashMap;
use std::fmt::Write;

/// The content type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the classic text format.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` header prefers OpenMetrics to the classic text format (by
/// quality; a tie goes to OpenMetrics, which had to be named). No header: the classic format.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let (mut open, mut classic) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut params = range.split(';');
        let media = params.next().unwrap_or_default().trim();
        let q = params
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        // A quality is 0 to 1; anything else (NaN, inf) counts as 0.
        let q = if (0.0..=1.0).contains(&q) { q } else { 0.0 };
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            open = open.max(q);
        } else if ["text/plain", "text/*", "*/*"]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
        {
            classic = classic.max(q);
        }
    }
    open > 0.0 && open >= classic
}

/// `openmetrics` (as a prometheus-client registry encodes it) in the classic text format.
pub fn classic(openmetrics: &str) -> String {
    // Each family's type, from its `# TYPE` line (which follows its `# HELP`).
    let types: HashMap<&str, &str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    let mut family: (&str, &str) = ("", "");
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = types.get(name).copied().unwrap_or("unknown");
            let _ = writeln!(
                out,
                "# HELP {} {}",
                classic_name(name, kind),
                help.replace("\\\"", "\"")
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            family = (name, kind);
            let _ = writeln!(
                out,
                "# TYPE {} {}",
                classic_name(name, kind),
                classic_type(kind)
            );
        } else if line.starts_with('#') {
            // `# UNIT`, `# EOF`, comments: the classic format has none of them.
        } else if !line.is_empty()
            && let Some(sample) = classic_sample(line, family)
        {
            out.push_str(&sample);
            out.push('\n');
        }
    }
    out
}

/// A family's name in the classic format: where its samples' name differs, that one.
fn classic_name(name: &str, kind: &str) -> String {
    match kind {
        "counter" => format!("{name}_total"),
        "info" => format!("{name}_info"),
        _ => name.to_string(),
    }
}

fn classic_type(kind: &str) -> &str {
    match kind {
        "counter" | "gauge" | "histogram" | "summary" => kind,
        "info" | "stateset" => "gauge",
        _ => "untyped",
    }
}

/// One sample line in the classic format; None for what the classic format does not have
/// (a `_created` sample).
fn classic_sample(line: &str, (family, kind): (&str, &str)) -> Option<String> {
    // The name runs to `{` or a space; label values are quoted and may hold both, and ` # `.
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if matches!(kind, "counter" | "histogram" | "summary")
        && name.strip_suffix("_created") == Some(family)
    {
        return None;
    }
    let mut labels_end = name_end;
    if line[name_end..].starts_with('{') {
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in line[name_end..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '}' if !quoted => {
                    labels_end = name_end + i + 1;
                    break;
                }
                _ => {}
            }
        }
    }
    // After the labels: the value, maybe a timestamp, maybe ` # ` and an exemplar.
    let rest = &line[labels_end..];
    let rest = rest.split_once(" # ").map_or(rest, |(r, _)| r);
    let mut fields = rest.split_whitespace();
    let value = fields.next()?;
    let mut sample = format!("{} {value}", &line[..labels_end]);
    if let Some(ts) = fields.next().and_then(|t| t.parse::<f64>().ok()) {
        let _ = write!(sample, " {}", (ts * 1000.0).round() as i64);
    }
    Some(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics_and_gets_it_anything_else_the_classic_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(wants_openmetrics(Some("application/openmetrics-text")));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some(
            "text/plain;q=0.9, application/openmetrics-text;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=x")));
        // A peer's hostile header: many ranges, empty parts, odd parameters; read in one
        // pass (the listener bounds the header's size), no panic.
        let hostile = format!(
            "{};q=;=;;,,{}application/openmetrics-text;q=NaN",
            "x/y;q=0.1,".repeat(2_000),
            ";".repeat(1_000)
        );
        assert!(!wants_openmetrics(Some(&hostile)));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text;q=inf"
        )));
        assert!(wants_openmetrics(Some(&format!(
            "{}application/openmetrics-text",
            "text/plain;q=0.5,".repeat(2_000)
        ))));
    }

    #[test]
    fn each_openmetrics_construct_becomes_its_classic_form() {
        let open = "# HELP kaas_reconcile Reconciles by \\\"result\\\".\n\
# TYPE kaas_reconcile counter\n\
kaas_reconcile_total{result=\"a } # b\"} 3 # {trace_id=\"x\"} 1.0\n\
kaas_reconcile_created{result=\"a } # b\"} 1700000000.0\n\
# HELP kaas_cluster What runs.\n\
# TYPE kaas_cluster info\n\
kaas_cluster_info{name=\"c\"} 1\n\
# HELP kaas_duration_seconds Time.\n\
# TYPE kaas_duration_seconds histogram\n\
# UNIT kaas_duration_seconds seconds\n\
kaas_duration_seconds_bucket{le=\"+Inf\"} 1\n\
kaas_duration_seconds_sum 0.5\n\
kaas_duration_seconds_count 1\n\
kaas_duration_seconds_created 1700000000.0\n\
# HELP kaas_seen When.\n\
# TYPE kaas_seen gauge\n\
kaas_seen 2 1700000000.5\n\
# EOF\n";
        assert_eq!(
            classic(open),
            "# HELP kaas_reconcile_total Reconciles by \"result\".\n\
# TYPE kaas_reconcile_total counter\n\
kaas_reconcile_total{result=\"a } # b\"} 3\n\
# HELP kaas_cluster_info What runs.\n\
# TYPE kaas_cluster_info gauge\n\
kaas_cluster_info{name=\"c\"} 1\n\
# HELP kaas_duration_seconds Time.\n\
# TYPE kaas_duration_seconds histogram\n\
kaas_duration_seconds_bucket{le=\"+Inf\"} 1\n\
kaas_duration_seconds_sum 0.5\n\
kaas_duration_seconds_count 1\n\
# HELP kaas_seen When.\n\
# TYPE kaas_seen gauge\n\
kaas_seen 2 1700000000500\n"
        );
    }

    #[test]
    fn hostile_lines_are_passed_over_without_a_panic() {
        for text in [
            "{",
            "x{\"",
            "# TYPE",
            "# HELP",
            "x{a=\"\\",
            "x{a=\"b\"}",
            "\u{1F600}{} 1",
        ] {
            let _ = classic(text);
        }
        assert_eq!(
            classic("x{a=\"b\"}"),
            "",
            "a sample without a value is dropped"
        );
    }
}
