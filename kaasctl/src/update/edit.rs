//! Edits of a `stack.yaml` as text, so its comments and layout stay: the release's version
//! and upgrade edge, the base's version, the Kubernetes versions, node images. Each edit is
//! checked by parsing the result again ([`checked`]); a layout an edit does not know is an
//! error, never a wrong file.

use kaas_stack::format::{STACK_FILE, StackFile};

/// Whether `line` is the top-level `key`.
fn top(line: &str, key: &str) -> bool {
    line.strip_prefix(key)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// The line after the block that starts at `start` (its indented or list continuation lines).
fn block_end(lines: &[String], start: usize) -> usize {
    let mut end = start + 1;
    while end < lines.len() {
        let l = &lines[end];
        let continues = l.starts_with(' ') || l.starts_with('-') || l.trim().is_empty();
        if !continues {
            break;
        }
        end += 1;
    }
    // Trailing blank lines belong to what follows.
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    end
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

fn joined(lines: &[String]) -> String {
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// `text` with the top-level `version` set to `version` and `upgradeFrom` to `[previous]`
/// (older releases upgrade through the previous one).
pub fn set_release(text: &str, version: &str, previous: &str) -> Result<String, String> {
    let mut lines = lines(text);
    if let Some(u) = lines.iter().position(|l| top(l, "upgradeFrom")) {
        let end = block_end(&lines, u);
        lines.drain(u..end);
    }
    let at = lines
        .iter()
        .position(|l| top(l, "version"))
        .ok_or("version: no top-level line")?;
    lines[at] = format!("version: {version}");
    lines.insert(at + 1, format!("upgradeFrom: [\"{previous}\"]"));
    Ok(joined(&lines))
}

/// `text` with its base's version set: `base: {name: x, version: y}` on one line, or a block
/// with an indented `version:` line.
pub fn set_base_version(text: &str, base_version: &str) -> Result<String, String> {
    let mut lines = lines(text);
    let at = lines
        .iter()
        .position(|l| top(l, "base"))
        .ok_or("base: no top-level line")?;
    let rest = lines[at]["base:".len()..].trim().to_string();
    if rest.starts_with('{') {
        lines[at] = format!("base: {}", set_flow_version(&rest, base_version)?);
    } else {
        let end = block_end(&lines, at);
        let v = (at + 1..end)
            .find(|&i| lines[i].trim_start().starts_with("version:"))
            .ok_or("base.version: no line")?;
        let indent = lines[v].len() - lines[v].trim_start().len();
        lines[v] = format!("{}version: {base_version}", " ".repeat(indent));
    }
    Ok(joined(&lines))
}

/// `{name: x, version: y}` with `version` set.
fn set_flow_version(flow: &str, version: &str) -> Result<String, String> {
    let inner = flow
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("base: a flow mapping on one line is expected")?;
    let mut found = false;
    let parts: Vec<String> = inner
        .split(',')
        .map(|p| {
            let (k, _) = p.split_once(':').unwrap_or((p, ""));
            if k.trim() == "version" {
                found = true;
                format!("{k}: {version}")
            } else {
                p.to_string()
            }
        })
        .collect();
    if !found {
        return Err("base.version: missing".into());
    }
    Ok(format!("{{{}}}", parts.join(",")))
}

/// `text` with `kubernetesVersions` set to `versions` (one flow list on its line).
pub fn set_kubernetes_versions(text: &str, versions: &[String]) -> Result<String, String> {
    let mut lines = lines(text);
    let at = lines
        .iter()
        .position(|l| top(l, "kubernetesVersions"))
        .ok_or("kubernetesVersions: no top-level line")?;
    let end = block_end(&lines, at);
    let quoted: Vec<String> = versions.iter().map(|v| format!("\"{v}\"")).collect();
    lines.splice(
        at..end,
        [format!("kubernetesVersions: [{}]", quoted.join(", "))],
    );
    Ok(joined(&lines))
}

/// `text` with a node image for each of `added` (`(new, from)`: a new version and the
/// version whose image it is made from, by putting the new version wherever the old one is
/// written on that image's line) and without the images of `dropped`. Images are expected one
/// flow mapping per line (`- {kubernetesVersion: "1.34.1", name: ...}`). Returns the text and,
/// for each image that could not be derived (one with a checksum: a new image has another),
/// why.
pub fn node_images(
    text: &str,
    added: &[(String, String)],
    dropped: &[String],
) -> Result<(String, Vec<String>), String> {
    let mut lines = lines(text);
    let mut notes = Vec::new();
    let Some(at) = lines.iter().position(|l| top(l, "nodeImages")) else {
        return Ok((joined(&lines), notes));
    };
    let image_of = |lines: &[String], end: usize, version: &str| {
        (at + 1..end).find(|&i| {
            let l = &lines[i];
            l.contains(&format!("kubernetesVersion: \"{version}\""))
                || l.contains(&format!("kubernetesVersion: {version},"))
                || l.contains(&format!("kubernetesVersion: {version}}}"))
        })
    };
    for (new, from) in added {
        let end = block_end(&lines, at);
        let Some(i) = image_of(&lines, end, from) else {
            continue;
        };
        let line = &lines[i];
        if !line.trim_end().ends_with('}') {
            return Err(format!(
                "nodeImages: the image of {from} is not a flow mapping on one line"
            ));
        }
        if line.contains("checksum") {
            notes.push(format!(
                "node image for {new}: build it and add its entry (its checksum cannot be derived from {from}'s)"
            ));
            continue;
        }
        let derived = line.replace(from.as_str(), new);
        lines.insert(i + 1, derived);
    }
    for version in dropped {
        let end = block_end(&lines, at);
        if let Some(i) = image_of(&lines, end, version) {
            lines.remove(i);
        }
    }
    Ok((joined(&lines), notes))
}

/// `text` parsed again: the edits must read back as a stack file.
pub fn checked(text: &str) -> Result<StackFile, String> {
    serde_saphyr::from_str(text).map_err(|e| format!("the edited {STACK_FILE} does not parse: {e}"))
}

/// `text` moved to base `base_version` as release `version` upgrading from `previous`,
/// parsed again and checked to say exactly that.
pub fn edit_stack_file(
    text: &str,
    version: &str,
    base_version: &str,
    previous: &str,
) -> Result<String, String> {
    let out = set_base_version(&set_release(text, version, previous)?, base_version)?;
    let parsed = checked(&out)?;
    let base_ok = parsed
        .base
        .as_ref()
        .is_some_and(|b| b.version == base_version);
    if parsed.version != version || !base_ok || parsed.upgrade_from != [previous] {
        return Err(format!(
            "the edited {STACK_FILE} does not read back as version {version}, base {base_version}, upgradeFrom [{previous}]"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_file_is_edited_in_place_keeping_comments() {
        let flow = "# comment kept\nprovider: hetzner\nname: scs\nversion: 1.0.0\n\
                    base: {name: scs, version: 1.0.0}\n# images\nnodeImages: []\n";
        let out = edit_stack_file(flow, "1.0.1", "1.0.2", "1.0.0").unwrap();
        assert_eq!(
            out,
            "# comment kept\nprovider: hetzner\nname: scs\nversion: 1.0.1\nupgradeFrom: [\"1.0.0\"]\n\
             base: {name: scs, version: 1.0.2}\n# images\nnodeImages: []\n"
        );
        let block = "provider: docker\nname: scs\nversion: 1.1.0\nupgradeFrom:\n  - 1.0.0\n  - 0.9.0\n\
                     base:\n  name: scs\n  version: 1.0.0\naddons: []\n";
        let out = edit_stack_file(block, "1.2.0", "1.1.0", "1.1.0").unwrap();
        assert_eq!(
            out,
            "provider: docker\nname: scs\nversion: 1.2.0\nupgradeFrom: [\"1.1.0\"]\n\
             base:\n  name: scs\n  version: 1.1.0\naddons: []\n"
        );
    }

    #[test]
    fn a_layout_the_edit_does_not_know_is_an_error_not_a_wrong_file() {
        let nested =
            "provider: docker\nname: scs\nversion: 1.0.0\nbase: {name: scs,\n  version: 1.0.0}\n";
        assert!(edit_stack_file(nested, "1.0.1", "1.0.1", "1.0.0").is_err());
    }

    #[test]
    fn kubernetes_versions_and_node_images_follow_a_new_patch() {
        let text = "provider: openstack\nname: scs\nversion: 1.0.0\n\
                    kubernetesVersions:\n  - \"1.33.4\"\n  - \"1.34.1\"\n\
                    nodeImages:\n  - {kubernetesVersion: \"1.33.4\", name: img-v1.33.4, url: \"https://x/img-v1.33.4.qcow2\"}\n  \
                    - {kubernetesVersion: \"1.34.1\", name: img-v1.34.1, url: \"https://x/img-v1.34.1.qcow2\", checksum: \"sha256:00\"}\n\
                    addons: []\n";
        let versions = ["1.34.1", "1.34.2", "1.33.5"].map(String::from);
        let out = set_kubernetes_versions(text, &versions).unwrap();
        let added = [
            ("1.33.5".to_string(), "1.33.4".to_string()),
            ("1.34.2".to_string(), "1.34.1".to_string()),
        ];
        let (out, notes) = node_images(&out, &added, &["1.33.4".to_string()]).unwrap();
        let parsed = checked(&out).unwrap();
        assert_eq!(parsed.kubernetes_versions, versions);
        let images: Vec<(&str, &str, Option<&str>)> = parsed
            .node_images
            .iter()
            .map(|i| {
                (
                    i.kubernetes_version.as_str(),
                    i.name.as_str(),
                    i.url.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            images,
            [
                ("1.33.5", "img-v1.33.5", Some("https://x/img-v1.33.5.qcow2")),
                ("1.34.1", "img-v1.34.1", Some("https://x/img-v1.34.1.qcow2")),
            ]
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("1.34.2") && notes[0].contains("checksum"));
        assert!(out.ends_with("addons: []\n"));
    }
}
